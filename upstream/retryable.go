package upstream

import (
	"context"
	"errors"
	"net"
)

// RetryableFailure reports whether err, an Outcome.Err, is a failure a
// retry policy may send the request again for: the connect failed on every
// endpoint tried (including the TLS handshake to a backend), the backend
// reset or closed the connection before a single response byte, or the
// ForwardOptions BackendTimeout passed. The request may have reached the
// backend in the last two cases, which is why only an explicit retry
// policy retries them.
func RetryableFailure(err error) bool {
	if err == nil {
		return false
	}
	var de *dialError
	var we *backendWriteError
	var nr *noResponseError
	return errors.As(err, &de) || errors.As(err, &we) || errors.As(err, &nr) || errors.Is(err, errBackendTimeout)
}

// Failure is the class of a failed exchange, for retry policies that
// retry some classes only (ingress-nginx's proxy-next-upstream).
type Failure uint8

const (
	// FailureNone: the exchange did not fail before the response, or
	// failed in a way no policy retries (the client went away, its body
	// could not be read, a response already started).
	FailureNone Failure = iota
	// FailureConnect: the connect or the TLS handshake to a backend failed
	// other than by a timeout; nothing reached a backend.
	FailureConnect
	// FailureConnectTimeout: the connect or the TLS handshake timed out;
	// nothing reached a backend.
	FailureConnectTimeout
	// FailureExchange: writing the request failed, or the backend closed
	// or reset the connection before a single response byte.
	FailureExchange
	// FailureTimeout: the backend did not send its response header in
	// time (the read timeout or the ForwardOptions BackendTimeout).
	FailureTimeout
	// FailureInvalidResponse: the response header could not be parsed.
	FailureInvalidResponse
)

// Classify returns the class of err, an Outcome.Err.
func Classify(err error) Failure {
	if err == nil {
		return FailureNone
	}
	var de *dialError
	if errors.As(err, &de) {
		var ne net.Error
		if errors.As(de.err, &ne) && ne.Timeout() || errors.Is(de.err, context.DeadlineExceeded) {
			return FailureConnectTimeout
		}
		return FailureConnect
	}
	var ne net.Error
	if errors.Is(err, errBackendTimeout) || errors.Is(err, errHeaderTimeout) || errors.As(err, &ne) && ne.Timeout() {
		var cbe *clientBodyError
		if errors.As(err, &cbe) || errors.Is(err, ErrClientBodyTimeout) {
			return FailureNone
		}
		return FailureTimeout
	}
	var we *backendWriteError
	var nr *noResponseError
	if errors.As(err, &we) || errors.As(err, &nr) {
		return FailureExchange
	}
	var bre *badResponseError
	if errors.As(err, &bre) {
		return FailureInvalidResponse
	}
	return FailureNone
}
