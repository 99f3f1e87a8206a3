// Package dockertest runs integration tests against the real Docker engine of
// the machine: it builds FROM scratch images from Go main packages (no registry
// is needed), runs containers with ports published on 127.0.0.1, and removes
// every container and image it created, by ID, when the test ends.
package dockertest

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/go-connections/nat"
)

// ImageLabel is set on every image BuildImage builds (its value is the tag), so
// images left behind by a killed test run, and their containers, which inherit
// the label, can be found:
// docker image ls --filter label=org.berth-lb.dockertest
const ImageLabel = "org.berth-lb.dockertest"

const (
	// pingTimeout is how long Client waits for the daemon before deciding there is none.
	pingTimeout = 5 * time.Second
	// buildTimeout bounds compiling a package and building its image; the first
	// compile of a package with a cold build cache is the slow part.
	buildTimeout = 5 * time.Minute
	// apiTimeout bounds a single container or image call.
	apiTimeout = 30 * time.Second
	// pollInterval is how often Eventually re-checks its condition.
	pollInterval = 20 * time.Millisecond
)

// Client returns a client for the Docker engine of the environment (DOCKER_HOST
// or /var/run/docker.sock), negotiating the API version with the daemon. When no
// daemon answers, the test is skipped, except in CI (CI=true), where a missing
// daemon is a broken machine and the test fails.
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("dockertest: docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		msg := fmt.Sprintf("dockertest: no Docker daemon answers at %s (%v); start one with scripts/ensure-docker.sh", cli.DaemonHost(), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return cli
}

// builtImage is the image of one Go package, shared by the tests of a test
// binary that use it at the same time. The binary is compiled once per test
// binary; the image is removed when its last user ends and is built again from
// the kept binary if a later test asks for it.
type builtImage struct {
	mu       sync.Mutex
	compiled bool
	binary   []byte
	err      error
	// tag and id are empty while no image exists.
	tag   string
	id    string
	users int
}

var (
	imagesMu sync.Mutex
	images   = map[string]*builtImage{}
)

// BuildImage compiles the Go main package pkgPath (an import path such as
// "github.com/berth-lb/berth/examples/app") statically and builds a FROM scratch
// image holding only that binary, tagged "berth-test-<name>:<random>" where name
// is the last element of pkgPath. It returns the tag. The package is compiled
// once per test binary; the image is shared by the tests using it at the same
// time and removed, by ID, when the last of them ends.
func BuildImage(t testing.TB, cli *client.Client, pkgPath string) string {
	t.Helper()
	imagesMu.Lock()
	built, ok := images[pkgPath]
	if !ok {
		built = &builtImage{}
		images[pkgPath] = built
	}
	imagesMu.Unlock()

	built.mu.Lock()
	defer built.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if !built.compiled {
		built.binary, built.err = compileStatic(ctx, pkgPath)
		built.compiled = true
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
	if built.users == 0 {
		tag := "berth-test-" + imageName(pkgPath) + ":" + randomHex(t, 6)
		id, err := buildScratchImage(ctx, cli, tag, built.binary)
		if err != nil {
			t.Fatal(err)
		}
		built.tag, built.id = tag, id
	}
	built.users++
	t.Cleanup(func() {
		built.mu.Lock()
		defer built.mu.Unlock()
		built.users--
		if built.users > 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, built.id, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("dockertest: remove image %s (%s): %v", built.tag, built.id, err)
		}
		built.tag, built.id = "", ""
	})
	return built.tag
}

// compileStatic builds pkgPath for Linux without cgo, so the binary runs in an
// image with no libc, and returns its bytes.
func compileStatic(ctx context.Context, pkgPath string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "berth-dockertest-")
	if err != nil {
		return nil, fmt.Errorf("dockertest: temp dir for %s: %w", pkgPath, err)
	}
	defer os.RemoveAll(dir)

	out := filepath.Join(dir, "binary")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkgPath)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if output, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dockertest: go build %s: %w\n%s", pkgPath, err, output)
	}
	binary, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("dockertest: read binary of %s: %w", pkgPath, err)
	}
	return binary, nil
}

