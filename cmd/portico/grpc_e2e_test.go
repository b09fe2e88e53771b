package main

import (
	"bufio"
	"context"
	stdtls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// grpcManifests: a Gateway with a plain (h2c) and a TLS listener, and a
// GRPCRoute sending test.Echo to a grpc-go server, test.Down to a port
// nothing listens on, test.Empty to a Service without endpoints and
// test.Slow to a server that ignores the call's deadline; a second
// GRPCRoute sends secure.example.test to a grpc-go server over TLS, as
// its BackendTLSPolicy says. The
// echo Service port declares no appProtocol: a GRPCRoute speaks HTTP/2 to
// its backends whatever the port says.
const grpcManifests = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: grpc, namespace: default}
spec:
  gatewayClassName: portico
  addresses: [{value: 127.0.1.30}]
  listeners:
  - {name: h2c, protocol: HTTP, port: %[1]d}
  - name: h2
    protocol: HTTPS
    port: %[2]d
    hostname: app.example.test
    tls: {certificateRefs: [{name: app-tls}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{name: grpc}]
  hostnames: [grpc.example.test, app.example.test]
  rules:
  - matches: [{method: {service: test.Echo}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-via, value: portico}]}
    backendRefs: [{name: grpc-echo, port: 80}]
  - matches: [{method: {service: test.Down}}]
    backendRefs: [{name: grpc-down, port: 80}]
  - matches: [{method: {service: test.Empty}}]
    backendRefs: [{name: grpc-empty, port: 80}]
  - matches: [{method: {service: test.Slow}}]
    backendRefs: [{name: grpc-slow, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: grpc-empty, namespace: default}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: secure, namespace: default}
