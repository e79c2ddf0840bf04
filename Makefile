# berth: see README.md. `make demo` and `make test` are the two entry points.
SHELL := /bin/bash
GO ?= go
export PATH := $(PATH):/usr/local/go/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X berth.dev/berth/cmd/berth/cli.Version=$(VERSION)
BIN := _output/bin/berth
FUZZTIME ?= 60s
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build demo test test-vet test-unit test-root test-e2e fuzz bench lint clean prereqs testimage

all: build

# One static binary: the CLI with the roles-only program (shim, init)
# appended, which containers start from (runtime/linux/exeseal).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN).cli ./cmd/berth
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN).roles ./cmd/berth/roles/berth-roles
	$(GO) run ./cmd/berth/roles/pack $(BIN).cli $(BIN).roles $(BIN)
	@rm -f $(BIN).cli $(BIN).roles

# Checks what a fresh Debian machine lacks and installs it (needs root and apt).
prereqs:
	@command -v $(GO) >/dev/null || { echo "Go is missing: install Go 1.26 (https://go.dev/dl) and re-run"; exit 1; }
	@test -x /bin/busybox || { echo "installing busybox-static (the test image is built from it)"; \
		apt-get -o DPkg::Lock::Timeout=300 update -qq && apt-get -o DPkg::Lock::Timeout=300 install -y -qq busybox-static; }

# The busybox test image: a reproducible rootfs tarball from Debian's static busybox.
testimage: _output/testimage/busybox.tar
_output/testimage/busybox.tar: internal/testutil/cmd/mktestimage/*.go internal/testutil/busybox.go
	$(GO) run ./internal/testutil/cmd/mktestimage -o $@

# Networking and the compose commands land in later issues; until then the
# demo imports the test image, runs a container with berth's own runtime and
# shows what berth makes of the example project.
demo: prereqs build testimage
	@echo "== importing the busybox test image"
	$(BIN) image import _output/testimage/busybox.tar busybox:latest --change 'CMD ["sh"]'
	$(BIN) image ls
	@echo "== a container: its own PID namespace, hostname, Docker's capabilities, seccomp"
	$(BIN) container run --rm busybox sh -c 'echo "pid $$$$ on $$(hostname)"; grep -E "CapEff|NoNewPrivs|Seccomp:" /proc/self/status'
	@echo "== a detached one, listed, stopped and removed"
	@$(BIN) container rm -f demo-sleeper >/dev/null 2>&1 || true
	$(BIN) container run -d --name demo-sleeper busybox sleep 300
	$(BIN) container ls
	$(BIN) container stop -t 1 demo-sleeper
	$(BIN) container rm demo-sleeper
	@echo "== berth $$($(BIN) version --short): the example project examples/hello"
	$(BIN) -f examples/hello/compose.yaml config
	@echo "== services in start order"
	$(BIN) -f examples/hello/compose.yaml config --services
	@echo "== interpolation variables and where their values come from"
	$(BIN) -f examples/hello/compose.yaml config --environment
	@echo "== a fig 1.0 file, converted"
	$(BIN) -f examples/fig-legacy/fig.yml config --services
	@echo
	@echo "'berth up' comes with the reconciler issue; 'berth config' shows the model it will converge to."

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

test-e2e: build
	BERTH_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 ./examples/...

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
