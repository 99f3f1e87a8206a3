package l4

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// capturedHello is the body of a real ClientHello for name, from crypto/tls.
func capturedHello(t testing.TB, name string) []byte {
	client, server := net.Pipe()
	go tls.Client(client, &tls.Config{ServerName: name, InsecureSkipVerify: true}).Handshake()
	defer client.Close()
	defer server.Close()
	raw, _, err := readClientHello(server, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return raw[5+4:] // past the record and handshake headers
}

func TestServerName(t *testing.T) {
	withName := capturedHello(t, "db.example.com")
	tests := []struct {
		name    string
		body    []byte
		want    string
		wantErr bool
	}{
		{"server name", withName, "db.example.com", false},
		{"truncated", withName[:36], "", true},
		{"no extensions", append([]byte{3, 3}, append(make([]byte, 32), 0, 0, 2, 0x13, 1, 1, 0)...), "", false},
		{"empty", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := serverName(tt.body)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// FuzzServerName feeds the ClientHello parser arbitrary bodies (it reads
// them from any client of a tls listener): it must not panic, must return a
// name or an error, never both, and the name lower-cased.
func FuzzServerName(f *testing.F) {
	f.Add(capturedHello(f, "db.example.com"))
	f.Fuzz(func(t *testing.T, hello []byte) {
		name, err := serverName(hello)
		if err != nil && name != "" {
			t.Fatalf("both a name %q and an error %v", name, err)
		}
		if strings.ToLower(name) != name {
			t.Fatalf("name %q is not lower-cased", name)
		}
	})
}
