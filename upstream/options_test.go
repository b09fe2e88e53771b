package upstream

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// startOptionsProxy is startProxy with ForwardOptions built per request.
func startOptionsProxy(t *testing.T, tr *Transport, b *Backend, opts func() *ForwardOptions) *proxy {
	t.Helper()
	p := &proxy{tr: tr, backend: b, outcomes: make(chan Outcome, 64)}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := tr.ForwardWith(w, r, b, opts())
		select {
		case p.outcomes <- out:
		default:
		}
	}))
	t.Cleanup(p.Close)
	return p
}

// optionsBackend echoes the Host it got in X-Got-Host and sends an
// X-Backend header. "/hang" holds the request until the client gives up;
// "/stall" sends the headers and part of the body, then holds.
func optionsBackend(t *testing.T, protocol Protocol) *Backend {
	release := make(chan struct{})
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang":
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		case "/stall":
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Header().Set("X-Got-Host", r.Host)
		w.Header().Set("X-Got-Forwarded-Host", r.Header.Get("X-Forwarded-Host"))
		w.Header().Set("X-Backend", "original")
		w.Header().Set("X-Remove-Me", "x")
		_, _ = io.WriteString(w, "ok")
	})
	be := startBackendWith(t, h, protocol == H2C)
	t.Cleanup(func() { close(release) })
	return &Backend{Name: "ns/opts:80", Protocol: protocol, Endpoints: []string{be.addr()}}
}

func TestForwardOptions(t *testing.T) {
	for _, protocol := range []Protocol{HTTP1, H2C} {
		t.Run(protocol.String(), func(t *testing.T) {
			tr := newTestTransport(t, Config{})
			b := optionsBackend(t, protocol)

			t.Run("host and response header edit", func(t *testing.T) {
				p := startOptionsProxy(t, tr, b, func() *ForwardOptions {
					return &ForwardOptions{
						Host: "rewritten.example",
						EditResponseHeader: func(h http.Header) {
							h["X-Backend"] = append(h["X-Backend"], "added")
							delete(h, "X-Remove-Me")
						},
					}
				})
				req, _ := http.NewRequest("GET", p.URL+"/", nil)
				req.Host = "client.example"
				resp, err := p.client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if body := readAll(t, resp.Body); body != "ok" {
					t.Fatalf("body %q", body)
				}
				if got := resp.Header.Get("X-Got-Host"); got != "rewritten.example" {
					t.Errorf("backend Host = %q", got)
				}
				if got := resp.Header.Get("X-Got-Forwarded-Host"); got != "client.example" {
					t.Errorf("X-Forwarded-Host = %q, want the client's", got)
				}
				if got := resp.Header["X-Backend"]; len(got) != 2 || got[1] != "added" {
					t.Errorf("X-Backend = %q", got)
				}
				if _, ok := resp.Header["X-Remove-Me"]; ok {
					t.Error("X-Remove-Me reached the client")
				}
			})

			for _, tc := range []struct {
				name string
				opts func() *ForwardOptions
				want error
			}{
				{"deadline", func() *ForwardOptions {
					return &ForwardOptions{Deadline: time.Now().Add(50 * time.Millisecond)}
				}, errRouteTimeout},
				{"backend timeout", func() *ForwardOptions {
					return &ForwardOptions{BackendTimeout: 50 * time.Millisecond}
				}, errBackendTimeout},
			} {
				t.Run(tc.name, func(t *testing.T) {
					p := startOptionsProxy(t, tr, b, tc.opts)
					resp, err := p.client().Get(p.URL + "/hang")
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusGatewayTimeout {
						t.Fatalf("status %d, want 504", resp.StatusCode)
					}
					if out := p.lastOutcome(t); out.Status != 504 || !errors.Is(out.Err, tc.want) {
						t.Errorf("outcome %+v, want 504 %v", out, tc.want)
					}

					// Once the response has started, a timeout cuts it.
					resp, err = p.client().Get(p.URL + "/stall")
					if err != nil {
						t.Fatal(err)
					}
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || err == nil {
						t.Fatalf("stalled response: status %d, read error %v; want 200 and a cut body", resp.StatusCode, err)
					}
					if out := p.lastOutcome(t); !errors.Is(out.Err, tc.want) {
						t.Errorf("outcome %+v, want %v", out, tc.want)
					}
				})
			}
		})
	}
}