spec:
  parentRefs: [{name: grpc}]
  hostnames: [secure.example.test]
  rules:
  - backendRefs: [{name: grpc-secure, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: grpc-secure, namespace: default}
spec:
  targetRefs: [{group: "", kind: Service, name: grpc-secure}]
  validation:
    hostname: grpc-backend.example.test
    caCertificateRefs: [{group: "", kind: ConfigMap, name: backend-ca}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: backend-ca, namespace: default}
data:
  ca.crt: %[3]q
`

// startGRPCEcho serves test.Echo on loopback with grpc-go: Unary echoes
// its message and the x-tenant metadata it got, Fail answers NOT_FOUND,
// Bidi echoes each message as it arrives and ends with a trailer.
func startGRPCEcho(t *testing.T, opts ...grpc.ServerOption) (port string) {
	t.Helper()
	unary := func(name string, h func(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error)) grpc.MethodDesc {
		return grpc.MethodDesc{MethodName: name, Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return h(ctx, in)
		}}
	}
	desc := grpc.ServiceDesc{
		ServiceName: "test.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			unary("Unary", func(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
				md, _ := metadata.FromIncomingContext(ctx)
				return wrapperspb.String(fmt.Sprintf("%s tenant=%s", in.Value, strings.Join(md.Get("x-tenant"), ","))), nil
			}),
			unary("Fail", func(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
				return nil, status.Error(codes.NotFound, "no such thing: ümlaut 100%")
			}),
		},
		Streams: []grpc.StreamDesc{{
			StreamName: "Bidi", ServerStreams: true, ClientStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				for {
					in := new(wrapperspb.StringValue)
					err := stream.RecvMsg(in)
					if errors.Is(err, io.EOF) {
						stream.SetTrailer(metadata.Pairs("x-count", "done"))
						return nil
					}
					if err != nil {
						return err
					}
					if err := stream.SendMsg(wrapperspb.String("echo " + in.Value)); err != nil {
						return err
					}
				}
			},
		}},
	}
	srv := grpc.NewServer(opts...)
	srv.RegisterService(&desc, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port
}

// startSlowH2C serves HTTP/2 with prior knowledge on loopback and answers
// nothing until the test ends (or a bound passes), whatever grpc-timeout
// says: unlike grpc-go, which ends a call at its deadline itself, it
// leaves the deadline to Portico.
func startSlowH2C(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestGRPCThroughGateway makes gRPC calls with grpc-go through a Gateway
// and a GRPCRoute, over h2c and over TLS: a unary call with metadata, a
// backend's error status, a bidirectional stream whose every message is
// answered before the next is sent (nothing buffers the stream), and the
// errors Portico answers itself in gRPC form (no route, backend down, no
// endpoints, the call's grpc-timeout).
func TestGRPCThroughGateway(t *testing.T) {
	e := startEnv(t, "--gateway-address-pool", "127.0.1.0/24")
	echoPort, slowPort := startGRPCEcho(t), startSlowH2C(t)
	backendCert, backendKey := e.ca.issue(t, 7, "grpc-backend.example.test")
	pair, err := stdtls.X509KeyPair(backendCert, backendKey)
	if err != nil {
		t.Fatal(err)
	}
	securePort := startGRPCEcho(t, grpc.Creds(credentials.NewServerTLSFromCert(&pair)))
	h2cPort, h2Port := freePort(t), freePort(t)
	downPort := fmt.Sprint(freePort(t))
	e.write("grpc.yaml", fmt.Sprintf(grpcManifests, h2cPort, h2Port, e.ca.kit.PEM)+"---\n"+manifestService("grpc-secure", securePort)+"---\n"+
		manifestService("grpc-echo", echoPort)+"---\n"+manifestService("grpc-down", downPort)+"---\n"+manifestService("grpc-slow", slowPort))
	waitSockets(t, e.proc.listeners, fmt.Sprintf("HTTP 127.0.1.30:%d", h2cPort), fmt.Sprintf("HTTPS 127.0.1.30:%d", h2Port))

	dial := func(addr string, creds credentials.TransportCredentials, authority string) *grpc.ClientConn {
		t.Helper()
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds), grpc.WithAuthority(authority))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	h2c := dial(fmt.Sprintf("127.0.1.30:%d", h2cPort), insecure.NewCredentials(), "grpc.example.test")
	h2 := dial(fmt.Sprintf("127.0.1.30:%d", h2Port), credentials.NewTLS(&stdtls.Config{RootCAs: e.ca.pool}), "app.example.test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	unary := func(cc *grpc.ClientConn, method, msg string, opts ...grpc.CallOption) (string, error) {
		out := new(wrapperspb.StringValue)
		err := cc.Invoke(metadata.AppendToOutgoingContext(ctx, "x-tenant", "t1"), method, wrapperspb.String(msg), out, opts...)
		return out.Value, err
	}

	t.Run("unary", func(t *testing.T) {
		for name, cc := range map[string]*grpc.ClientConn{"h2c": h2c, "h2": h2} {
			var header metadata.MD
			got, err := unary(cc, "/test.Echo/Unary", "hello", grpc.Header(&header))
			if err != nil || got != "hello tenant=t1" {
				t.Errorf("%s: Unary = %q, %v; want the echo with its metadata", name, got, err)
			}
			if v := header.Get("x-via"); len(v) != 1 || v[0] != "portico" {
				t.Errorf("%s: response header x-via %v, want the route's filter to add portico", name, v)
			}
		}
		_, err := unary(h2c, "/test.Echo/Fail", "x")
		if s := status.Convert(err); s.Code() != codes.NotFound || s.Message() != "no such thing: ümlaut 100%" {
			t.Errorf("Fail: %v, want the backend's NOT_FOUND and message", err)
		}
	})

	t.Run("backend TLS", func(t *testing.T) {
		secure := dial(fmt.Sprintf("127.0.1.30:%d", h2cPort), insecure.NewCredentials(), "secure.example.test")
		if got, err := unary(secure, "/test.Echo/Unary", "over TLS"); err != nil || got != "over TLS tenant=t1" {
			t.Errorf("Unary to a TLS backend = %q, %v", got, err)
		}
	})

	t.Run("bidi", func(t *testing.T) {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		stream, err := h2c.NewStream(sctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/test.Echo/Bidi")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			msg := fmt.Sprintf("m%d", i)
			if err := stream.SendMsg(wrapperspb.String(msg)); err != nil {
				t.Fatalf("send %s: %v", msg, err)
			}
			// The answer must come while the request stream is still open.
			in := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(in); err != nil || in.Value != "echo "+msg {
				t.Fatalf("receive after %s: %q, %v", msg, in.Value, err)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if err := stream.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
			t.Fatalf("end of stream: %v, want io.EOF (status OK)", err)
		}
		if v := stream.Trailer().Get("x-count"); len(v) != 1 || v[0] != "done" {
			t.Errorf("trailer x-count %v, want the backend's trailer", v)
		}
	})

	t.Run("portico errors", func(t *testing.T) {
		tests := []struct {
			method string
			code   codes.Code
			msg    string
		}{
			{"/other.Service/Call", codes.Unimplemented, "404 Not Found: no route serves this call"},
			{"/test.Down/Call", codes.Unavailable, "502 Bad Gateway: cannot connect to backend default/grpc-down:80"},
			{"/test.Empty/Call", codes.Unavailable, "503 Service Unavailable: no ready endpoints for backend default/grpc-empty:80"},
		}
		for _, tt := range tests {
			_, err := unary(h2c, tt.method, "x")
			if s := status.Convert(err); s.Code() != tt.code || s.Message() != tt.msg {
				t.Errorf("%s: %v, want %s %q", tt.method, err, tt.code, tt.msg)
			}
		}
	})

	t.Run("grpc-timeout", func(t *testing.T) {
		// A raw HTTP/2 call, so that the status seen is the one Portico
		// sends (grpc-go would end the call on its own deadline first).
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		c := &http.Client{Transport: &http.Transport{Protocols: &protocols, DialContext: e.dialGateway(fmt.Sprintf("127.0.1.30:%d", h2cPort))}}
		defer c.CloseIdleConnections()
		// An empty message: a zero flag byte and a zero length.
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://grpc.example.test/test.Slow/Call", strings.NewReader("\x00\x00\x00\x00\x00"))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		req.Header.Set("Grpc-Timeout", "200m")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/grpc" || len(body) != 0 ||
			resp.Header.Get("Grpc-Status") != "4" || !strings.HasPrefix(resp.Header.Get("Grpc-Message"), "504 Gateway Timeout") {
			t.Errorf("a call past its grpc-timeout: %d %v body %q, want 200 trailers-only with grpc-status 4", resp.StatusCode, resp.Header, body)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + e.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`portico_grpc_responses_total{grpc_status="OK",kind="GRPCRoute",name="echo",namespace="default",rule="0/0"} 3`,
			`portico_grpc_responses_total{grpc_status="NOT_FOUND",kind="GRPCRoute",name="echo",namespace="default",rule="0/0"} 1`,
			`portico_grpc_responses_total{grpc_status="UNAVAILABLE",kind="GRPCRoute",name="echo",namespace="default",rule="1/0"} 1`,
			`portico_grpc_responses_total{grpc_status="UNAVAILABLE",kind="GRPCRoute",name="echo",namespace="default",rule="2/0"} 1`,
			`portico_grpc_responses_total{grpc_status="DEADLINE_EXCEEDED",kind="GRPCRoute",name="echo",namespace="default",rule="3/0"} 1`,
			`portico_grpc_responses_total{grpc_status="UNIMPLEMENTED",kind="Unmatched",name="",namespace="",rule=""} 1`,
			`portico_request_duration_seconds_count{code="5xx",kind="GRPCRoute",method="POST",name="echo",namespace="default",rule="2/0"} 1`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("no %s", want)
			}
		}
	})
}

// TestGRPCErrorKeepsConnectionClose: an error Portico answers in gRPC form
// keeps the headers the front door set before routing. Under the net/http
// engine an HTTP/1.0 request with Transfer-Encoding is answered with
// Connection: close (its framing is ambiguous); a gRPC content type must
// not drop that, or what follows the declared body would be served as a
// next request on the same connection.
func TestGRPCErrorKeepsConnectionClose(t *testing.T) {
	e := startEnv(t, "--http1-engine", "net/http")
	e.routeApp(fmt.Sprint(freePort(t))) // nothing listens: Portico answers 502 itself
	smuggled := "GET /api/smuggled HTTP/1.1\r\nHost: app.example.test\r\n\r\n"
	raw := "POST /api/x HTTP/1.0\r\nHost: app.example.test\r\nConnection: keep-alive\r\nContent-Type: application/grpc\r\n" +
		"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + fmt.Sprintf("%x\r\n", len(smuggled)) + smuggled + "\r\n0\r\n\r\n"
	c := e.dialHTTPS("app.example.test")
	br := bufio.NewReader(c)
	resp, _ := exchange(t, c, br, raw)
	if resp.Header.Get("Grpc-Status") != "14" {
		t.Errorf("answer %d %v, want a gRPC UNAVAILABLE", resp.StatusCode, resp.Header)
	}
	if n, err := br.ReadByte(); err == nil {
		t.Errorf("the connection stayed open after an HTTP/1.0 request with Transfer-Encoding (read %q)", n)
	}
}
