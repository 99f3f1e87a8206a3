// Package certstore keeps the certificates of the listeners that terminate TLS
// (https, and tls with certificates): it loads a listener's PEM files, picks a
// certificate by the client's SNI and signature algorithms during the
// handshake, and reloads the files when they change, without a restart and
// without closing a connection. It also holds the server-side TLS policy
// (ServerConfig).
//
// Handshakes read the loaded set through an atomic pointer; only Watch's
// goroutine touches the files. It must not import another balancer package:
// which listener uses which store is the balancer's business (tls.go there).
package certstore

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// certReloadInterval is how often a listener's certificate files are checked
// for a change.
const certReloadInterval = time.Second

// Store serves the certificates of one terminating listener (https, or
// tls with certificates). Handshakes read the current set through an atomic
// pointer, so a renewed certificate is served to new connections while the
// open ones carry on with the old one.
type Store struct {
	Files   []Certificate
	current atomic.Pointer[certSet]
	stop    chan struct{}
}

// certSet is one loading of the files; stamp says which versions they were.
type certSet struct {
	certs []tls.Certificate
	stamp string
}

// New loads the files; an unreadable file or a key that does not
// match its certificate is an error.
func New(files []Certificate) (*Store, error) {
	s := &Store{Files: slices.Clone(files), stop: make(chan struct{})}
	set, err := loadCertSet(files)
	if err != nil {
		return nil, err
	}
	s.current.Store(set)
	return s, nil
}

// fileStamp identifies the versions of the files by size and modification
// time: cheap enough to poll every second.
func fileStamp(files []Certificate) (string, error) {
	var b strings.Builder
	for _, c := range files {
		for _, name := range []string{c.CertFile, c.KeyFile} {
			fi, err := os.Stat(name)
			if err != nil {
				return "", fmt.Errorf("certificate %s: %w", name, err)
			}
			b.WriteString(strconv.FormatInt(fi.ModTime().UnixNano(), 10))
			b.WriteByte('/')
			b.WriteString(strconv.FormatInt(fi.Size(), 10))
			b.WriteByte(' ')
		}
	}
	return b.String(), nil
}

func loadCertSet(files []Certificate) (*certSet, error) {
	stamp, err := fileStamp(files)
	if err != nil {
		return nil, err
	}
	set := &certSet{stamp: stamp}
	for _, c := range files {
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", c.CertFile, err)
		}
		set.certs = append(set.certs, pair)
	}
	return set, nil
}

// reload loads the files again when they changed since the last loading. A
// file caught half-written fails to load and is tried again at the next poll;
// the old certificates stay until then.
func (s *Store) reload(log *slog.Logger, listener string) {
	stamp, err := fileStamp(s.Files)
	if err != nil || stamp == s.current.Load().stamp {
		return
	}
	set, err := loadCertSet(s.Files)
	if err != nil {
		log.Warn("balancer: certificate reload failed; serving the previous certificates", "listener", listener, "err", err)
		return
	}
	s.current.Store(set)
	log.Info("balancer: certificates reloaded", "listener", listener)
}

// Watch polls the files until close.
func (s *Store) Watch(log *slog.Logger, listener string) {
	tick := time.NewTicker(certReloadInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.reload(log, listener)
		}
	}
}

// Close stops Watch.
func (s *Store) Close() { close(s.stop) }

// getCertificate picks the first certificate that fits the client's SNI
// (wildcards included) and its signature algorithms; the first certificate
// when none does.
func (s *Store) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := s.current.Load().certs
	if hello.ServerName != "" {
		for i := range certs {
			if hello.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
	}
	return &certs[0], nil
}

// ServerConfig is the modern default policy: TLS 1.2 and 1.3 only; TLS
// 1.2 with forward-secret AEAD suites only (ECDHE with AES-GCM or
// ChaCha20-Poly1305); TLS 1.3 with Go's suites, which are all AEAD.
// nextProtos is the ALPN list offered (h2 first on https listeners).
func (s *Store) ServerConfig(nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.getCertificate,
		NextProtos:     nextProtos,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// Certificate is a PEM certificate chain and its private key, by file.
type Certificate struct {
	CertFile string
	KeyFile  string
}
