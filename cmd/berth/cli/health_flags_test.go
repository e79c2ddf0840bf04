package cli

import (
	"reflect"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
)

func TestHealthFlags(t *testing.T) {
	img := &runtime.HealthCheck{Test: []string{"CMD", "curl", "-f", "http://localhost/"},
		Interval: 10 * time.Second, Timeout: 2 * time.Second, StartPeriod: time.Minute, StartInterval: time.Second, Retries: 4}
	for _, tc := range []struct {
		name  string
		args  []string
		image *runtime.HealthCheck
		want  *runtime.HealthCheck
		err   string
	}{
		{name: "nothing", want: nil},
		{name: "image only", image: img, want: img},
		{name: "cmd only", args: []string{"--health-cmd", "pg_isready"},
			want: &runtime.HealthCheck{Test: []string{"CMD-SHELL", "pg_isready"}}},
		{name: "all flags", args: []string{"--health-cmd=true", "--health-interval=1m", "--health-timeout=5s",
			"--health-start-period=30s", "--health-start-interval=500ms", "--health-retries=7"},
			want: &runtime.HealthCheck{Test: []string{"CMD-SHELL", "true"}, Interval: time.Minute, Timeout: 5 * time.Second,
				StartPeriod: 30 * time.Second, StartInterval: 500 * time.Millisecond, Retries: 7}},
		{name: "flags override image fields", image: img, args: []string{"--health-interval=3s", "--health-retries=1"},
			want: &runtime.HealthCheck{Test: img.Test, Interval: 3 * time.Second, Timeout: 2 * time.Second,
				StartPeriod: time.Minute, StartInterval: time.Second, Retries: 1}},
		{name: "cmd overrides image test", image: img, args: []string{"--health-cmd", "exit 0"},
			want: &runtime.HealthCheck{Test: []string{"CMD-SHELL", "exit 0"}, Interval: 10 * time.Second, Timeout: 2 * time.Second,
				StartPeriod: time.Minute, StartInterval: time.Second, Retries: 4}},
		{name: "zero flags keep the image's", image: img, args: []string{"--health-interval=0s", "--health-retries=0"}, want: img},
		{name: "settings without a test", args: []string{"--health-interval=3s"}, want: nil},
		{name: "image NONE", image: &runtime.HealthCheck{Test: []string{"NONE"}}, args: []string{"--health-retries=2"}, want: nil},
		{name: "cmd beats image NONE", image: &runtime.HealthCheck{Test: []string{"NONE"}}, args: []string{"--health-cmd=true"},
			want: &runtime.HealthCheck{Test: []string{"CMD-SHELL", "true"}}},
		{name: "no-healthcheck", image: img, args: []string{"--no-healthcheck"}, want: nil},
		{name: "no-healthcheck conflicts", args: []string{"--no-healthcheck", "--health-cmd=true"}, err: "--no-healthcheck conflicts with --health-* options"},
		{name: "negative interval", args: []string{"--health-interval=-1s"}, err: "--health-interval cannot be negative"},
		{name: "negative timeout", args: []string{"--health-timeout=-1s"}, err: "--health-timeout cannot be negative"},
		{name: "negative start period", args: []string{"--health-start-period=-1s"}, err: "--health-start-period cannot be negative"},
		{name: "negative start interval", args: []string{"--health-start-interval=-1s"}, err: "--health-start-interval cannot be negative"},
		{name: "negative retries", args: []string{"--health-retries=-1"}, err: "--health-retries cannot be negative"},
		{name: "under 1ms", args: []string{"--health-cmd=true", "--health-timeout=10us"}, err: "--health-timeout cannot be less than 1ms"},
		{name: "malformed image test", image: &runtime.HealthCheck{Test: []string{"CMD"}}, err: `healthcheck test ["CMD"]: CMD needs a command`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h healthFlags
			f := pflag.NewFlagSet("run", pflag.ContinueOnError)
			h.register(f)
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var image *runtime.HealthCheck
			if tc.image != nil {
				c := *tc.image
				c.Test = append([]string(nil), tc.image.Test...)
				image = &c
			}
			got, err := h.check(image)
			if tc.err != "" {
				if !errdefs.IsInvalid(err) || err.Error() != tc.err || got != nil {
					t.Fatalf("check = %+v, %v; want ErrInvalid %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("check = %+v, %v; want %+v", got, err, tc.want)
			}
			if got != nil && image != nil {
				if got == image {
					t.Fatal("check returned the image's struct")
				}
				if len(got.Test) > 0 && len(image.Test) > 0 && &got.Test[0] == &image.Test[0] {
					t.Fatal("check aliases the image's test")
				}
			}
		})
	}
}

func TestHealthFlagsRegister(t *testing.T) {
	var h healthFlags
	f := pflag.NewFlagSet("run", pflag.ContinueOnError)
	h.register(f)
	for _, name := range []string{"health-cmd", "health-interval", "health-timeout", "health-start-period",
		"health-start-interval", "health-retries", "no-healthcheck"} {
		if f.Lookup(name) == nil {
			t.Errorf("--%s not registered", name)
		}
	}
	if f.Parse([]string{"--health-interval=soon"}) == nil {
		t.Error("--health-interval=soon parsed")
	}
}

func TestImageHealthcheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want *runtime.HealthCheck
	}{
		{"docker", `{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Healthcheck":{"Test":["CMD-SHELL","curl -f http://localhost/ || exit 1"],"Interval":30000000000,"Timeout":3000000000,"StartPeriod":5000000000,"StartInterval":1000000000,"Retries":3}},"rootfs":{"type":"layers","diff_ids":[]}}`,
			&runtime.HealthCheck{Test: []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}, Interval: 30 * time.Second,
				Timeout: 3 * time.Second, StartPeriod: 5 * time.Second, StartInterval: time.Second, Retries: 3}},
		{"test only", `{"config":{"Healthcheck":{"Test":["CMD","/healthcheck"]}}}`,
			&runtime.HealthCheck{Test: []string{"CMD", "/healthcheck"}}},
		{"NONE", `{"config":{"Healthcheck":{"Test":["NONE"]}}}`, &runtime.HealthCheck{Test: []string{"NONE"}}},
		{"no healthcheck", `{"config":{"Env":["A=b"]}}`, nil},
		{"null healthcheck", `{"config":{"Healthcheck":null}}`, nil},
		{"no config", `{"os":"linux"}`, nil},
		{"not json", `{"config":`, nil},
		{"empty", ``, nil},
		{"bad types", `{"config":{"Healthcheck":{"Interval":"30s"}}}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := imageHealthcheck([]byte(tc.raw)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("imageHealthcheck = %+v, want %+v", got, tc.want)
			}
		})
	}
}
