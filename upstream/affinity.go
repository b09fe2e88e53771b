package upstream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file is session affinity: keeping a client's requests on one
// endpoint of a Backend, by a session cookie Portico issues (ingress-nginx's
// affinity: cookie) or by a key read from each request (upstream-hash-by).
//
// Both hash onto the endpoints by rendezvous (highest random weight)
// hashing: every endpoint scores a key, the highest score wins. Adding an
// endpoint moves only the keys it now wins (about 1/n of them), removing
// one moves only the keys it held, and no ring has to be built or kept in
// step with the endpoint list. Its cost is one multiply-xorshift per
// endpoint per request, which for the endpoint counts of a Service (tens)
// is less than a ring's binary search would save. The hashes are fixed
// functions of the key and the endpoint address, so every Portico replica
// maps a key to the same endpoint.

// Affinity configures how a Backend keeps a client on one endpoint. Exactly
// one of Cookie and HashBy is set.
type Affinity struct {
	Cookie *SessionCookie
	HashBy *HashKey
}

// Affinity modes of a SessionCookie, named as ingress-nginx's affinity-mode.
const (
	// AffinityBalanced: the cookie holds a random key hashed onto the
	// endpoints, so sessions rebalance when the endpoints change.
	AffinityBalanced = "balanced"
	// AffinityPersistent: the cookie names its endpoint, and the session
	// stays there for as long as the endpoint is ready.
	AffinityPersistent = "persistent"
)

// SessionCookie is the cookie that pins a client's session.
//
// Its value never reveals an endpoint address. In balanced mode it is a
// random 64-bit key (16 hex digits), which says nothing of the endpoint it
// hashes to. In persistent mode it is a keyed hash (HMAC-SHA-256 under
// Key, 16 hex digits) of the endpoint address: ingress-nginx's plain hash
// of the address can be reversed by trying every pod address of a
// cluster's range, a keyed one cannot; and unlike an index into the
// endpoint list, it stays valid when other endpoints come and go.
type SessionCookie struct {
	Name   string
	Path   string
	Domain string
	// Mode is AffinityBalanced or AffinityPersistent.
	Mode string
	// Secure marks every cookie Secure; without it only cookies issued
	// over TLS are.
	Secure bool
	// SameSite is "", "None", "Lax" or "Strict". With
	// ConditionalSameSiteNone, SameSite=None is left out for the user
	// agents that reject it.
	SameSite                string
	ConditionalSameSiteNone bool
	// MaxAge and Expires, when positive, make the cookie outlive the
	// browser session: Max-Age, and Expires that far from its issue.
	MaxAge, Expires time.Duration
	// Key keys the persistent mode's hash of the endpoint; every replica
	// of Portico must have the same one.
	Key []byte
}

// affinityState is an Affinity compiled against its Backend's endpoints.
type affinityState struct {
	Affinity
	// pinned[i] is the Backend whose requests go to endpoint i first (and
	// to the next one only when the connect fails, as for any Backend).
	pinned []Backend
	// points[i] is the hash of endpoint i that rendezvous scores keys
	// against.
	points []uint64
	// tokens maps persistent cookie values (parsed) to endpoint indexes,
	// tokenOf endpoint indexes to cookie values.
	tokens  map[uint64]int
	tokenOf []string
}

// WithAffinity returns a copy of b whose requests follow a: a route with
// affinity gets its own copy, so that routes to the same Service port with
// other settings, or none, are unaffected. The copy shares b's endpoint
// pools, which are keyed by address.
func (b *Backend) WithAffinity(a Affinity) *Backend {
	c := &Backend{Name: b.Name, Protocol: b.Protocol, Endpoints: b.Endpoints, TLS: b.TLS}
	s := &affinityState{Affinity: a, pinned: make([]Backend, len(b.Endpoints)), points: make([]uint64, len(b.Endpoints))}
	persistent := a.Cookie != nil && a.Cookie.Mode == AffinityPersistent
	if persistent {
		s.tokens, s.tokenOf = make(map[uint64]int, len(b.Endpoints)), make([]string, len(b.Endpoints))
	}
	for i, ep := range b.Endpoints {
		p := &s.pinned[i]
		p.Name, p.Protocol, p.Endpoints, p.TLS, p.pin = b.Name, b.Protocol, b.Endpoints, b.TLS, uint32(i+1)
		s.points[i] = endpointPoint(ep)
		if persistent {
			m := hmac.New(sha256.New, a.Cookie.Key)
			m.Write([]byte(ep))
			tok := binary.BigEndian.Uint64(m.Sum(nil))
			s.tokens[tok], s.tokenOf[i] = i, formatSessionKey(tok)
		}
	}
	c.affinity = s
	return c
}

// Affinity returns the backend's affinity, or nil.
func (b *Backend) Affinity() *Affinity {
	if b == nil || b.affinity == nil {
		return nil
	}
	return &b.affinity.Affinity
}

// Sticky returns the Backend to forward r to, and the Set-Cookie value to
// add to the backend's response ("" for none); b must not be nil. A
// backend without affinity is returned as is: routes without affinity pay
// this one nil check per request, inlined, nothing more.
func (b *Backend) Sticky(r *http.Request) (*Backend, string) {
	if b.affinity == nil {
		return b, ""
	}
	return b.affinity.pick(b, r)
}

