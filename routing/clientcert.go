package routing

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"portico.dev/portico/hostname"
)

// ClientVerify is ingress-nginx's auth-tls-verify-client: what a route does
// with a client certificate that is missing or does not verify.
type ClientVerify uint8

const (
	// VerifyOn answers 400 without a valid certificate.
	VerifyOn ClientVerify = iota
	// VerifyOptional lets a request without a certificate through
	// (ssl-client-verify: NONE); one that does not verify gets 400.
	VerifyOptional
	// VerifyOptionalNoCA also lets through a certificate whose issuer is
	// not among the CAs (ssl-client-verify: FAILED:reason), as OpenSSL's
	// optional errors are let through by nginx; other failures get 400.
	VerifyOptionalNoCA
	// VerifyOff does not ask for a certificate: every request is NONE.
	VerifyOff
)

func (v ClientVerify) String() string {
	switch v {
	case VerifyOptional:
		return "optional"
	case VerifyOptionalNoCA:
		return "optional_no_ca"
	case VerifyOff:
		return "off"
	}
	return "on"
}

// ClientCertAuth checks the client certificate of each request against
// CAs, as nginx's ssl_verify_client does for ingress-nginx's auth-tls-*
// annotations, and tells the backend the verdict in nginx's headers. The
// TLS handshake of its host only asks for the certificate (tls.
// VerifyPerRequest); the verdict is made here, so that a missing or
// invalid certificate is answered in HTTP as nginx answers it.
type ClientCertAuth struct {
	CAs    *x509.CertPool
	Verify ClientVerify
	// Depth is the most intermediate CA certificates between the client's
	// certificate and one of CAs (OpenSSL's verify depth).
	Depth int
	// ErrorPage, when set, is where a request whose certificate is missing
	// or invalid is redirected (302) instead of answered 400.
	ErrorPage string
	// PassCertificate sends the client's certificate, PEM and URL-escaped,
	// in the ssl-client-cert header.
	PassCertificate bool
	// MatchCN, when set, must match the certificate's subject DN (RFC
	// 2253, as nginx's $ssl_client_s_dn), else 403.
	MatchCN *regexp.Regexp
	// Unavailable answers every request 403: the route asked for client
	// certificates that cannot be checked (its CA Secret is missing or
	// does not parse). It is never served without the check.
	Unavailable bool
	// Revoked, when set, are the certificates the CA Secret's ca.crl lists
	// (ParseRevocations): one of them anywhere in the chain gets 400.
	Revoked *Revocations

	// last is the verdict on the most recent certificate (see check).
	last atomic.Pointer[certVerdict]
}

// certVerdict is what check concluded for one leaf certificate.
type certVerdict struct {
	leaf *x509.Certificate
	// until is when the verdict lapses: the earliest NotAfter of the chain.
	until time.Time
	// status is 0 to serve, else 400.
	status          int
	verify          string
	subject, issuer string
	escaped         string
}

const (
	noCertBody      = "400 Bad Request: No required SSL certificate was sent\n"
	certErrorBody   = "400 Bad Request: The SSL certificate error\n"
	cnRefusedBody   = "403 Forbidden: client certificate unauthorized\n"
	certUnavailable = "403 Forbidden: client certificates cannot be checked for this route\n"
)

// The headers nginx sets for ingress-nginx on a host with auth-tls-secret.
const (
	hdrClientVerify  = "Ssl-Client-Verify"
	hdrClientSubject = "Ssl-Client-Subject-Dn"
	hdrClientIssuer  = "Ssl-Client-Issuer-Dn"
	hdrClientCert    = "Ssl-Client-Cert"
)

var noCert = &certVerdict{verify: "NONE"}

