package routing

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The MD5-crypt vectors were made with openssl passwd -apr1 and -1; the
// first is the one of ingress-nginx's basic authentication example.
var hashVectors = []struct {
	password, hash string
}{
	{"bar", "$apr1$OFG3Xybp$ckL0FHDAkoXYIlH9.cysT0"},
	{"", "$apr1$OFG3Xybp$ppxBRm3.uZDYdlG5kcvzk/"},
	{"correct horse battery staple", "$apr1$OFG3Xybp$R.2FKUiLw9sr85fKHz6K3."},
	{"ünïcødé", "$apr1$OFG3Xybp$gR.hico8G7d78PeaW6p4P/"},
	{"bar", "$1$saltstri$dbKRuJi/JUZVBOzuSmDvS0"},
	{"", "$1$saltstri$ciR2otLVXV8I9sOPWbLTc1"},
	{"correct horse battery staple", "$1$saltstri$B9FrnZ8mLTFL6N.rbkMsW0"},
	// PHP's password_hash example, as htpasswd -B writes it ($2y$).
	{"rasmuslerdorf", "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"},
	// printf bar | openssl dgst -sha1 -binary | base64
	{"bar", "{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00="},
	// SHA-1 of "bar" and the salt 01 02 03 04, then the salt.
	{"bar", "{SSHA}9FRpe3qBfTnPTO6h5VCSQf8UuVsBAgME"},
	{"bar", "{PLAIN}bar"},
}

func TestCredentialVerifiesKnownVectors(t *testing.T) {
	for _, v := range hashVectors {
		c, err := ParseCredential(v.hash)
		if err != nil {
			t.Fatalf("ParseCredential(%q): %v", v.hash, err)
		}
		if !c.verify(v.password) {
			t.Errorf("%s: password %q refused", v.hash, v.password)
		}
		if c.verify(v.password+"x") || c.verify("x"+v.password) {
			t.Errorf("%s: a wrong password accepted", v.hash)
		}
	}
	for _, minor := range []string{"$2a$", "$2b$"} {
		h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		hash := minor + string(h[4:])
		c, err := ParseCredential(hash)
		if err != nil || !c.verify("s3cret") || c.verify("s3cre") {
			t.Errorf("%s: err %v, or the password was judged wrongly", hash, err)
		}
	}
}

func TestMD5CryptMatchesOpenSSL(t *testing.T) {
	if got := md5Crypt("bar", "OFG3Xybp", "$apr1$"); got != "$apr1$OFG3Xybp$ckL0FHDAkoXYIlH9.cysT0" {
		t.Errorf("md5Crypt = %q", got)
	}
	// A password longer than 16 bytes takes the digest more than once.
	long := strings.Repeat("p", 40)
	// openssl passwd -apr1 -salt OFG3Xybp pppp... (40)
	if got := md5Crypt(long, "OFG3Xybp", "$apr1$"); got != "$apr1$OFG3Xybp$sTt84DIhRDZpv2RCsApw10" {
		t.Errorf("md5Crypt(40 bytes) = %q", got)
	}
}

func TestParseCredentialRefusesWhatItCannotVerify(t *testing.T) {
	for _, hash := range []string{
		"abJnggxhB/yWI", // crypt(3) DES
		"$5$salt$hash",
		"$6$rounds=5000$salt$hash",
		"$apr1$OFG3Xybp$short",
		"$2y$10$tooShort",
		"{SHA}not-base64!",
		"{SSHA}" + "AAAA",
		"plaintext",
	} {
		if c, err := ParseCredential(hash); err == nil {
			t.Errorf("ParseCredential(%q) = %s, want an error", hash, c.Scheme())
		}
	}
}

