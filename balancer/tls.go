package balancer

import (
	"fmt"
	"slices"

	"github.com/berth-lb/berth/balancer/certstore"
)

// Certificate is a PEM certificate chain and its private key, by file.
type Certificate = certstore.Certificate

// alpn is what a terminating listener offers: HTTP/2 then HTTP/1.1 on https;
// nothing on tls, whose clients speak whatever the targets do.
func alpn(protocol string) []string {
	if protocol == ProtocolHTTPS {
		return []string{"h2", "http/1.1"}
	}
	return nil
}

// certStores returns the certificate store of every listener with
// certificates: the current one when its files are the same, else a new one
// (not yet watched). Reading a file is an error that leaves everything as it was.
func (b *Balancer) certStores(listeners []ListenerConfig) (map[string]*certstore.Store, error) {
	stores := map[string]*certstore.Store{}
	for _, lc := range listeners {
		if len(lc.Certificates) == 0 {
			continue
		}
		if s, ok := b.certs[lc.Name]; ok && slices.Equal(s.Files, lc.Certificates) {
			stores[lc.Name] = s
			continue
		}
		s, err := certstore.New(lc.Certificates)
		if err != nil {
			b.dropNewCertStores(stores)
			return nil, fmt.Errorf("balancer: listener %s: %w", lc.Name, err)
		}
		stores[lc.Name] = s
	}
	return stores, nil
}

// dropNewCertStores forgets the stores of a failed Apply that are not in use.
func (b *Balancer) dropNewCertStores(stores map[string]*certstore.Store) {
	for name, s := range stores {
		if b.certs[name] != s {
			s.Close()
		}
	}
}

// swapCertStores makes stores the current ones: new stores start watching
// their files, stores no longer used stop.
func (b *Balancer) swapCertStores(stores map[string]*certstore.Store) {
	for name, s := range b.certs {
		if stores[name] != s {
			s.Close()
		}
	}
	for name, s := range stores {
		if b.certs[name] != s {
			go s.Watch(b.log, name)
		}
	}
	b.certs = stores
}
