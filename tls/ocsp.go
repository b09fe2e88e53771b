package tls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPSubject is one certificate being served, offered to the stapler.
type OCSPSubject struct {
	Pair *KeyPair
	// Source names where Pair came from ("namespace/secret"), for logs.
	Source string
}

// OCSPConfig tunes an OCSPStapler; the zero value is usable.
type OCSPConfig struct {
	// Client sends the OCSP requests; nil uses a client of its own.
	Client *http.Client
	// Timeout bounds one request to one responder; default 10s.
	Timeout time.Duration
	// Concurrency bounds the requests in flight at once; default 4.
	Concurrency int
	// RetryInterval is how long after a failed fetch the next one is tried;
	// default 5m.
	RetryInterval time.Duration
	// MinRefresh is the shortest time between two fetches for one
	// certificate, so a responder issuing very short-lived responses is not
	// hammered; default 1m.
	MinRefresh time.Duration
	Logger     *slog.Logger
}

func (c OCSPConfig) withDefaults() OCSPConfig {
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 5 * time.Minute
	}
	if c.MinRefresh <= 0 {
		c.MinRefresh = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// maxOCSPResponseBytes bounds a responder's answer; real ones are a few
// hundred bytes to a few KiB.
const maxOCSPResponseBytes = 64 << 10

// OCSPStapler fetches OCSP responses for the certificates Portico serves from
// Secrets and staples them to handshakes. All network I/O happens in Run's
// goroutines; the handshake only reads an immutable map through one atomic
// load (Wrap), so a slow or dead responder never delays a client: the
// certificate is then served without a staple.
//
// A response saying the certificate is revoked is not stapled: the
// certificate keeps being served and a warning names the Secret. Stapling
// "revoked" would turn a certificate most clients soft-fail on into a hard
// outage Portico cannot repair itself, since only the Secret's owner can
// replace the certificate.
type OCSPStapler struct {
	cfg OCSPConfig

	// staples maps each served *tls.Certificate to a prebuilt copy carrying
	// its staple, so a handshake neither hashes nor allocates. Replaced
	// wholesale on every change.
	staples atomic.Pointer[map[*stdtls.Certificate]*stdtls.Certificate]

	mu      sync.Mutex
	entries map[[sha256.Size]byte]*ocspEntry // by the leaf's SHA-256
	// known remembers, for each certificate of the last Update, its
	// entry's key, or nil when it cannot be stapled, so that the unchanged
	// key pairs a new snapshot shares with the last one are not hashed and
	// checked again.
	known map[*stdtls.Certificate]*[sha256.Size]byte
	wake  chan struct{}
}

// ocspEntry is one distinct leaf certificate and what is known of its status.
// Fields are guarded by OCSPStapler.mu.
type ocspEntry struct {
	leaf, issuer *x509.Certificate
	// served are the certificates (several Secrets may hold the same one)
	// with this leaf, and their sources.
	served  []*stdtls.Certificate
	sources []string

	staple     []byte    // DER of the last good, unrevoked response
	nextUpdate time.Time // when staple stops being valid
	revoked    bool
	due        time.Time // next fetch; zero: now
	fetching   bool
}

// NewOCSPStapler returns a stapler with nothing to staple; feed it with
// Update and start it with Run.
func NewOCSPStapler(cfg OCSPConfig) *OCSPStapler {
	s := &OCSPStapler{
		cfg:     cfg.withDefaults(),
		entries: map[[sha256.Size]byte]*ocspEntry{},
		known:   map[*stdtls.Certificate]*[sha256.Size]byte{},
		wake:    make(chan struct{}, 1),
	}
	empty := map[*stdtls.Certificate]*stdtls.Certificate{}
	s.staples.Store(&empty)
	return s
}

// Wrap returns getCertificate with the staple, when there is one, added to
// the certificate it picks. A nil stapler returns getCertificate unchanged.
func (s *OCSPStapler) Wrap(getCertificate func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error)) func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
	if s == nil {
		return getCertificate
	}
	return func(hello *stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
		c, err := getCertificate(hello)
		if err != nil || c == nil {
			return c, err
		}
		if stapled := (*s.staples.Load())[c]; stapled != nil {
			return stapled, nil
		}
		return c, nil
	}
}

