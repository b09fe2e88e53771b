package upstream

import "errors"

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