// buildScratchImage builds an image from a context holding only binary and a
// Dockerfile, with the classic builder, which needs no registry for FROM
// scratch. It returns the image ID.
func buildScratchImage(ctx context.Context, cli *client.Client, tag string, binary []byte) (string, error) {
	const dockerfile = "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n"
	var buildContext bytes.Buffer
	tw := tar.NewWriter(&buildContext)
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{"app", 0o755, binary},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return "", fmt.Errorf("dockertest: build context for %s: %w", tag, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", fmt.Errorf("dockertest: build context for %s: %w", tag, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("dockertest: build context for %s: %w", tag, err)
	}

	// NoCache and the label give every build its own image ID: two test
	// binaries building the same package must not share an image, or the first
	// to finish would remove, by ID, the image the other still runs.
	resp, err := cli.ImageBuild(ctx, &buildContext, build.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      map[string]string{ImageLabel: tag},
		NoCache:     true,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("dockertest: build image %s: %w", tag, err)
	}
	defer resp.Body.Close()
	var progress bytes.Buffer
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, &progress, 0, false, nil); err != nil {
		return "", fmt.Errorf("dockertest: build image %s: %w\n%s", tag, err, progress.String())
	}

	inspect, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		return "", fmt.Errorf("dockertest: inspect built image %s: %w", tag, err)
	}
	return inspect.ID, nil
}

// imageName turns the last element of an import path into a valid image
// repository name component (lowercase letters, digits, '.', '_' and '-').
func imageName(pkgPath string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		default:
			return '-'
		}
	}, path.Base(pkgPath))
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("dockertest: random tag: %v", err)
	}
	return hex.EncodeToString(b)
}

// RunOptions describe a container for Run.
type RunOptions struct {
	// Image is the image to run, typically a tag from BuildImage.
	Image string
	// Name is the container name; empty lets Docker choose one. A name must be
	// unique on the daemon, also across test packages running in parallel.
	Name   string
	Labels map[string]string
	// Env holds KEY=value pairs.
	Env []string
	// Ports are container ports such as "8080/tcp" ("8080" means tcp). Each is
	// published on HostIP with a host port Docker picks; see HostPort.
	Ports []string
	// HostIP is where the ports are published: "127.0.0.1" when empty, or
	// "0.0.0.0" for every interface (a target the fleet may share).
	HostIP string
	// StopTimeout is the seconds Docker waits after SIGTERM before SIGKILL on
	// a stop; zero keeps Docker's default (10s).
	StopTimeout int
}

// Run creates and starts a container and returns its ID. The container is
// removed, by ID and forcibly, when the test ends.
func Run(t testing.TB, cli *client.Client, opts RunOptions) string {
	t.Helper()
	config := &container.Config{
		Image:        opts.Image,
		Labels:       opts.Labels,
		Env:          opts.Env,
		ExposedPorts: nat.PortSet{},
	}
	if opts.StopTimeout != 0 {
		config.StopTimeout = &opts.StopTimeout
	}
	hostConfig := &container.HostConfig{PortBindings: nat.PortMap{}}
	for _, spec := range opts.Ports {
		port, err := parsePort(spec)
		if err != nil {
			t.Fatal(err)
		}
		config.ExposedPorts[port] = struct{}{}
		hostConfig.PortBindings[port] = []nat.PortBinding{{HostIP: cmp.Or(opts.HostIP, "127.0.0.1"), HostPort: ""}}
	}

	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, config, hostConfig, nil, nil, opts.Name)
	if err != nil {
		t.Fatalf("dockertest: create container from %s: %v", opts.Image, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
		defer cancel()
		if err := cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			t.Errorf("dockertest: remove container %s: %v", created.ID, err)
		}
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("dockertest: start container %s from %s: %v", created.ID, opts.Image, err)
	}
	return created.ID
}

// parsePort reads "8080/tcp" or "8080" (tcp).
func parsePort(spec string) (nat.Port, error) {
	number, proto, ok := strings.Cut(spec, "/")
	if !ok {
		proto = "tcp"
	}
	port, err := nat.NewPort(proto, number)
	if err != nil {
		return "", fmt.Errorf("dockertest: port %q: want a container port like 8080/tcp: %w", spec, err)
	}
	return port, nil
}

// HostPort returns the host port Docker published on 127.0.0.1 for the
// container port ("8080/tcp" or "8080") of a running container.
func HostPort(t testing.TB, cli *client.Client, id, containerPort string) string {
	t.Helper()
	port, err := parsePort(containerPort)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	inspect, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("dockertest: inspect container %s: %v", id, err)
	}
	if inspect.NetworkSettings != nil {
		for _, binding := range inspect.NetworkSettings.Ports[port] {
			if binding.HostIP == "127.0.0.1" && binding.HostPort != "" {
				return binding.HostPort
			}
		}
	}
	t.Fatalf("dockertest: container %s publishes no 127.0.0.1 host port for %s (is it running, and was the port in RunOptions.Ports?)", id, port)
	return ""
}

// Eventually checks cond every 20ms until it returns true, and fails the test
// with msg (formatted with args) if it has not by the end of timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (waited %s)", fmt.Sprintf(msg, args...), timeout)
			return // a testing.TB whose Fatalf returns must not keep the loop going
		}
		<-ticker.C
	}
}