func (s *affinityState) pick(b *Backend, r *http.Request) (*Backend, string) {
	if len(s.pinned) == 0 {
		return b, ""
	}
	if s.HashBy != nil {
		return &s.pinned[rendezvous(s.points, s.HashBy.Sum(r))], ""
	}
	c := s.Cookie
	if v, ok := CookieValue(r.Header, c.Name); ok {
		if k, ok := parseSessionKey(v); ok {
			if s.tokens == nil {
				return &s.pinned[rendezvous(s.points, k)], ""
			}
			if i, ok := s.tokens[k]; ok {
				return &s.pinned[i], ""
			}
		}
	}
	// A new session, or one whose endpoint is gone (persistent mode): pick
	// an endpoint and issue the cookie that names it. This happens once
	// per session, so the allocations of the header value are paid once.
	var i int
	var value string
	if s.tokens != nil {
		i = b.next()
		value = s.tokenOf[i]
	} else {
		k := rand.Uint64()
		i = rendezvous(s.points, k)
		value = formatSessionKey(k)
	}
	return &s.pinned[i], c.setCookie(value, r, time.Now())
}

func formatSessionKey(k uint64) string {
	var buf [16]byte
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		buf[i] = digits[k&15]
		k >>= 4
	}
	return string(buf[:])
}

// parseSessionKey reads a balanced-mode cookie value: exactly 16 lower-case
// hex digits.
func parseSessionKey(v string) (uint64, bool) {
	if len(v) != 16 {
		return 0, false
	}
	var k uint64
	for i := 0; i < 16; i++ {
		c := v[i]
		switch {
		case '0' <= c && c <= '9':
			k = k<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			k = k<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return k, true
}

// setCookie is the Set-Cookie value issuing value over r, with
// ingress-nginx's attributes: HttpOnly always, Secure when asked or over
// TLS.
func (c *SessionCookie) setCookie(value string, r *http.Request, now time.Time) string {
	var sb strings.Builder
	sb.Grow(len(c.Name) + len(value) + len(c.Path) + len(c.Domain) + 96)
	sb.WriteString(c.Name)
	sb.WriteByte('=')
	sb.WriteString(value)
	if c.Path != "" {
		sb.WriteString("; Path=")
		sb.WriteString(c.Path)
	}
	if c.Domain != "" {
		sb.WriteString("; Domain=")
		sb.WriteString(c.Domain)
	}
	if c.Expires > 0 {
		sb.WriteString("; Expires=")
		sb.WriteString(now.Add(c.Expires).UTC().Format(http.TimeFormat))
	}
	if c.MaxAge > 0 {
		sb.WriteString("; Max-Age=")
		sb.WriteString(strconv.FormatInt(int64(c.MaxAge/time.Second), 10))
	}
	sb.WriteString("; HttpOnly")
	if c.Secure || r.TLS != nil {
		sb.WriteString("; Secure")
	}
	if c.SameSite != "" && (c.SameSite != "None" || !c.ConditionalSameSiteNone || sameSiteNoneCompatible(r.Header.Get("User-Agent"))) {
		sb.WriteString("; SameSite=")
		sb.WriteString(c.SameSite)
	}
	return sb.String()
}

// sameSiteNoneCompatible reports whether a user agent accepts
// SameSite=None: older Chrome releases reject the cookie, iOS 12 and the
// Safari of macOS 10.14 treat None as Strict. The list is ingress-nginx's
// (session-cookie-conditional-samesite-none).
func sameSiteNoneCompatible(ua string) bool {
	switch {
	case strings.Contains(ua, "Chrome/4"), strings.Contains(ua, "Chrome/5"), strings.Contains(ua, "Chrome/6"):
		return false
	case strings.Contains(ua, "CPU iPhone OS 12"), strings.Contains(ua, "iPad; CPU OS 12"):
		return false
	case strings.Contains(ua, "Macintosh") && strings.Contains(ua, "Intel Mac OS X 10_14") &&
		strings.Contains(ua, "Safari") && !strings.Contains(ua, "Chrome"):
		return false
	}
	return true
}

// CookieValue returns the value of the first cookie called name in the
// request's Cookie headers, without parsing the others or allocating.
func CookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " \t")
			k, v, ok := strings.Cut(part, "=")
			if ok && k == name {
				v = strings.TrimRight(v, " \t")
				if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v, true
			}
		}
	}
	return "", false
}

// rendezvous returns the index of the endpoint scoring key highest; ties,
// which need two equal 64-bit scores, go to the lower index.
func rendezvous(points []uint64, key uint64) int {
	best, bestScore := 0, uint64(0)
	for i, p := range points {
		if s := mix64(p ^ key); s > bestScore || i == 0 {
			best, bestScore = i, s
		}
	}
	return best
}

// mix64 is SplitMix64's finalizer: every input bit flips about half the
// output bits, so xor-ed keys and points score independently.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// endpointPoint hashes an endpoint address for rendezvous.
func endpointPoint(ep string) uint64 {
	h := fnvOffset
	for i := 0; i < len(ep); i++ {
		h = (h ^ uint64(ep[i])) * fnvPrime
	}
	return mix64(h)
}

// FNV-1a, 64 bits: a fixed hash every replica computes alike, fed part by
// part without building the key string.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)