// check returns the verdict on the request's client certificate.
//
// Verifying a chain costs signature checks and allocations, which nginx
// pays once per handshake; here the verdict is kept for the last leaf seen
// (the same *x509.Certificate for every request of a connection, HTTP/1.1
// and HTTP/2 alike), so a connection's requests after the first cost an
// atomic load and a comparison. Only routes with auth-tls pay at all.
func (a *ClientCertAuth) check(state *tls.ConnectionState, now time.Time) *certVerdict {
	if a.Verify == VerifyOff || state == nil || len(state.PeerCertificates) == 0 {
		// A plain-HTTP request has no certificate either: refused under
		// on, where nginx would serve it unchecked.
		if a.Verify == VerifyOn {
			return &certVerdict{status: http.StatusBadRequest, verify: "NONE"}
		}
		return noCert
	}
	leaf := state.PeerCertificates[0]
	if v := a.last.Load(); v != nil && v.leaf == leaf && now.Before(v.until) {
		return v
	}
	v := &certVerdict{leaf: leaf, until: leaf.NotAfter,
		subject: leaf.Subject.String(), issuer: leaf.Issuer.String()}
	inter := x509.NewCertPool()
	for _, c := range state.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: a.CAs, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err == nil {
		err = errTooDeep
		for _, chain := range chains {
			// The leaf and the trust anchor do not count, as in OpenSSL.
			if len(chain)-2 <= a.Depth {
				err = a.Revoked.check(chain, now)
				for _, c := range chain {
					if c.NotAfter.Before(v.until) {
						v.until = c.NotAfter
					}
				}
				if u := a.Revoked.until(); !u.IsZero() && u.Before(v.until) {
					v.until = u
				}
				break
			}
		}
	}
	switch {
	case err == nil:
		v.verify = "SUCCESS"
	case a.Verify == VerifyOptionalNoCA && isUnknownAuthority(err):
		v.verify = "FAILED:" + opensslReason(leaf, err)
	default:
		v.verify = "FAILED:" + opensslReason(leaf, err)
		v.status = http.StatusBadRequest
	}
	if a.PassCertificate {
		v.escaped = escapeCert(leaf.Raw)
	}
	if now.Before(v.until) {
		a.last.Store(v)
	}
	return v
}

var errTooDeep = errors.New("certificate chain too long")

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua)
}

// opensslReason names err as OpenSSL's X509_verify_cert_error_string does,
// which nginx puts after FAILED: in $ssl_client_verify.
func opensslReason(leaf *x509.Certificate, err error) string {
	var inv x509.CertificateInvalidError
	switch {
	case errors.Is(err, errTooDeep):
		return "certificate chain too long"
	case errors.Is(err, errRevoked):
		return "certificate revoked"
	case errors.Is(err, errCRLExpired):
		return "CRL has expired"
	case isUnknownAuthority(err):
		if bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
			return "self-signed certificate"
		}
		return "unable to get local issuer certificate"
	case errors.As(err, &inv):
		switch inv.Reason {
		case x509.Expired:
			if time.Now().Before(leaf.NotBefore) {
				return "certificate is not yet valid"
			}
			return "certificate has expired"
		case x509.IncompatibleUsage:
			return "unsupported certificate purpose"
		}
	}
	return "certificate verify failed"
}

var (
	errRevoked    = errors.New("certificate revoked")
	errCRLExpired = errors.New("CRL has expired")
)

// Revocations are the serial numbers a CA's revocation lists name.
type Revocations struct {
	// serials is keyed by the issuer's raw subject and the serial's bytes.
	serials    map[string]bool
	nextUpdate time.Time
}

// ParseRevocations reads PEM revocation lists (X509 CRL blocks) and keeps
// those signed by one of the PEM CA certificates; a list that does not
// parse or that no CA signed is an error, as nginx fails to load it.
func ParseRevocations(caPEM, crlPEM []byte) (*Revocations, error) {
	var cas []*x509.Certificate
	for rest := caPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil && b.Type == "CERTIFICATE" {
			cas = append(cas, c)
		}
	}
	rv := &Revocations{serials: make(map[string]bool)}
	n := 0
	for rest := crlPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "X509 CRL" {
			continue
		}
		crl, err := x509.ParseRevocationList(b.Bytes)
		if err != nil {
			return nil, err
		}
		signed := false
		for _, ca := range cas {
			if bytes.Equal(ca.RawSubject, crl.RawIssuer) && crl.CheckSignatureFrom(ca) == nil {
				signed = true
				break
			}
		}
		if !signed {
			return nil, errors.New("a revocation list is not signed by a CA of ca.crt")
		}
		for _, e := range crl.RevokedCertificateEntries {
			rv.serials[string(crl.RawIssuer)+e.SerialNumber.String()] = true
		}
		if !crl.NextUpdate.IsZero() && (rv.nextUpdate.IsZero() || crl.NextUpdate.Before(rv.nextUpdate)) {
			rv.nextUpdate = crl.NextUpdate
		}
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM-encoded revocation list (X509 CRL)")
	}
	return rv, nil
}

