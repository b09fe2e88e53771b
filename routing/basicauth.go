package routing

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// BasicAuth asks each request for a user name and password (RFC 7617) and
// checks them against htpasswd hashes, as nginx's auth_basic does for
// ingress-nginx's auth-type: basic. A request without credentials, or with
// wrong ones, is answered 401 with a Basic challenge. The Authorization
// header is not passed to the backend: ingress-nginx's template clears it.
type BasicAuth struct {
	// Realm is named in the challenge; "" is sent as realm="", as nginx
	// sends it when auth-realm is not set.
	Realm string
	// Unavailable, when set, answers every request 503 without asking for
	// credentials: the route asked for authentication that cannot be
	// checked (its Secret is missing or does not parse, or it asked for a
	// scheme Portico does not verify). It is never served open.
	Unavailable bool

	users     map[string]Credential
	challenge string
}

// NewBasicAuth returns the check of the users' credentials; a user whose
// Credential is unsupported is refused.
func NewBasicAuth(realm string, users map[string]Credential) *BasicAuth {
	quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(realm)
	return &BasicAuth{Realm: realm, users: users, challenge: `Basic realm="` + quoted + `"`}
}

// printable reports whether s holds no control characters, which a header
// value or a user name cannot carry.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Users lists the user names, for descriptions of the route.
func (a *BasicAuth) Users() []string {
	out := make([]string, 0, len(a.users))
	for u := range a.users {
		out = append(out, u)
	}
	return out
}

// Credential is one htpasswd password hash, read by ParseCredential.
type Credential struct {
	kind hashKind
	// hash is the stored form, scheme prefix included.
	hash string
	// salt and sum are the decoded parts of an {SSHA} or {SHA} hash.
	salt, sum []byte
}

type hashKind uint8

const (
	hashUnsupported hashKind = iota
	hashBcrypt
	hashMD5Crypt // $apr1$ (Apache) and $1$ (FreeBSD, glibc)
	hashSHA      // {SHA}: base64 of SHA-1
	hashSSHA     // {SSHA}: base64 of SHA-1 of password and salt, then the salt
	hashPlain    // {PLAIN}: nginx's plain text scheme
)

// Scheme names the hash's scheme, for reports.
func (c Credential) Scheme() string {
	switch c.kind {
	case hashBcrypt:
		return "bcrypt"
	case hashMD5Crypt:
		return "md5-crypt"
	case hashSHA:
		return "{SHA}"
	case hashSSHA:
		return "{SSHA}"
	case hashPlain:
		return "{PLAIN}"
	}
	return "unsupported"
}

// ParseCredential reads one htpasswd hash. The schemes are those nginx's
// auth_basic verifies itself or that htpasswd writes: bcrypt ($2y$, $2a$,
// $2b$), MD5-crypt ($apr1$, $1$), {SHA}, {SSHA} and {PLAIN}. A traditional
// DES crypt or SHA-crypt ($5$, $6$), which nginx hands to the system's
// crypt(3), returns an error: that user is then refused, never let in.
func ParseCredential(hash string) (Credential, error) {
	c := Credential{hash: hash}
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return c, fmt.Errorf("not a bcrypt hash: %v", err)
		}
		c.kind = hashBcrypt
	case strings.HasPrefix(hash, "$apr1$"), strings.HasPrefix(hash, "$1$"):
		magic, rest := splitMagic(hash)
		salt, sum, ok := strings.Cut(rest, "$")
		if !ok || len(salt) > 8 || len(sum) != 22 || strings.Trim(sum, cryptAlphabet) != "" {
			return c, fmt.Errorf("not an MD5-crypt (%s) hash", magic)
		}
		c.kind = hashMD5Crypt
	case strings.HasPrefix(hash, "{SHA}"):
		sum, err := base64.StdEncoding.DecodeString(hash[len("{SHA}"):])
		if err != nil || len(sum) != sha1.Size {
			return c, fmt.Errorf("not a {SHA} hash (base64 of 20 bytes)")
		}
		c.kind, c.sum = hashSHA, sum
	case strings.HasPrefix(hash, "{SSHA}"):
		raw, err := base64.StdEncoding.DecodeString(hash[len("{SSHA}"):])
		if err != nil || len(raw) <= sha1.Size {
			return c, fmt.Errorf("not an {SSHA} hash (base64 of 20 bytes and a salt)")
		}
		c.kind, c.sum, c.salt = hashSSHA, raw[:sha1.Size], raw[sha1.Size:]
	case strings.HasPrefix(hash, "{PLAIN}"):
		c.kind = hashPlain
	case strings.HasPrefix(hash, "$5$"), strings.HasPrefix(hash, "$6$"):
		return c, fmt.Errorf("SHA-crypt ($5$, $6$) hashes are not verified by Portico; use bcrypt (htpasswd -B)")
	default:
		return c, fmt.Errorf("crypt(3) DES and unknown hash schemes are not verified by Portico; use bcrypt (htpasswd -B)")
	}
	return c, nil
}

