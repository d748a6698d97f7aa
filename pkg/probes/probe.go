package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// Prober checks one service once. It returns the service's latency when
// it answered as expected, and otherwise an error (an *Error, as a rule)
// and no latency. It must return soon after ctx ends.
type Prober interface {
	Probe(ctx context.Context) (time.Duration, error)
}

// Failure reasons: the Reason of an *Error. They are few and fixed, so
// they can be label values.
const (
	// ReasonTimeout: the probe's deadline passed before the answer.
	ReasonTimeout = "timeout"
	// ReasonCanceled: the probe was stopped (the node is shutting down).
	ReasonCanceled = "canceled"
	// ReasonRefused: nothing listens at the address.
	ReasonRefused = "refused"
	// ReasonReset: the connection was reset or closed mid-answer.
	ReasonReset = "reset"
	// ReasonUnreachable: no route to the host or network.
	ReasonUnreachable = "unreachable"
	// ReasonDNS: the host name did not resolve.
	ReasonDNS = "dns"
	// ReasonTLS: the TLS handshake failed (an untrusted or wrong
	// certificate, a protocol mismatch).
	ReasonTLS = "tls"
	// ReasonStatus: an HTTP status code that was not expected.
	ReasonStatus = "status"
	// ReasonBody: an HTTP body that did not match.
	ReasonBody = "body"
	// ReasonNoResponders: no NATS subscriber listens on the subject.
	ReasonNoResponders = "no_responders"
	// ReasonServiceError: a NATS micro service answered with an error.
	ReasonServiceError = "service_error"
	// ReasonConnection: the NATS connection is closed or down.
	ReasonConnection = "connection"
	// ReasonError: anything else.
	ReasonError = "error"
)

// Error is a failed probe.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Msg says what went wrong, in one line without a URL or a
	// credential.
	Msg string
	// Err is the cause, if any; its text is not part of Error().
	Err error
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf is the reason of a failed probe's error: the Reason of an
// *Error in its chain, else a reason classified from the cause, else
// ReasonError. It is "" for a nil error.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return classify(err)
}

// fail wraps a transport error as an *Error with a classified reason and
// a message that starts with what was attempted.
// A *url.Error is replaced by its cause: its text holds the URL, which
// may carry a credential.
func fail(what string, err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	r := classify(err)
	msg := what + ": " + describe(r, err)
	return &Error{Reason: r, Msg: msg, Err: err}
}

// classify maps a transport error to a reason.
func classify(err error) string {
	var dnsErr *net.DNSError
	var verifyErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var alertErr tls.AlertError
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, nats.ErrNoResponders):
		return ReasonNoResponders
	case errors.As(err, &dnsErr):
		return ReasonDNS
	case errors.As(err, &verifyErr), errors.As(err, &unknownCA), errors.As(err, &hostErr),
		errors.As(err, &invalidCert), errors.As(err, &recordErr), errors.As(err, &alertErr):
		return ReasonTLS
	case errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error"):
		// crypto/tls reports alerts, sent or received, this way.
		return ReasonTLS
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return ReasonReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ReasonUnreachable
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrNoServers):
		return ReasonConnection
	case errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	}
	return ReasonError
}

// describe is a short message for a classified error: a plain sentence
// for the common reasons, with the cause's own text where it helps.
func describe(reason string, err error) string {
	switch reason {
	case ReasonTimeout:
		return "no answer before the deadline"
	case ReasonCanceled:
		return "canceled"
	case ReasonRefused:
		return "connection refused: nothing listens there"
	case ReasonNoResponders:
		return "no responders: nothing subscribes to the subject"
	case ReasonTLS:
		var unknownCA x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		switch {
		case errors.As(err, &unknownCA):
			return "TLS: the server's certificate is signed by an unknown authority: give its CA (tls ca-file)"
		case errors.As(err, &hostErr):
			return "TLS: the server's certificate is not valid for the name asked: fix the host or tls server-name (" + hostErr.Error() + ")"
		case strings.HasSuffix(err.Error(), "tls: certificate required"):
			return "TLS: the server requires a client certificate: give tls cert-file and key-file"
		}
	}
	return err.Error()
}
