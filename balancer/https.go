package balancer

import (
	"bytes"
	"strconv"
	"time"
)

// redirectToHTTPS answers a request of an http listener with
// redirect-to-https: 301 to the same host, path and query on https. It
// reports whether the connection may carry another request.
func (c *clientConn) redirectToHTTPS(rt *route, start time.Time) bool {
	host, path := c.req.hostAndPath()
	if err := c.discardRequestBody(); err != nil {
		return false
	}
	location := make([]byte, 0, 64+len(host)+len(path))
	location = append(location, "https://"...)
	location = append(location, host...)
	if rt.redirectPort != 443 {
		location = append(location, ':')
		location = strconv.AppendInt(location, int64(rt.redirectPort), 10)
	}
	location = append(location, path...)
	if target := c.req.first[1].of(c.req.raw); bytes.IndexByte(target, '?') >= 0 {
		location = append(location, target[bytes.IndexByte(target, '?'):]...)
	}
	keep := c.req.keepAlive()
	c.bw.WriteString("HTTP/1.1 301 Moved Permanently\r\nLocation: ")
	c.bw.Write(location)
	c.bw.WriteString("\r\nContent-Length: 0\r\n")
	if !keep {
		c.bw.WriteString("Connection: close\r\n")
	}
	c.bw.WriteString("\r\n")
	err := c.bw.Flush()
	rt.fallback.stats.observe(301, time.Since(start))
	return err == nil && keep
}
