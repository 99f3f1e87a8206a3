package balancer

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawCodec passes gRPC messages as bytes, so the test needs no protoc.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

// chatDesc is a bidirectional streaming echo: each message comes back with
// the server's name; the trailer counts them; "fail" ends with NotFound.
func chatDesc(name string) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "echo.Echo",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{StreamName: "Chat", ServerStreams: true, ClientStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				for n := 0; ; n++ {
					var msg []byte
					err := stream.RecvMsg(&msg)
					if errors.Is(err, io.EOF) {
						stream.SetTrailer(metadata.Pairs("echo-count", strconv.Itoa(n)))
						return nil
					}
					if err != nil {
						return err
					}
					if string(msg) == "fail" {
						return status.Error(codes.NotFound, "asked to fail")
					}
					out := []byte(name + ": " + string(msg))
					if err := stream.SendMsg(&out); err != nil {
						return err
					}
				}
			}}},
	}
}

// grpcTarget serves chatDesc, over h2c unless opts give credentials.
func grpcTarget(t *testing.T, name string, opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(opts, grpc.ForceServerCodec(rawCodec{}))...)
	srv.RegisterService(chatDesc(name), struct{}{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// chat streams messages through conn and returns the answers and the trailer.
func chat(t *testing.T, conn *grpc.ClientConn, messages ...string) ([]string, metadata.MD, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := conn.NewStream(ctx, &chatDesc("").Streams[0], "/echo.Echo/Chat", grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	var answers []string
	for _, m := range messages {
		// One message at a time: each answer comes back before the next is
		// sent, so the stream is really full duplex through berth.
		msg := []byte(m)
		if err := stream.SendMsg(&msg); err != nil {
			break
		}
		var answer []byte
		if err := stream.RecvMsg(&answer); err != nil {
			return answers, stream.Trailer(), err
		}
		answers = append(answers, string(answer))
	}
	stream.CloseSend()
	var extra []byte
	err = stream.RecvMsg(&extra)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return answers, stream.Trailer(), err
}

func TestGRPCStreamsThroughH2CAndHTTPS(t *testing.T) {
	pki := newTestPKI(t)
	target := grpcTarget(t, "one")
	plain := start(t, webConfig(serving("g", target)))
	secure := start(t, httpsConfig([]Certificate{pki.leaf(t, "grpc.example.com")}, serving("g", target)))

	clients := map[string]grpc.DialOption{
		"h2c":   grpc.WithTransportCredentials(insecure.NewCredentials()),
		"https": grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{ServerName: "grpc.example.com", RootCAs: pki.pool})),
	}
	addrs := map[string]string{"h2c": plain.Addr("web"), "https": secure.Addr("web")}
	for name, creds := range clients {
		t.Run(name, func(t *testing.T) {
			conn, err := grpc.NewClient(addrs[name], creds)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			checkChats(t, conn, "one")
		})
	}
}

// checkChats streams through conn to a chatDesc target named target: the
// answers, the trailer and an error status must all come back.
func checkChats(t *testing.T, conn *grpc.ClientConn, target string) {
	t.Helper()
	answers, trailer, err := chat(t, conn, "a", "b", "c")
	if err != nil || len(answers) != 3 || answers[2] != target+": c" || len(trailer.Get("echo-count")) != 1 || trailer.Get("echo-count")[0] != "3" {
		t.Errorf("chat: answers %q, trailer %v, err %v", answers, trailer, err)
	}
	answers, _, err = chat(t, conn, "a", "fail")
	if status.Code(err) != codes.NotFound || len(answers) != 1 {
		t.Errorf("a failing call: answers %q, err %v; want one answer and NotFound", answers, err)
	}
}
