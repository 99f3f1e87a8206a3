package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/dockertest"
	"github.com/berth-lb/berth/internal/freeport"
	"github.com/docker/docker/api/types/container"
)

// TestDockerTCPDrain runs two echo containers behind a TCP listener: the
// connections reach both; when one container stops, new connections go to
// the other only while the open one to the stopping container keeps working
// until Docker kills it.
func TestDockerTCPDrain(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.BuildImage(t, cli, "github.com/berth-lb/berth/internal/l4echo")
	prefix := "berthtest" + fmt.Sprint(time.Now().UnixNano()%1e8)
	addr := freeport.TCP(t)
	ra := startAgentWith(t, addr, fmt.Sprintf(`node: {name: test, advertise: 127.0.0.1}
docker: {label-prefix: %s, resync: 5s}
cluster: {enabled: false}
admin: {listen: %s}
log: {access: "off"}
listeners:
  - name: echo
    protocol: tcp
    address: %s
    default: {forward: web}
groups:
  web: {deregistration-delay: 60s, health: {enabled: false}}
`, prefix, freeport.TCP(t), addr))
	ids := map[string]string{}
	for _, name := range []string{"one", "two"} {
		ids[name] = dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: labelled(prefix), Env: []string{"NAME=" + name},
			Ports: []string{"7000/tcp"}, StopTimeout: 4})
	}
	dial := func() (net.Conn, *bufio.Reader, string, error) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, nil, "", err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		name, err := r.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, nil, "", err
		}
		return c, r, strings.TrimSpace(name), nil
	}
	long := map[string]net.Conn{}
	readers := map[string]*bufio.Reader{}
	dockertest.Eventually(t, 20*time.Second, func() bool {
		c, r, name, err := dial()
		if err != nil {
			return false
		}
		if long[name] != nil {
			c.Close()
		} else {
			long[name], readers[name] = c, r
			c.SetDeadline(time.Time{})
		}
		return len(long) == 2
	}, "connections never reached both containers")
	for _, c := range long {
		defer c.Close()
	}
	echo := func(name, line string) error {
		long[name].SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(long[name], line+"\n"); err != nil {
			return err
		}
		got, err := readers[name].ReadString('\n')
		if err == nil && got != line+"\n" {
			err = fmt.Errorf("echoed %q", got)
		}
		return err
	}

	stopped := make(chan error, 1)
	go func() { stopped <- cli.ContainerStop(context.Background(), ids["one"], container.StopOptions{}) }()
	dockertest.Eventually(t, 10*time.Second, func() bool {
		for _, tg := range ra.agent.Targets() {
			if strings.Contains(tg.ID, ids["one"][:12]) && tg.State == "draining" {
				return true
			}
		}
		return false
	}, "the stopped container's target never drained")
	for i := range 6 {
		c, _, name, err := dial()
		if err != nil {
			t.Fatalf("connection %d during the drain: %v", i, err)
		}
		c.Close()
		if name != "two" {
			t.Fatalf("connection %d reached the draining container %s", i, name)
		}
	}
	if err := echo("one", "still open while draining"); err != nil {
		t.Errorf("the open connection to the draining container: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if err := echo("one", "after the kill"); err == nil {
		t.Error("the connection to the killed container still echoes")
	}
	if err := echo("two", "untouched"); err != nil {
		t.Errorf("the connection to the other container: %v", err)
	}
}

// TestDockerUDPTargets runs two echo containers whose UDP port is named by
// the port label behind a UDP listener: flows reach both, and each reply
// comes back to its client.
func TestDockerUDPTargets(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.BuildImage(t, cli, "github.com/berth-lb/berth/internal/l4echo")
	prefix := "berthtest" + fmt.Sprint(time.Now().UnixNano()%1e8)
	addr := freeport.UDP(t)
	startAgentWith(t, freeport.TCP(t), fmt.Sprintf(`node: {name: test, advertise: 127.0.0.1}
docker: {label-prefix: %s, resync: 5s}
cluster: {enabled: false}
admin: {listen: %s}
log: {access: "off"}
listeners:
  - name: dns
    protocol: udp
    address: %s
    default: {forward: web}
`, prefix, freeport.TCP(t), addr))
	for _, name := range []string{"one", "two"} {
		dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: labelled(prefix, "port", "7001/udp"),
			Env: []string{"NAME=" + name}, Ports: []string{"7001/udp"}})
	}
	seen := map[string]bool{}
	dockertest.Eventually(t, 20*time.Second, func() bool {
		c, err := net.Dial("udp", addr) // a new client port: a new flow
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Write([]byte("ping")); err != nil {
			return false
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return false
		}
		name, payload, _ := strings.Cut(string(buf[:n]), ":")
		if payload != "ping" {
			t.Fatalf("reply %q", buf[:n])
		}
		seen[name] = true
		return len(seen) == 2
	}, "UDP flows did not reach both containers (seen %v)", seen)
}
