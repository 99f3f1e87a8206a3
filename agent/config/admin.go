package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)

// LoopbackOnly reports whether the admin listener binds loopback alone
// (127.0.0.0/8, ::1 or localhost), where only this host's own users reach it.
func (a Admin) LoopbackOnly() bool {
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// admin checks the listen address, and refuses one beyond loopback without a
// token: whoever reaches it could read the fleet's state and drain its targets.
func (v *validation) admin(a Admin) {
	v.address("admin.listen", a.Listen, true)
	if a.TokenFile == "" && !a.Insecure && !a.LoopbackOnly() {
		if _, _, err := net.SplitHostPort(a.Listen); err == nil {
			v.add("admin.token-file", "is required because admin.listen %s is not a loopback address: anyone who reaches it could read this node's state and drain its targets. "+
				"Set admin.token-file to the path of a token (%s), listen on 127.0.0.1, or set admin.insecure: true to run without one", a.Listen, TokenAdvice)
		}
	}
	for i, h := range a.AllowedHosts {
		if _, err := netip.ParseAddr(h); err != nil && !hostName.MatchString(h) {
			v.add(fmt.Sprintf("admin.allowed-hosts[%d]", i), "%q is not a host name or IP address: write the name alone, without scheme or port, like berth-admin.internal", h)
		}
	}
}
