package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// Dial connects to a recordmux listener at addr and returns the connection
// once the QUIC handshake is complete. When tlsConf names no ALPN, [ALPN]
// is used; a server that speaks another protocol fails the handshake. The
// local socket is bound to the loopback interface when addr is a loopback
// address, and to all interfaces otherwise; it is closed with the Conn.
//
// An invalid cfg is a *ConfigError. Every other failure is a *[DialError]
// naming the address, in the shape of net.Dial's errors ("quicrecord:
// dial udp 127.0.0.1:7999: ..."); it does not match net.ErrClosed, as no
// connection was ever open. A peer that does not answer fails with
// [ErrHandshakeTimeout] after Config.HandshakeTimeout, a TLS failure
// carries the TLS error (errors.As finds, say, an
// *x509.HostnameError, and the *quic.TransportError), a server without
// the application protocol gives [ErrALPNMismatch], and the end of ctx
// its cause (matching os.ErrDeadlineExceeded for a deadline).
func Dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg *Config) (*Conn, error) {
	return dial(ctx, addr, tlsConf, cfg, false)
}

// dial is Dial, and DialEarly when early.
func dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg *Config, early bool) (*Conn, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, &DialError{Network: "udp", Addr: addr, Err: err}
	}
	la := &net.UDPAddr{}
	if ra.IP.IsLoopback() {
		la.IP = ra.IP
	}
	pc, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, &DialError{Network: "udp", Addr: ra.String(), Err: err}
	}
	tr := &quic.Transport{Conn: pc, StatelessResetKey: cfg.resetKey()}
	cleanup := sync.OnceFunc(func() {
		_ = tr.Close()
		_ = pc.Close()
	})
	dialQUIC := tr.Dial
	if early {
		dialQUIC = tr.DialEarly
	}
	qc, err := dialQUIC(ctx, ra, withALPN(tlsConf), cfg.quicConfig())
	if err != nil {
		cleanup()
		return nil, &DialError{Network: "udp", Addr: ra.String(), Err: dialCause(ctx, err, cfg.handshakeTimeout())}
	}
	return newConn(qc, set, nil, 0, cleanup), nil
}

// DialError reports that Dial (or a resumable stream's dial) never got a
// connection: Network and Addr say where to, Err why. It reads like
// net.Dial's errors and does not match net.ErrClosed.
type DialError struct {
	Network string
	Addr    string
	Err     error
}

func (e *DialError) Error() string {
	return "quicrecord: dial " + e.Network + " " + e.Addr + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *DialError) Unwrap() error { return e.Err }

// ErrHandshakeTimeout matches the *DialError of a peer that did not
// complete the QUIC handshake in time (see Config.HandshakeTimeout):
// nothing listens at the address, or packets do not get through. It
// matches os.ErrDeadlineExceeded.
var ErrHandshakeTimeout error = timeoutError("quicrecord: handshake timeout")

// ErrALPNMismatch matches the *DialError of a server that does not speak
// the application protocol the client asked for (TLS alert
// no_application_protocol).
var ErrALPNMismatch = errors.New("quicrecord: the server does not speak the requested application protocol (ALPN mismatch)")

// ErrNoCertificate is returned by Listen for a tls.Config with no
// certificate (no Certificates, GetCertificate or GetConfigForClient):
// every handshake would fail.
var ErrNoCertificate = errors.New("quicrecord: no server certificate")

// timeoutError is a sentinel that also matches os.ErrDeadlineExceeded.
type timeoutError string

func (e timeoutError) Error() string        { return string(e) }
func (e timeoutError) Is(target error) bool { return target == os.ErrDeadlineExceeded }
func (e timeoutError) Timeout() bool        { return true }

// alertNoApplicationProtocol is TLS alert 120 as a QUIC CRYPTO_ERROR.
const alertNoApplicationProtocol = quic.TransportErrorCode(0x100 + 120)

// dialCause is the Err of Dial's *DialError for the quic-go error err.
func dialCause(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() != nil {
		return ctxError(ctx)
	}
	var idle *quic.IdleTimeoutError
	var hs *quic.HandshakeTimeoutError
	var te *quic.TransportError
	switch {
	case errors.As(err, &idle):
		return &handshakeError{msg: fmt.Sprintf("handshake timeout: no answer within %v", timeout), is: ErrHandshakeTimeout, quic: err}
	case errors.As(err, &hs):
		return &handshakeError{msg: fmt.Sprintf("handshake timeout: not complete within %v", 2*timeout), is: ErrHandshakeTimeout, quic: err}
	case errors.As(err, &te) && te.ErrorCode == alertNoApplicationProtocol:
		return &handshakeError{msg: "the server does not speak the requested application protocol (ALPN mismatch): " + te.Error(), is: ErrALPNMismatch, quic: err}
	}
	return &handshakeError{msg: err.Error(), quic: err}
}

// handshakeError is a failed QUIC handshake. It unwraps to its sentinel
// and to what caused quic-go's error (a TLS error, say), but not to
// quic-go's error itself, which matches net.ErrClosed: the connection
// never opened. errors.As still finds quic-go's error.
type handshakeError struct {
	msg  string
	is   error // a sentinel, or nil
	quic error
}

func (e *handshakeError) Error() string { return e.msg }

// Unwrap returns the sentinel and the causes of quic-go's error other
// than net.ErrClosed.
func (e *handshakeError) Unwrap() []error {
	var errs []error
	if e.is != nil {
		errs = append(errs, e.is)
	}
	var inner []error
	switch u := e.quic.(type) {
	case interface{ Unwrap() []error }:
		inner = u.Unwrap()
	case interface{ Unwrap() error }:
		inner = []error{u.Unwrap()}
	}
	for _, err := range inner {
		if err != nil && err != net.ErrClosed {
			errs = append(errs, err)
		}
	}
	return errs
}

// As finds quic-go's error, and what errors.As finds in it.
func (e *handshakeError) As(target any) bool { return errors.As(e.quic, target) }

// handshakeTimeout is the QUIC handshake idle timeout of connections made
// with c: Config.HandshakeTimeout, else the QUIC config's, else quic-go's
// default.
func (c *Config) handshakeTimeout() time.Duration {
	switch {
	case c == nil:
		return DefaultHandshakeTimeout
	case c.HandshakeTimeout != 0:
		return c.HandshakeTimeout
	case c.QUIC != nil && c.QUIC.HandshakeIdleTimeout != 0:
		return c.QUIC.HandshakeIdleTimeout
	}
	return DefaultHandshakeTimeout
}