// ParseHtpasswd reads htpasswd lines ("user:hash"); blank lines and lines
// starting with # are skipped, as nginx skips them. A line that is not
// "user:hash" is an error for the whole file: which users it was meant to
// hold cannot be known. A line whose hash cannot be verified is listed in
// unsupported and leaves its user out (refused).
func ParseHtpasswd(data string) (users map[string]Credential, unsupported []string, err error) {
	users = make(map[string]Credential)
	for i, line := range strings.Split(data, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" || !printable(user) {
			return nil, nil, fmt.Errorf("line %d is not user:hash", i+1)
		}
		if msg := addCredential(users, user, hash); msg != "" {
			unsupported = append(unsupported, fmt.Sprintf("line %d (user %q): %s", i+1, user, msg))
		}
	}
	return users, unsupported, nil
}

// addCredential adds user's hash to users unless a line before named the
// user (nginx takes the first) and returns why the hash cannot be used.
func addCredential(users map[string]Credential, user, hash string) string {
	if _, dup := users[user]; dup {
		return "the user is named again; the first line is used"
	}
	c, err := ParseCredential(hash)
	if err != nil {
		return err.Error() + "; the user is refused"
	}
	users[user] = c
	return ""
}

// ParseAuthMap reads ingress-nginx's auth-map form: each key a user, each
// value its hash.
func ParseAuthMap(data map[string]string) (users map[string]Credential, unsupported []string, err error) {
	users = make(map[string]Credential, len(data))
	for user, hash := range data {
		hash = strings.TrimSpace(hash)
		if user == "" || strings.Contains(user, ":") || hash == "" || !printable(user) || strings.ContainsAny(hash, "\r\n") {
			return nil, nil, fmt.Errorf("key %q is not a user name with a hash", user)
		}
		if msg := addCredential(users, user, hash); msg != "" {
			unsupported = append(unsupported, fmt.Sprintf("user %q: %s", user, msg))
		}
	}
	return users, unsupported, nil
}

const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func splitMagic(hash string) (magic, rest string) {
	if strings.HasPrefix(hash, "$apr1$") {
		return "$apr1$", hash[len("$apr1$"):]
	}
	return "$1$", hash[len("$1$"):]
}

// verify reports whether password matches c. Comparisons are constant-time
// in the password; bcrypt's own comparison is.
func (c Credential) verify(password string) bool {
	switch c.kind {
	case hashBcrypt:
		return bcrypt.CompareHashAndPassword([]byte(c.hash), []byte(password)) == nil
	case hashMD5Crypt:
		magic, rest := splitMagic(c.hash)
		salt, _, _ := strings.Cut(rest, "$")
		return subtle.ConstantTimeCompare([]byte(md5Crypt(password, salt, magic)), []byte(c.hash)) == 1
	case hashSHA:
		sum := sha1.Sum([]byte(password))
		return subtle.ConstantTimeCompare(sum[:], c.sum) == 1
	case hashSSHA:
		h := sha1.New()
		h.Write([]byte(password))
		h.Write(c.salt)
		return subtle.ConstantTimeCompare(h.Sum(nil), c.sum) == 1
	case hashPlain:
		return subtle.ConstantTimeCompare([]byte(password), []byte(c.hash[len("{PLAIN}"):])) == 1
	}
	return false
}

// md5Crypt is Poul-Henning Kamp's MD5-based crypt, which Apache's htpasswd
// writes with the magic "$apr1$" and glibc with "$1$": the salt is at most
// eight characters, and a thousand rounds of MD5 follow.
func md5Crypt(password, salt, magic string) string {
	if len(salt) > 8 {
		salt = salt[:8]
	}
	pw := []byte(password)
	alt := md5.New()
	alt.Write(pw)
	alt.Write([]byte(salt))
	alt.Write(pw)
	altSum := alt.Sum(nil)

	d := md5.New()
	d.Write(pw)
	d.Write([]byte(magic))
	d.Write([]byte(salt))
	for i := len(pw); i > 0; i -= 16 {
		d.Write(altSum[:min(i, 16)])
	}
	for i := len(pw); i > 0; i >>= 1 {
		if i&1 != 0 {
			d.Write([]byte{0})
		} else {
			d.Write(pw[:1])
		}
	}
	var sum [md5.Size]byte
	d.Sum(sum[:0])

	// Each round hashes one buffer with md5.Sum: a hash.Hash fed piece by
	// piece costs several times more over the thousand rounds.
	buf := make([]byte, 0, 2*len(pw)+len(salt)+md5.Size)
	for i := 0; i < 1000; i++ {
		buf = buf[:0]
		if i&1 != 0 {
			buf = append(buf, pw...)
		} else {
			buf = append(buf, sum[:]...)
		}
		if i%3 != 0 {
			buf = append(buf, salt...)
		}
		if i%7 != 0 {
			buf = append(buf, pw...)
		}
		if i&1 != 0 {
			buf = append(buf, sum[:]...)
		} else {
			buf = append(buf, pw...)
		}
		sum = md5.Sum(buf)
	}

	out := make([]byte, 0, len(magic)+len(salt)+1+22)
	out = append(out, magic...)
	out = append(out, salt...)
	out = append(out, '$')
	to64 := func(v uint32, n int) {
		for ; n > 0; n-- {
			out = append(out, cryptAlphabet[v&0x3f])
			v >>= 6
		}
	}
	for _, g := range [5][3]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}} {
		to64(uint32(sum[g[0]])<<16|uint32(sum[g[1]])<<8|uint32(sum[g[2]]), 4)
	}
	to64(uint32(sum[11]), 2)
	return string(out)
}

