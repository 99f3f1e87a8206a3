package dockertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/go-connections/nat"
)

const examplesApp = "github.com/berth-lb/berth/examples/app"

func TestRunExampleApp(t *testing.T) {
	cli := Client(t)
	tag := BuildImage(t, cli, examplesApp)
	id := Run(t, cli, RunOptions{
		Image:       tag,
		Labels:      map[string]string{"berth.group": "web"},
		Env:         []string{"NAME=probe", "VERSION=v9"},
		Ports:       []string{"8080/tcp"},
		StopTimeout: 3,
	})
	url := "http://127.0.0.1:" + HostPort(t, cli, id, "8080") + "/"

	var lastBody string
	var lastErr error
	Eventually(t, 10*time.Second, func() bool {
		lastBody, lastErr = getBody(url)
		return lastErr == nil && lastBody == "probe v9\n"
	}, "GET %s never answered %q: last body %q, last error %v", url, "probe v9\n", lastBody, lastErr)

	inspect, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got := inspect.Config.Labels["berth.group"]; got != "web" {
		t.Errorf("label berth.group = %q, want web", got)
	}
	if inspect.Config.StopTimeout == nil || *inspect.Config.StopTimeout != 3 {
		t.Errorf("stop timeout = %v, want 3", inspect.Config.StopTimeout)
	}
}

func TestBuildImageIsSharedWhileInUse(t *testing.T) {
	cli := Client(t)
	first := BuildImage(t, cli, examplesApp)
	second := BuildImage(t, cli, examplesApp)
	if first != second {
		t.Errorf("second BuildImage of one package = %s, want the image in use %s", second, first)
	}
}

func TestCleanupRemovesContainerAndImage(t *testing.T) {
	cli := Client(t)
	var tag, id string
	t.Run("run", func(t *testing.T) {
		tag = BuildImage(t, cli, examplesApp)
		id = Run(t, cli, RunOptions{Image: tag, Ports: []string{"8080"}})
	})

	ctx := context.Background()
	containers, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", id))})
	if err != nil {
		t.Fatal(err)
	}
	if len(containers) != 0 {
		t.Errorf("container %s still exists after its test ended", id)
	}
	images, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", tag))})
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 0 {
		t.Errorf("image %s still exists after its last user ended", tag)
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		spec    string
		want    nat.Port
		wantErr bool
	}{
		{spec: "8080/tcp", want: "8080/tcp"},
		{spec: "8080", want: "8080/tcp"},
		{spec: "53/udp", want: "53/udp"},
		{spec: "http", wantErr: true},
		{spec: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := parsePort(tt.spec)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parsePort(%q) = %q, %v; want %q, error %v", tt.spec, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestImageName(t *testing.T) {
	tests := []struct{ pkgPath, want string }{
		{"github.com/berth-lb/berth/examples/app", "app"},
		{"example.com/x/BigApp", "bigapp"},
		{"example.com/x/app+v2", "app-v2"},
	}
	for _, tt := range tests {
		if got := imageName(tt.pkgPath); got != tt.want {
			t.Errorf("imageName(%q) = %q, want %q", tt.pkgPath, got, tt.want)
		}
	}
}

// recordingTB records Fatalf instead of stopping the goroutine, so a test can
// see what Eventually reports.
type recordingTB struct {
	testing.TB
	fatal string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func TestEventually(t *testing.T) {
	t.Run("returns once the condition holds", func(t *testing.T) {
		calls := 0
		tb := &recordingTB{TB: t}
		Eventually(tb, time.Second, func() bool { calls++; return calls == 3 }, "never")
		if tb.fatal != "" || calls != 3 {
			t.Errorf("fatal %q after %d calls, want no failure after 3 calls", tb.fatal, calls)
		}
	})
	t.Run("fails with the message after the timeout", func(t *testing.T) {
		tb := &recordingTB{TB: t}
		start := time.Now()
		Eventually(tb, 50*time.Millisecond, func() bool { return false }, "target %s never healthy", "a")
		if want := "target a never healthy (waited 50ms)"; tb.fatal != want {
			t.Errorf("fatal = %q, want %q", tb.fatal, want)
		}
		if elapsed := time.Since(start); elapsed < 50*time.Millisecond {
			t.Errorf("gave up after %s, before the 50ms timeout", elapsed)
		}
	})
}

func getBody(url string) (string, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
