package tls

import (
	"fmt"
	"testing"
)

func TestCertificatesHas(t *testing.T) {
	ca := newTestCA(t)
	exact := ca.pair(t, "a.example.com")
	wild := ca.pair(t, "*.example.org")
	def := ca.pair(t, "default.invalid")
	c := NewCertificates([]Binding{
		{Host: "a.example.com", Pair: exact},
		{Host: "*.example.org", Pair: wild},
	}, def)
	for _, tc := range []struct {
		sni  string
		want bool
	}{
		{"a.example.com", true},
		{"A.Example.COM.", true},
		{"b.example.com", false},
		{"x.example.org", true},
		{"example.org", false},
		{"a.b.example.org", false},
		{"", false},
	} {
		if got := c.Has(tc.sni); got != tc.want {
			t.Errorf("Has(%q) = %v, want %v", tc.sni, got, tc.want)
		}
		if got := c.Lookup(tc.sni) != def; got != tc.want {
			t.Errorf("Lookup(%q) disagrees with Has: non-default = %v", tc.sni, got)
		}
	}
	var none *Certificates
	if none.Has("a.example.com") {
		t.Error("nil Certificates has a binding")
	}
}

// BenchmarkCertificatesHas is the cost Secret precedence adds to every
// handshake when ACME is on.
func BenchmarkCertificatesHas(b *testing.B) {
	ca := newTestCA(b)
	var bindings []Binding
	pair := ca.pair(b, "h.example.com")
	for i := range 1000 {
		bindings = append(bindings, Binding{Host: fmt.Sprintf("h%d.example.com", i), Pair: pair})
	}
	c := NewCertificates(bindings, pair)
	b.ReportAllocs()
	for b.Loop() {
		if !c.Has("h500.example.com") || c.Has("acme.example.org") {
			b.Fatal("wrong answer")
		}
	}
}
