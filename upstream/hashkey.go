package upstream

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// HashKey is an nginx variable expression (ingress-nginx's upstream-hash-by)
// compiled to the parts a request's key is hashed from. The key is hashed
// part by part as it is read from the request, never built as a string,
// so hashing allocates nothing.
type HashKey struct {
	// Expr is the expression as written.
	Expr  string
	parts []keyPart
}

type keyKind uint8

const (
	keyLiteral keyKind = iota
	keyRequestURI
	keyURI
	keyArgs
	keyHost
	keyRemoteAddr
	keyScheme
	keyMethod
	keyHeader
	keyCookie
	keyArg
)

type keyPart struct {
	kind keyKind
	// text is the literal, or the header (canonical), cookie or argument
	// name.
	text string
}

// HashKeyVariables lists the nginx variables a HashKey may use, for
// messages and documentation.
const HashKeyVariables = "$request_uri, $uri, $args, $query_string, $host, $remote_addr, $scheme, $request_method, $http_<header>, $cookie_<name>, $arg_<name>"

// ParseHashKey compiles an nginx variable expression such as
// "$request_uri", "$http_x_user" or "$host$remote_addr". A variable it
// cannot read from a request is an error naming it.
func ParseHashKey(expr string) (*HashKey, error) {
	k := &HashKey{Expr: expr}
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("the expression is empty")
	}
	s := expr
	for s != "" {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			k.parts = append(k.parts, keyPart{kind: keyLiteral, text: s})
			break
		}
		if i > 0 {
			k.parts = append(k.parts, keyPart{kind: keyLiteral, text: s[:i]})
		}
		s = s[i+1:]
		var name string
		if strings.HasPrefix(s, "{") {
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return nil, fmt.Errorf("${ without a closing }")
			}
			name, s = s[1:end], s[end+1:]
		} else {
			n := 0
			for n < len(s) && isVarByte(s[n]) {
				n++
			}
			name, s = s[:n], s[n:]
		}
		if name == "" {
			return nil, fmt.Errorf("a $ names no variable")
		}
		p, ok := keyVariable(name)
		if !ok {
			return nil, fmt.Errorf("the nginx variable $%s is not one Portico can read (it reads %s)", name, HashKeyVariables)
		}
		k.parts = append(k.parts, p)
	}
	return k, nil
}

func isVarByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func keyVariable(name string) (keyPart, bool) {
	switch name {
	case "request_uri":
		return keyPart{kind: keyRequestURI}, true
	case "uri", "document_uri":
		return keyPart{kind: keyURI}, true
	case "args", "query_string":
		return keyPart{kind: keyArgs}, true
	case "host":
		return keyPart{kind: keyHost}, true
	case "remote_addr", "binary_remote_addr":
		return keyPart{kind: keyRemoteAddr}, true
	case "scheme":
		return keyPart{kind: keyScheme}, true
	case "request_method":
		return keyPart{kind: keyMethod}, true
	}
	if h, ok := strings.CutPrefix(name, "http_"); ok && h != "" {
		// nginx names headers in lower case with _ for -.
		return keyPart{kind: keyHeader, text: textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(h, "_", "-"))}, true
	}
	if c, ok := strings.CutPrefix(name, "cookie_"); ok && c != "" {
		return keyPart{kind: keyCookie, text: c}, true
	}
	if a, ok := strings.CutPrefix(name, "arg_"); ok && a != "" {
		return keyPart{kind: keyArg, text: a}, true
	}
	return keyPart{}, false
}

// Sum hashes r's key.
func (k *HashKey) Sum(r *http.Request) uint64 {
	h := fnvOffset
	for _, p := range k.parts {
		switch p.kind {
		case keyLiteral:
			h = fnvString(h, p.text)
		case keyRequestURI:
			h = fnvString(h, r.RequestURI)
		case keyURI:
			h = fnvString(h, r.URL.Path)
		case keyArgs:
			h = fnvString(h, r.URL.RawQuery)
		case keyHost:
			// nginx's $host: lower case, without the port.
			host := r.Host
			if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
				host = host[:i]
			}
			for i := 0; i < len(host); i++ {
				c := host[i]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				h = (h ^ uint64(c)) * fnvPrime
			}
		case keyRemoteAddr:
			addr := r.RemoteAddr
			if i := strings.LastIndexByte(addr, ':'); i >= 0 {
				addr = strings.TrimSuffix(strings.TrimPrefix(addr[:i], "["), "]")
			}
			h = fnvString(h, addr)
		case keyScheme:
			if r.TLS != nil {
				h = fnvString(h, "https")
			} else {
				h = fnvString(h, "http")
			}
		case keyMethod:
			h = fnvString(h, r.Method)
		case keyHeader:
			if v := r.Header[p.text]; len(v) > 0 {
				h = fnvString(h, v[0])
			}
		case keyCookie:
			v, _ := CookieValue(r.Header, p.text)
			h = fnvString(h, v)
		case keyArg:
			h = fnvString(h, queryArg(r.URL.RawQuery, p.text))
		}
	}
	return mix64(h)
}

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

// queryArg is nginx's $arg_<name>: the raw value of the first argument
// called name, compared without regard to case.
func queryArg(q, name string) string {
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
