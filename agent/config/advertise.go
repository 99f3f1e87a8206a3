package config

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// defaultAdvertise finds the IPv4 address of the interface of the default route:
// the address other hosts most likely reach this one on. It reads /proc/net/route and
// otherwise asks the kernel which source address a UDP socket "connected" to a
// documentation address would use, which sends no packet. 127.0.0.1 is the last resort.
func defaultAdvertise() string {
	if f, err := os.Open("/proc/net/route"); err == nil {
		iface, err := defaultRouteInterface(f)
		f.Close()
		if err == nil {
			if ip := interfaceIPv4(iface); ip != "" {
				return ip
			}
		}
	}
	if conn, err := net.Dial("udp4", "192.0.2.1:9"); err == nil {
		defer conn.Close()
		if addr, ok := conn.LocalAddr().(*net.UDPAddr); ok && !addr.IP.IsUnspecified() {
			return addr.IP.String()
		}
	}
	return "127.0.0.1"
}

// defaultRouteInterface returns the interface of the default route in the
// /proc/net/route table: destination and mask 0, lowest metric.
func defaultRouteInterface(table io.Reader) (string, error) {
	scanner := bufio.NewScanner(table)
	best, bestMetric := "", -1
	first := true
	for scanner.Scan() {
		if first { // column titles
			first = false
			continue
		}
		// Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
		cols := strings.Fields(scanner.Text())
		if len(cols) < 8 || cols[1] != "00000000" || cols[7] != "00000000" {
			continue
		}
		metric, err := strconv.Atoi(cols[6])
		if err == nil && (bestMetric < 0 || metric < bestMetric) {
			best, bestMetric = cols[0], metric
		}
	}
	if err := scanner.Err(); err != nil {
		return "", err
	}
	if best == "" {
		return "", errors.New("no default route")
	}
	return best, nil
}

func interfaceIPv4(name string) string {
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return ""
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