func TestParseHtpasswd(t *testing.T) {
	users, unsupported, err := ParseHtpasswd("# users\nfoo:$apr1$OFG3Xybp$ckL0FHDAkoXYIlH9.cysT0\r\n\nold:abJnggxhB/yWI\nfoo:{PLAIN}again\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users["foo"].kind != hashMD5Crypt {
		t.Errorf("users = %v, want foo with its first line only", users)
	}
	if len(unsupported) != 2 || !strings.Contains(unsupported[0], `line 4 (user "old")`) || !strings.Contains(unsupported[1], "named again") {
		t.Errorf("unsupported = %q", unsupported)
	}
	for _, bad := range []string{"no-colon\n", ":hash\n", "user:\n", "us\x01er:{PLAIN}x\n"} {
		if _, _, err := ParseHtpasswd(bad); err == nil {
			t.Errorf("ParseHtpasswd(%q) accepted", bad)
		}
	}
	if _, _, err := ParseAuthMap(map[string]string{"a:b": "{PLAIN}x"}); err == nil {
		t.Error("ParseAuthMap accepted a user name with a colon")
	}
}

func TestBasicAuthAnswers(t *testing.T) {
	baz, err := bcrypt.GenerateFromPassword([]byte("qux"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, _, err := ParseHtpasswd("foo:$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a\nbar:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=\nbaz:" + string(baz) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(HandlerConfig{BasicAuthCacheSize: 1})
	a := NewBasicAuth(`Staff "only"`, users)
	check := func(user, password string, set bool) (int, string) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if set {
			r.SetBasicAuth(user, password)
		}
		return h.basicAuth(w, r, a), w.Header().Get("Www-Authenticate")
	}
	if code, challenge := check("", "", false); code != 401 || challenge != `Basic realm="Staff \"only\""` {
		t.Errorf("no credentials: %d %q", code, challenge)
	}
	for range 2 { // the second time from the cache
		if code, _ := check("foo", "rasmuslerdorf", true); code != 0 {
			t.Errorf("right bcrypt password: %d", code)
		}
	}
	if len(h.verified.seen) != 1 {
		t.Errorf("cache holds %d entries, want 1", len(h.verified.seen))
	}
	for _, c := range [][2]string{{"foo", "rasmuslerdorF"}, {"bar", "rasmuslerdorf"}, {"nobody", "bar"}} {
		if code, _ := check(c[0], c[1], true); code != 401 {
			t.Errorf("%s:%s answered %d, want 401", c[0], c[1], code)
		}
	}
	if code, _ := check("bar", "bar", true); code != 0 {
		t.Errorf("right {SHA} password: %d", code)
	}
	// The bound holds: the entry for foo makes room for baz's, and
	// refusals are not remembered.
	if code, _ := check("baz", "qux", true); code != 0 {
		t.Errorf("right bcrypt password: %d", code)
	}
	if len(h.verified.seen) != 1 {
		t.Errorf("cache holds %d entries, want 1", len(h.verified.seen))
	}
	w := httptest.NewRecorder()
	if code := h.basicAuth(w, httptest.NewRequest(http.MethodGet, "/", nil), &BasicAuth{Unavailable: true}); code != 503 {
		t.Errorf("unavailable: %d, want 503", code)
	}
}

// BenchmarkBasicAuth measures one check per scheme, for a client sending
// the same accepted credentials again, as browsers do: bcrypt and
// MD5-crypt from the cache.
func BenchmarkBasicAuth(b *testing.B) {
	users, _, err := ParseHtpasswd("bcrypt:$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a\napr1:$apr1$OFG3Xybp$ckL0FHDAkoXYIlH9.cysT0\nsha:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=\n")
	if err != nil {
		b.Fatal(err)
	}
	h := NewHandler(HandlerConfig{})
	a := NewBasicAuth("", users)
	for _, c := range [][3]string{{"bcrypt-cached", "bcrypt", "rasmuslerdorf"}, {"apr1-cached", "apr1", "bar"}, {"sha", "sha", "bar"}, {"unknown-user", "nobody", "bar"}} {
		b.Run(c[0], func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.SetBasicAuth(c[1], c[2])
			w := httptest.NewRecorder()
			h.basicAuth(w, r, a) // fills the cache
			b.ReportAllocs()
			for b.Loop() {
				h.basicAuth(w, r, a)
			}
		})
	}
	// What a miss costs: the hash itself.
	for _, c := range [][2]string{{"bcrypt", "rasmuslerdorf"}, {"apr1", "bar"}} {
		b.Run(c[0]+"-uncached", func(b *testing.B) {
			for b.Loop() {
				users[c[0]].verify(c[1])
			}
		})
	}
}
