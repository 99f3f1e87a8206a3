// Command l4echo is the target of berth's L4 integration tests, run in a
// container built FROM scratch: on TCP port 7000 it writes its NAME on a line,
// then echoes every byte; on UDP port 7001 it answers each datagram with
// "NAME:" and the datagram. It keeps its connections through SIGTERM, as a
// database finishing its sessions would, so a test can watch a drain; Docker's
// SIGKILL at the end of the stop timeout ends it.
package main

import (
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signal.Ignore(syscall.SIGTERM)
	name := os.Getenv("NAME")
	ln, err := net.Listen("tcp", ":7000")
	if err != nil {
		log.Fatalf("l4echo: %v", err)
	}
	udp, err := net.ListenPacket("udp", ":7001")
	if err != nil {
		log.Fatalf("l4echo: %v", err)
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				log.Fatalf("l4echo: udp: %v", err)
			}
			udp.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatalf("l4echo: accept: %v", err)
		}
		go func() {
			defer c.Close()
			io.WriteString(c, name+"\n")
			io.Copy(c, c)
		}()
	}
}
