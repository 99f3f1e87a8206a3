// Command idleconns measures the memory a balancer holds for idle client
// connections: it opens N keep-alive connections, sends one request on each,
// leaves them idle, and prints the resident memory of the process PID before
// and after, from /proc. Used by scripts/bench.sh; loopback only.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "balancer listener (loopback)")
	pid := flag.Int("pid", 0, "process ID of the balancer")
	n := flag.Int("n", 10000, "connections to open")
	flag.Parse()
	if err := run(*addr, *pid, *n); err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		os.Exit(1)
	}
}

func run(addr string, pid, n int) error {
	if !strings.HasPrefix(addr, "127.") && !strings.HasPrefix(addr, "localhost:") {
		return fmt.Errorf("%s is not a loopback address", addr)
	}
	before, err := rss(pid)
	if err != nil {
		return err
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		c.Write(req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		resp.Body.Close()
	}
	time.Sleep(2 * time.Second) // let the balancer's goroutines settle into their idle wait
	after, err := rss(pid)
	if err != nil {
		return err
	}
	fmt.Printf("idle connections: %d\nrss before: %.1f MiB\nrss after: %.1f MiB\nper connection: %.1f KiB\n",
		n, float64(before)/1024, float64(after)/1024, float64(after-before)/float64(n))
	return nil
}

// rss returns VmRSS of pid in KiB.
func rss(pid int) (int, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