// Update sets the certificates being served. Certificates without an OCSP
// responder or without their issuer in the chain are skipped; responses of
// certificates no longer served are dropped.
func (s *OCSPStapler) Update(subjects []OCSPSubject) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[[sha256.Size]byte]bool, len(subjects))
	known := make(map[*stdtls.Certificate]*[sha256.Size]byte, len(subjects))
	for _, e := range s.entries {
		e.served, e.sources = e.served[:0], e.sources[:0]
	}
	for _, sub := range subjects {
		if sub.Pair == nil || sub.Pair.Certificate == nil {
			continue
		}
		c := sub.Pair.Certificate
		key, wasKnown := s.known[c]
		var leaf, issuer *x509.Certificate
		if !wasKnown {
			if leaf, issuer = ocspLeafAndIssuer(c); leaf != nil {
				sum := sha256.Sum256(leaf.Raw)
				key = &sum
			}
		}
		known[c] = key
		if key == nil {
			continue
		}
		e := s.entries[*key]
		if e == nil {
			if leaf == nil {
				leaf, issuer = ocspLeafAndIssuer(c)
			}
			e = &ocspEntry{leaf: leaf, issuer: issuer}
			s.entries[*key] = e
		}
		seen[*key] = true
		if !containsCert(e.served, c) {
			e.served = append(e.served, c)
			e.sources = append(e.sources, sub.Source)
		}
	}
	for key := range s.entries {
		if !seen[key] {
			delete(s.entries, key)
		}
	}
	s.known = known
	s.publishLocked()
	s.signal()
}

func containsCert(list []*stdtls.Certificate, c *stdtls.Certificate) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// ocspLeafAndIssuer returns the leaf and its issuer when the leaf names an
// OCSP responder and the certificate after it in the chain signed it.
func ocspLeafAndIssuer(c *stdtls.Certificate) (leaf, issuer *x509.Certificate) {
	leaf = c.Leaf
	if leaf == nil || len(leaf.OCSPServer) == 0 || len(c.Certificate) < 2 {
		return nil, nil
	}
	issuer, err := x509.ParseCertificate(c.Certificate[1])
	if err != nil || leaf.CheckSignatureFrom(issuer) != nil {
		return nil, nil
	}
	return leaf, issuer
}

