package l4

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

func TestServerName(t *testing.T) {
	// A real ClientHello, captured from crypto/tls.
	hello := func(name string) []byte {
		client, server := net.Pipe()
		go tls.Client(client, &tls.Config{ServerName: name, InsecureSkipVerify: true}).Handshake()
		defer client.Close()
		defer server.Close()
		raw, _, err := readClientHello(server, time.Now().Add(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return raw[5:]
	}
	withName := hello("db.example.com")
	tests := []struct {
		name    string
		body    []byte
		want    string
		wantErr bool
	}{
		{"server name", withName[4:], "db.example.com", false},
		{"truncated", withName[4:40], "", true},
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