// DefaultBasicAuthCacheSize bounds the bcrypt and MD5-crypt acceptances
// remembered when HandlerConfig sets none.
const DefaultBasicAuthCacheSize = 4096

// verifiedCache remembers the (user, hash, password) triples bcrypt or
// MD5-crypt has accepted. bcrypt is slow on purpose (about 50 ms at cost
// 10, more at higher costs): checking it on every request would cap a
// route at a few dozen requests per second per core, where nginx's
// auth_basic pays that price on every request; MD5-crypt's thousand
// rounds cost about 0.1 ms, several times the rest of a proxied request.
// A browser sends the same credentials on every request, so a hit skips
// the hash (under a microsecond, BenchmarkBasicAuth). Only acceptances are kept:
// refusals are not, so a wrong password is never remembered as right, and
// a changed hash (a Secret updated) is a different key.
//
// Keys are SHA-256 digests of the triple under a random per-process key,
// so the cache never holds a password, and its digests are of no use
// outside the process. The cache is bounded: when full, an arbitrary
// entry makes room (Go's map iteration order), which keeps the cost of a
// miss constant and cannot be steered by a client.
type verifiedCache struct {
	mu   sync.Mutex
	seen map[[sha256.Size]byte]struct{}
	max  int
	key  [32]byte
}

func newVerifiedCache(max int) *verifiedCache {
	c := &verifiedCache{seen: make(map[[sha256.Size]byte]struct{}), max: max}
	_, _ = rand.Read(c.key[:])
	return c
}

func (c *verifiedCache) digest(user, hash, password string) [sha256.Size]byte {
	h := sha256.New()
	h.Write(c.key[:])
	var n [8]byte
	for _, s := range [...]string{user, hash, password} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

func (c *verifiedCache) has(k [sha256.Size]byte) bool {
	c.mu.Lock()
	_, ok := c.seen[k]
	c.mu.Unlock()
	return ok
}

func (c *verifiedCache) add(k [sha256.Size]byte) {
	c.mu.Lock()
	if len(c.seen) >= c.max {
		for old := range c.seen {
			delete(c.seen, old)
			break
		}
	}
	c.seen[k] = struct{}{}
	c.mu.Unlock()
}

const (
	unauthorizedBody    = "401 Unauthorized\n"
	authUnavailableBody = "503 Service Unavailable: this route's authentication is not configured correctly\n"
)

// basicAuth checks r's credentials and returns 0 to go on, or the status
// it answered the client with.
func (h *Handler) basicAuth(w http.ResponseWriter, r *http.Request, a *BasicAuth) int {
	if a.Unavailable {
		writeText(w, http.StatusServiceUnavailable, authUnavailableBody)
		return http.StatusServiceUnavailable
	}
	if user, password, ok := r.BasicAuth(); ok {
		if c, known := a.users[user]; known && h.checkCredential(user, password, c) {
			return 0
		}
	}
	w.Header().Set("Www-Authenticate", a.challenge)
	writeText(w, http.StatusUnauthorized, unauthorizedBody)
	return http.StatusUnauthorized
}

// checkCredential verifies password, through the cache for the slow
// schemes only: bcrypt, and MD5-crypt's thousand rounds (about 0.1 ms,
// BenchmarkBasicAuth); {SHA} and the others cost less than the cache's
// digest and lock.
func (h *Handler) checkCredential(user, password string, c Credential) bool {
	if c.kind != hashBcrypt && c.kind != hashMD5Crypt {
		return c.verify(password)
	}
	k := h.verified.digest(user, c.hash, password)
	if h.verified.has(k) {
		return true
	}
	if !c.verify(password) {
		return false
	}
	h.verified.add(k)
	return true
}