func (s *OCSPStapler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// publishLocked rebuilds the handshake map from the entries' staples,
// reusing the stapled copies whose staple did not change.
func (s *OCSPStapler) publishLocked() {
	prev := *s.staples.Load()
	m := make(map[*stdtls.Certificate]*stdtls.Certificate, len(prev)+1)
	for _, e := range s.entries {
		if len(e.staple) == 0 {
			continue
		}
		for _, c := range e.served {
			if old := prev[c]; old != nil && &old.OCSPStaple[0] == &e.staple[0] {
				m[c] = old
				continue
			}
			stapled := *c
			stapled.OCSPStaple = e.staple
			m[c] = &stapled
		}
	}
	s.staples.Store(&m)
}

// Run fetches and refreshes responses until ctx ends, then waits for the
// fetches in flight.
func (s *OCSPStapler) Run(ctx context.Context) {
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	slots := make(chan struct{}, s.cfg.Concurrency)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := s.startDue(ctx, slots, &inFlight)
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// startDue drops expired staples, starts the fetches that are due and
// returns when the next thing is due.
func (s *OCSPStapler) startDue(ctx context.Context, slots chan struct{}, inFlight *sync.WaitGroup) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	next := now.Add(time.Hour)
	changed := false
	for _, e := range s.entries {
		if e.staple != nil && !now.Before(e.nextUpdate) {
			e.staple = nil
			changed = true
		}
		if e.staple != nil && e.nextUpdate.Before(next) {
			next = e.nextUpdate
		}
		if e.fetching {
			continue
		}
		if !now.Before(e.due) {
			e.fetching = true
			inFlight.Add(1)
			go func() {
				defer inFlight.Done()
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				resp, err := s.fetch(ctx, e.leaf, e.issuer)
				<-slots
				if ctx.Err() != nil {
					return // stopping: nothing to record or warn about
				}
				s.finish(e, resp, err)
			}()
			continue
		}
		if e.due.Before(next) {
			next = e.due
		}
	}
	if changed {
		s.publishLocked()
	}
	return next
}

// finish records the outcome of one fetch.
func (s *OCSPStapler) finish(e *ocspEntry, resp *ocsp.Response, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.fetching = false
	now := time.Now()
	current := s.entries[sha256.Sum256(e.leaf.Raw)] == e
	switch {
	case err != nil:
		e.due = now.Add(s.cfg.RetryInterval)
		if current {
			s.cfg.Logger.Warn("OCSP response not fetched; the certificate is served without a staple until one is",
				"secret", e.sources, "responder", e.leaf.OCSPServer[0], "retryIn", s.cfg.RetryInterval, "error", err)
		}
	case resp.Status == ocsp.Revoked:
		if !e.revoked && current {
			s.cfg.Logger.Warn("OCSP responder says the certificate is revoked; still serving it, without a staple: replace the Secret",
				"secret", e.sources, "serial", e.leaf.SerialNumber.Text(16), "revokedAt", resp.RevokedAt)
		}
		e.revoked = true
		e.staple = nil
		e.due = s.refreshAt(now, resp)
	default:
		if current {
			s.cfg.Logger.Debug("OCSP response stapled", "secret", e.sources, "nextUpdate", resp.NextUpdate)
		}
		e.revoked = false
		e.staple = resp.Raw
		e.nextUpdate = resp.NextUpdate
		e.due = s.refreshAt(now, resp)
	}
	if current {
		s.publishLocked()
	}
	s.signal()
}

// refreshAt is about half-way through the response's validity, and never
// sooner than MinRefresh.
func (s *OCSPStapler) refreshAt(now time.Time, resp *ocsp.Response) time.Time {
	at := resp.ThisUpdate.Add(resp.NextUpdate.Sub(resp.ThisUpdate) / 2)
	if min := now.Add(s.cfg.MinRefresh); at.Before(min) {
		at = min
	}
	return at
}

// fetch asks each of the leaf's responders in turn for a response and
// returns the first good one, verified against issuer.
func (s *OCSPStapler) fetch(ctx context.Context, leaf, issuer *x509.Certificate) (*ocsp.Response, error) {
	req, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return nil, fmt.Errorf("building the OCSP request: %w", err)
	}
	var errs []error
	for _, responder := range leaf.OCSPServer {
		resp, err := s.fetchFrom(ctx, responder, req, leaf, issuer)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", responder, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (s *OCSPStapler) fetchFrom(ctx context.Context, responder string, req []byte, leaf, issuer *x509.Certificate) (*ocsp.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, responder, bytes.NewReader(req))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	hreq.Header.Set("Accept", "application/ocsp-response")
	hresp, err := s.cfg.Client.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", hresp.Status)
	}
	der, err := io.ReadAll(io.LimitReader(hresp.Body, maxOCSPResponseBytes+1))
	if err != nil {
		return nil, err
	}
	if len(der) > maxOCSPResponseBytes {
		return nil, fmt.Errorf("response larger than %d bytes", maxOCSPResponseBytes)
	}
	// ParseResponseForCert checks the signature (by issuer, or by a
	// responder certificate issuer delegated) and that the response is
	// about this certificate's serial.
	resp, err := ocsp.ParseResponseForCert(der, leaf, issuer)
	if err != nil {
		return nil, err
	}
	return resp, checkOCSPValidity(resp, time.Now())
}

// ocspClockSkew is how far in the future a response's ThisUpdate may be.
const ocspClockSkew = 5 * time.Minute

// checkOCSPValidity refuses responses that are not usable now.
func checkOCSPValidity(resp *ocsp.Response, now time.Time) error {
	switch {
	case resp.Status != ocsp.Good && resp.Status != ocsp.Revoked:
		return errors.New("responder does not know the certificate's status")
	case resp.NextUpdate.IsZero():
		return errors.New("response has no nextUpdate, so it cannot be cached")
	case resp.ThisUpdate.After(now.Add(ocspClockSkew)):
		return fmt.Errorf("response thisUpdate %s is in the future", resp.ThisUpdate.UTC().Format(time.RFC3339))
	case !now.Before(resp.NextUpdate):
		return fmt.Errorf("response expired at %s", resp.NextUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}
