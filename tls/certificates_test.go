package tls

import (
	stdtls "crypto/tls"
	"fmt"
	"testing"
)

func TestCertificatesLookup(t *testing.T) {
	ca := newTestCA(t)
	var (
		def       = ca.pair(t, "default.invalid")
		exact     = ca.pair(t, "a.example.com")
		wildcard  = ca.pair(t, "*.example.com")
		shadowed  = ca.pair(t, "a.example.com")
		deep      = ca.pair(t, "*.b.example.com")
		apex      = ca.pair(t, "example.org")
		upperBind = ca.pair(t, "mixed.example.net")
	)
	certs := NewCertificates([]Binding{
		{Host: "a.example.com", Pair: exact, Source: "ns/exact"},
		{Host: "*.example.com", Pair: wildcard, Source: "ns/wildcard"},
		{Host: "a.example.com", Pair: shadowed, Source: "ns/shadowed"}, // later binding loses
		{Host: "*.b.example.com", Pair: deep, Source: "ns/deep"},
		{Host: "example.org.", Pair: apex, Source: "ns/apex"},
		{Host: "Mixed.Example.NET", Pair: upperBind, Source: "ns/mixed"},
		{Host: "nil.example.com", Pair: nil, Source: "ns/nil"},
		{Host: "a.*.example.com", Pair: exact, Source: "ns/bad-wildcard"},
		{Host: "", Pair: exact, Source: "ns/empty"},
	}, def)

	tests := []struct {
		name       string
		serverName string
		want       *KeyPair
	}{
		{"exact", "a.example.com", exact},
		{"exact beats wildcard", "a.example.com", exact},
		{"wildcard covers one label", "x.example.com", wildcard},
		{"wildcard does not cover the apex", "example.com", def},
		{"wildcard does not cover two labels", "x.y.example.com", def},
		{"deeper wildcard covers its own label", "x.b.example.com", deep},
		{"uppercase SNI", "A.EXAMPLE.COM", exact},
		{"uppercase SNI on wildcard", "X.Example.Com", wildcard},
		{"trailing dot", "a.example.com.", exact},
		{"trailing dot in binding", "example.org", apex},
		{"uppercase binding", "mixed.example.net", upperBind},
		{"empty SNI gets the default", "", def},
		{"only a dot", ".", def},
		{"leading dot", ".example.com", def},
		{"unknown host", "nothing.example.net", def},
		{"label without suffix", "x.", def},
		{"overlong name", string(make([]byte, 300)), def},
		{"nil binding skipped", "nil.example.com", wildcard},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := certs.Lookup(tt.serverName); got != tt.want {
				t.Errorf("Lookup(%q) = %v, want %v", tt.serverName, describe(got), describe(tt.want))
			}
		})
	}

	if got, want := certs.Len(), 5; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
	var sources []string
	certs.Each(func(b Binding) { sources = append(sources, b.Source+"="+b.Host) })
	want := "[ns/exact=a.example.com ns/wildcard=*.example.com ns/deep=*.b.example.com ns/apex=example.org ns/mixed=mixed.example.net]"
	if got := fmt.Sprint(sources); got != want {
		t.Errorf("Each visited %s, want %s", got, want)
	}
	if certs.Default() != def {
		t.Error("Default() is not the default pair")
	}
}

func TestCertificatesWithoutDefault(t *testing.T) {
	ca := newTestCA(t)
	pair := ca.pair(t, "a.example.com")
	certs := NewCertificates([]Binding{{Host: "a.example.com", Pair: pair}}, nil)
	if got := certs.Lookup("b.example.com"); got != nil {
		t.Fatalf("Lookup of an unknown host without default = %v, want nil", describe(got))
	}
	var nilSet *Certificates
	if got := nilSet.Lookup("a.example.com"); got != nil {
		t.Fatal("Lookup on a nil set returned a pair")
	}

	get := CertificateGetter(certs.Lookup)
	if c, err := get(&stdtls.ClientHelloInfo{ServerName: "a.example.com"}); err != nil || c != pair.Certificate {
		t.Fatalf("getter for a known host = %v, %v", c, err)
	}
	if c, err := get(&stdtls.ClientHelloInfo{ServerName: "b.example.com"}); err == nil || c != nil {
		t.Fatalf("getter for an unknown host without default = %v, %v; want an error", c, err)
	}
}

func TestValidateHost(t *testing.T) {
	tests := []struct {
		host  string
		valid bool
	}{
		{"a.example.com", true},
		{"*.example.com", true},
		{"A.Example.com.", true},
		{"localhost", true},
		{"", false},
		{"*", false},
		{"*.", false},
		{"a.*.example.com", false},
		{"*a.example.com", false},
		{"**.example.com", false},
		{"a..example.com", false},
		{".example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if err := ValidateHost(tt.host); (err == nil) != tt.valid {
				t.Errorf("ValidateHost(%q) = %v, want valid=%v", tt.host, err, tt.valid)
			}
		})
	}
}

func describe(p *KeyPair) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%v (serial %s)", p.DNSNames, p.Serial)
}

func TestLookupDoesNotAllocate(t *testing.T) {
	certs, names := benchCertificates(t, 1000)
	for _, name := range append(names[:3:3], "miss.example.net", "", "X.WILD.EXAMPLE.COM.") {
		if n := testing.AllocsPerRun(100, func() { certs.Lookup(name) }); n != 0 {
			t.Errorf("Lookup(%q) allocates %v times", name, n)
		}
	}
}

// benchCertificates builds a set of n bindings, a quarter of them wildcards,
// all sharing one key pair (Lookup cost does not depend on the pair), and
// returns SNI names that hit exact entries, wildcards and the default.
func benchCertificates(tb testing.TB, n int) (*Certificates, []string) {
	tb.Helper()
	ca := newTestCA(tb)
	pair := ca.pair(tb, "bench.example.com")
	bindings := make([]Binding, 0, n)
	names := make([]string, 0, n)
	for i := range n {
		if i%4 == 3 {
			bindings = append(bindings, Binding{Host: fmt.Sprintf("*.wild%d.example.com", i), Pair: pair})
			names = append(names, fmt.Sprintf("Host.WILD%d.example.com", i))
			continue
		}
		bindings = append(bindings, Binding{Host: fmt.Sprintf("svc-%d.team.example.com", i), Pair: pair})
		names = append(names, fmt.Sprintf("svc-%d.team.example.com", i))
	}
	names = append(names, "unknown.example.org", "")
	return NewCertificates(bindings, pair), names
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 1_000, 10_000} {
		b.Run(fmt.Sprintf("names=%d", n), func(b *testing.B) {
			certs, names := benchCertificates(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if certs.Lookup(names[i%len(names)]) == nil {
					b.Fatal("no certificate")
				}
				i++
			}
		})
	}
}
