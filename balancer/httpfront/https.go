package httpfront

import (
	"strconv"
	"time"
)

// redirectToHTTPS answers a request of an http listener with
// redirect-to-https: 301 to the same host, path and query on https. It
// reports whether the connection may carry another request.
func (c *ClientConn) redirectToHTTPS(rt *Route, start time.Time) bool {
	host, path := c.req.HostAndPath()
	if err := c.discardRequestBody(); err != nil {
		return false
	}
	c.ex.RedirectURL = AppendHTTPSLocation(c.ex.RedirectURL[:0], host, path, c.req.Query(), rt.RedirectPort)
	keep := c.keepsAlive()
	c.bw.WriteString("HTTP/1.1 301 Moved Permanently\r\nLocation: ")
	c.bw.Write(c.ex.RedirectURL)
	c.bw.WriteString("\r\nContent-Length: 0\r\n")
	if !keep {
		c.bw.WriteString("Connection: close\r\n")
	}
	c.bw.WriteString("\r\n")
	err := c.bw.Flush()
	rt.Fallback.Stats.Observe(301, time.Since(start))
	return err == nil && keep
}

// AppendHTTPSLocation appends where a listener that redirects every request
// to https on port sends the request for host, path and query.
func AppendHTTPSLocation(dst, host, path, query []byte, port int) []byte {
	dst = append(dst, "https://"...)
	dst = append(dst, host...)
	if port != 443 {
		dst = append(dst, ':')
		dst = strconv.AppendInt(dst, int64(port), 10)
	}
	dst = append(dst, path...)
	if len(query) > 0 {
		dst = append(dst, '?')
		dst = append(dst, query...)
	}
	return dst
}