// check returns errRevoked when a certificate of chain (its trust anchor
// aside) is listed, errCRLExpired when the lists are past their next
// update, as OpenSSL refuses then.
func (rv *Revocations) check(chain []*x509.Certificate, now time.Time) error {
	if rv == nil {
		return nil
	}
	if !rv.nextUpdate.IsZero() && now.After(rv.nextUpdate) {
		return errCRLExpired
	}
	for _, c := range chain[:len(chain)-1] {
		if rv.serials[string(c.RawIssuer)+c.SerialNumber.String()] {
			return errRevoked
		}
	}
	return nil
}

// until is when the lists lapse; zero when never.
func (rv *Revocations) until() time.Time {
	if rv == nil {
		return time.Time{}
	}
	return rv.nextUpdate
}

// escapeCert is nginx's $ssl_client_escaped_cert: the PEM, URL-escaped
// (space as %20, not +).
func escapeCert(der []byte) string {
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return strings.ReplaceAll(url.QueryEscape(string(p)), "+", "%20")
}

// clientCert enforces a's verdict on r and sets the headers nginx sends
// the backend; it returns 0 to go on, or the status it answered.
func (h *Handler) clientCert(w http.ResponseWriter, r *http.Request, a *ClientCertAuth, now time.Time) int {
	if a.Unavailable {
		writeText(w, http.StatusForbidden, certUnavailable)
		return http.StatusForbidden
	}
	if a.Verify != VerifyOff && r.TLS != nil && r.TLS.ServerName != "" && !sameHost(r.TLS.ServerName, r.Host) {
		// The connection was made for another host, whose handshake may
		// not have asked for a certificate (HTTP/2 connection
		// coalescing): 421 makes the client open one for this host, as
		// nginx answers when the Host's server verifies clients.
		writeText(w, http.StatusMisdirectedRequest, misdirectedBody)
		return http.StatusMisdirectedRequest
	}
	v := a.check(r.TLS, now)
	if v.status != 0 {
		if a.ErrorPage != "" {
			w.Header().Set("Location", a.ErrorPage)
			w.WriteHeader(http.StatusFound)
			return http.StatusFound
		}
		body := certErrorBody
		if v.verify == "NONE" {
			body = noCertBody
		}
		writeText(w, v.status, body)
		return v.status
	}
	if a.MatchCN != nil && !a.MatchCN.MatchString(v.subject) {
		writeText(w, http.StatusForbidden, cnRefusedBody)
		return http.StatusForbidden
	}
	// Set or removed, never the client's own: the backend trusts them.
	r.Header.Set(hdrClientVerify, v.verify)
	setOrDel(r.Header, hdrClientSubject, v.subject)
	setOrDel(r.Header, hdrClientIssuer, v.issuer)
	if a.PassCertificate {
		setOrDel(r.Header, hdrClientCert, v.escaped)
	} else {
		r.Header.Del(hdrClientCert)
	}
	return 0
}

// sameHost reports whether the server name (SNI) names the Host header's
// host; it does not allocate.
func sameHost(serverName, host string) bool {
	var a, b [256]byte
	return bytes.Equal(hostname.AppendName(a[:0], serverName), hostname.AppendHost(b[:0], host))
}

// setOrDel sets k to v, or removes k when v is empty, as nginx's
// proxy_set_header sends no header for an empty value.
func setOrDel(h http.Header, k, v string) {
	if v == "" {
		h.Del(k)
		return
	}
	h.Set(k, v)
}
