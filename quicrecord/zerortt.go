package quicrecord

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// 0-RTT reconnects (docs/PROTOCOL.md §6.4). A client that resumes its TLS
// session (DialEarly, with a tls.ClientSessionCache) may send its first
// flight of stream data in 0-RTT, before the handshake completes; a
// server accepts it when its listener allows 0-RTT (Config.QUIC.Allow0RTT
// with Listen). 0-RTT data can be replayed by an attacker who recorded
// it, so:
//
//   - a plain stream never sends anything in 0-RTT: OpenRecordStream
//     waits for the handshake to complete (openStream); an acceptor takes
//     a plain stream whose HELLO came in 0-RTT (from another
//     implementation) only once the handshake completes (handshakeBy);
//   - a resumable stream sends its resume HELLO in 0-RTT, and with an
//     optimistic resume the records behind it (resume_early.go, §6.5):
//     replaying them applies nothing twice, because the acceptor drops
//     every sequence number its key already applied (§6.3);
//   - a resume HELLO that arrives before the handshake completed does not
//     take a key over from a live stream until the handshake completes
//     (confirmBeforeTakeover): a replay, which cannot complete it, times
//     out and is refused, before any record behind it is read, and the
//     live stream keeps its key.

// waitHandshake waits until the connection's handshake completed, so
// that nothing is sent in 0-RTT.
func (c *Conn) waitHandshake(ctx context.Context) error {
	done := c.qc.HandshakeComplete()
	select {
	case <-done:
		c.after0RTT(ctx)
		return nil
	default:
	}
	select {
	case <-done:
		c.after0RTT(ctx)
		return nil
	case <-ctx.Done():
		return ctxError(ctx)
	case <-c.ctx.Done():
		return c.connErr()
	}
}

// after0RTT makes an early connection whose handshake completed usable
// for new streams: when the server rejected its 0-RTT, quic-go discards
// every stream opened in it and refuses new ones (quic.Err0RTTRejected)
// until NextConnection, which returns at once once the handshake is
// complete.
func (c *Conn) after0RTT(ctx context.Context) {
	if c.early {
		_, _ = c.qc.NextConnection(ctx)
	}
}

// rejected0RTT reports whether this is an early connection whose 0-RTT
// the server rejected, once the handshake completed (waiting for it
// within ctx), and makes it usable for new streams. A server that lost
// its session ticket keys (a restart) rejects the 0-RTT of every client
// resuming with an old ticket: the stream opened in 0-RTT is gone, with
// everything sent on it, and is opened again over the same connection
// (openStream), which also brings the client a new ticket.
func (c *Conn) rejected0RTT(ctx context.Context) bool {
	if !c.early {
		return false
	}
	if _, err := c.qc.NextConnection(ctx); err != nil {
		return false
	}
	return !c.qc.ConnectionState().Used0RTT
}

// handshakeBy waits, until deadline, for the handshake to complete: an
// acceptor takes no plain stream from 0-RTT data, whoever sent it (a
// replay of a plain stream's records would apply them twice). A replay,
// which cannot complete the handshake, is refused.
func (c *Conn) handshakeBy(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := c.waitHandshake(ctx); err != nil {
		if ctx.Err() != nil {
			return &StreamError{Code: CodeRefused, Reason: "a stream in 0-RTT data whose handshake never completed"}
		}
		return err
	}
	return nil
}

// confirmBeforeTakeover is the acceptor's replay defence: a resume HELLO
// that arrived before the handshake completed (in 0-RTT) and would take
// key over from a live stream waits, until deadline, for the handshake
// to complete; a replay never completes it and is refused. So does one
// whose key is bound to another identity than the one known so far, so
// that the binding is checked against the final client certificate.
func (c *Conn) confirmBeforeTakeover(key []byte, deadline time.Time) error {
	done := c.qc.HandshakeComplete()
	select {
	case <-done:
		return nil
	default:
	}
	if !c.set.resume.mustConfirm(key, c.peerIdentity()) {
		return nil
	}
	c.zeroRTTHeld.Add(1)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return &StreamError{Code: CodeRefused, Reason: "a resume in 0-RTT data takes a live stream's key only once the handshake completes"}
	case <-c.ctx.Done():
		return c.connErr()
	}
}

// mustConfirm reports whether a resume of key by peer, before the
// handshake completed, must wait for it: the key belongs to a live
// stream. (A key held under another identity is not found under peer;
// acceptExchange waits for the handshake before it looks again.)
func (st *ResumeStore) mustConfirm(key []byte, peer string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	rs := st.keys[storeKey{peer, string(key)}]
	return rs != nil && rs.stream != nil && rs.stream.ctx.Err() == nil
}

// holds reports whether the store has state for info's (peer, key).
func (st *ResumeStore) holds(info ResumeKeyInfo) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.keys[storeKey{info.Peer, string(info.Key)}] != nil
}

// ZeroRTTHeld counts the resume HELLOs that arrived before the handshake
// completed and had to wait for it before taking a live stream's key
// over (the replay defence).
func (c *Conn) ZeroRTTHeld() uint64 { return c.zeroRTTHeld.Load() }

// DialEarly is Dial for 0-RTT: with a tlsConf whose ClientSessionCache
// holds a session of the server (from an earlier connection with the
// same cache), it returns before the handshake completes, and a
// resumable stream's resume HELLO (with an optimistic resume, its
// records too) travels in 0-RTT; plain streams wait
// for the handshake (nothing of theirs is ever sent in 0-RTT). Without a
// session it behaves like Dial. The server must allow 0-RTT
// (Config.QUIC.Allow0RTT on the Listen side).
func DialEarly(ctx context.Context, addr string, tlsConf *tls.Config, cfg *Config) (*Conn, error) {
	return dial(ctx, addr, tlsConf, cfg, true)
}

// sessionCache returns tlsConf with a ClientSessionCache, one made once
// per call site (cache) when tlsConf has none.
func sessionCache(tlsConf *tls.Config, once *sync.Once, cache *tls.ClientSessionCache) *tls.Config {
	if tlsConf != nil && tlsConf.ClientSessionCache != nil {
		return tlsConf
	}
	once.Do(func() { *cache = tls.NewLRUClientSessionCache(8) })
	c := &tls.Config{}
	if tlsConf != nil {
		c = tlsConf.Clone()
	}
	c.ClientSessionCache = *cache
	return c
}

// quicListener is what a Listener accepts connections from: a
// quic.Listener, or a quic.EarlyListener when 0-RTT is allowed.
type quicListener interface {
	Accept(ctx context.Context) (*quic.Conn, error)
	Close() error
	Addr() net.Addr
}

// NewEarlyListener is NewListener for a quic-go listener that accepts
// 0-RTT connections (quic.Transport.ListenEarly with Allow0RTT).
func NewEarlyListener(ql *quic.EarlyListener, cfg *Config) (*Listener, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	return newListener(ql, set), nil
}
