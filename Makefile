# berth: see README.md. `make demo` and `make test` are the two entry points.
SHELL := /bin/bash
GO ?= go
export PATH := $(PATH):/usr/local/go/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X berth.dev/berth/cmd/berth/cli.Version=$(VERSION)
BIN := _output/bin/berth
FUZZTIME ?= 60s
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build install demo test test-vet test-unit test-root test-e2e e2e fuzz bench lint clean prereqs testimage debian-image debian-tarball

all: build

# One static binary: the CLI with the roles-only program (shim, init)
# appended, which containers start from (runtime/linux/exeseal).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN).cli ./cmd/berth
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN).roles ./cmd/berth/roles/berth-roles
	$(GO) run ./cmd/berth/roles/pack $(BIN).cli $(BIN).roles $(BIN)
	@rm -f $(BIN).cli $(BIN).roles

# The static binary to $(PREFIX)/bin (default /usr/local/bin).
PREFIX ?= /usr/local
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/berth

# Checks what a fresh Debian machine lacks and installs it (needs root and apt).
prereqs:
	@command -v $(GO) >/dev/null || { echo "Go is missing: install Go 1.26 (https://go.dev/dl) and re-run"; exit 1; }
	@test -x /bin/busybox || { echo "installing busybox-static (the test image is built from it)"; \
		apt-get -o DPkg::Lock::Timeout=300 update -qq && apt-get -o DPkg::Lock::Timeout=300 install -y -qq busybox-static; }

# The busybox test image: a reproducible rootfs tarball from Debian's static busybox.
testimage: _output/testimage/busybox.tar
_output/testimage/busybox.tar: internal/testutil/cmd/mktestimage/*.go internal/testutil/busybox.go
	$(GO) run ./internal/testutil/cmd/mktestimage -o $@

# The demo: the busybox test image, then the example project examples/hello
# (a web server on 127.0.0.1:$${HELLO_PORT:-8080} and a worker writing to a
# named volume) brought up with berth's own runtime, networks and DNS.
HELLO_PORT ?= 8080
demo: prereqs build testimage
	@echo "== importing the busybox test image"
	$(BIN) image import _output/testimage/busybox.tar busybox:latest --change 'CMD ["sh"]'
	@echo "== the plan for examples/hello"
	HELLO_PORT=$(HELLO_PORT) $(BIN) -f examples/hello/compose.yaml up -d --dry-run
	@echo "== bringing it up"
	HELLO_PORT=$(HELLO_PORT) $(BIN) -f examples/hello/compose.yaml up -d
	HELLO_PORT=$(HELLO_PORT) $(BIN) -f examples/hello/compose.yaml ps
	@echo "== web finds worker by name through the embedded DNS"
	HELLO_PORT=$(HELLO_PORT) $(BIN) -f examples/hello/compose.yaml exec -T web nslookup worker
	@echo
	@echo "Open http://127.0.0.1:$(HELLO_PORT)/  (busybox httpd in a berth container)"
	@echo "Stop it with: $(BIN) -f examples/hello/compose.yaml down  (add -v to drop the ticks volume)"

# make test = vet + gofmt, unit tests with -race, then root and e2e tiers.
test: test-vet test-unit test-root test-e2e

test-vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test-unit:
	$(GO) test -race -short -count=1 ./...

# Root integration tests (namespaces, mounts, cgroups, containers through the
# binary, locks across processes); they fail instead of skipping when CI=true
# and not root.
test-root: build
	BERTH_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 ./internal/... ./image/... ./runtime/... ./network/...

# The examples as tests. The webapp example needs the debian:bookworm
# tarball: it is built first when possible (root, debootstrap, Debian's
# mirror; cached under _output/debian/), else that test skips saying why,
# except with CI=true, where a failed build fails the target.
E2E_TIMEOUT ?= 30m
test-e2e: build
	@$(MAKE) --no-print-directory debian-tarball || { \
		if [ "$$CI" = true ]; then echo "make: the Debian image could not be built (CI=true)"; exit 1; fi; \
		echo "make: no Debian image (see above): the webapp example test will skip"; }
	BERTH_BIN=$(CURDIR)/$(BIN) BERTH_DEBIAN_TAR=$(CURDIR)/$(DEBIAN_TAR) $(GO) test -count=1 -timeout $(E2E_TIMEOUT) ./examples/...

e2e: test-e2e

# debian:bookworm from debootstrap --variant=minbase (hack/debian-image.sh):
# the tarball is kept in _output/debian/ (debootstrap runs only when it is
# missing; hack/debian-image.sh --force redoes it), then imported into the
# state root ($$BERTH_ROOT or the default) with CMD ["bash"].
DEBIAN_TAR := _output/debian/bookworm.tar
debian-image: build
	BERTH=$(BIN) DEBIAN_TAR=$(DEBIAN_TAR) hack/debian-image.sh

debian-tarball:
	DEBIAN_TAR=$(DEBIAN_TAR) hack/debian-image.sh --tar-only

FUZZ_TARGETS := project:FuzzFigPrepass project:FuzzLoad project:FuzzNames image/archive:FuzzApplyLayer \
	runtime/linux/initproc:FuzzResolveUser runtime/linux/restart:FuzzMachine runtime/linux/ctl:FuzzCtlFrame \
	runtime/linux/logfile:FuzzLogRead runtime/linux/logfile:FuzzDecode runtime/linux/logfile:FuzzEncode runtime/linux/logfile:FuzzFastLine \
	network/dns:FuzzDNSQuery network/ipam:FuzzAllocate

fuzz:
	@for pt in $(FUZZ_TARGETS); do p=$${pt%%:*}; t=$${pt#*:}; \
		echo "== $$p $$t ($(FUZZTIME))"; \
		$(GO) test ./$$p -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x ./...

lint: test-vet
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$$($(GO) env GOPATH)/bin/staticcheck ./...

clean:
	rm -rf _output
