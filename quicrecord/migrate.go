package quicrecord

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/quic-go/quic-go"
)

// Connection migration: a client connection moves to a new local socket
// (another interface, a new address) through QUIC's path validation:
// probe the new path, then switch to it. Streams, windows and
// diagnostics carry on; nothing is reconnected or replayed. A NAT
// rebinding (the client's address changing under it) needs no call: the
// server validates the new path and follows it by itself.

// ErrMigrationFailed matches the *MigrationError of a failed
// Conn.Migrate.
var ErrMigrationFailed = errors.New("quicrecord: connection migration failed")

// MigrationError reports that Conn.Migrate did not move the connection:
// Local is the address it tried, Err why (the probe's context ended, the
// server does not allow migration, this side is the server). The
// connection goes on on its old path. It matches ErrMigrationFailed and
// its cause.
type MigrationError struct {
	Local net.Addr
	Err   error
}

func (e *MigrationError) Error() string {
	return "quicrecord: migrate to " + e.Local.String() + ": " + e.Err.Error()
}

// Unwrap returns ErrMigrationFailed and the cause.
func (e *MigrationError) Unwrap() []error { return []error{ErrMigrationFailed, e.Err} }

// migrations is a connection's migration state.
type migrations struct {
	serial sync.Mutex // serialises Migrate calls; held across the probe
	// mu guards the fields below; never held while calling out.
	mu         sync.Mutex
	released   bool // the connection was released: close new paths at once
	transports []*quic.Transport
	conns      []net.PacketConn
	done       uint64 // migrations completed
	failed     uint64 // migrations that failed
}

// MigrationStats count a connection's explicit migrations.
type MigrationStats struct {
	Migrations uint64 `json:"migrations"` // completed: the connection moved
	Failed     uint64 `json:"failed"`     // failed: the connection stayed
}

// Migrations returns how many times Migrate moved the connection, and
// how many times it failed.
func (c *Conn) Migrations() MigrationStats {
	c.mig.mu.Lock()
	defer c.mig.mu.Unlock()
	return MigrationStats{Migrations: c.mig.done, Failed: c.mig.failed}
}

// Migrate moves a client connection to the local socket pc: it probes
// the path from pc to the server (until ctx ends; quic-go retransmits
// the probe with growing intervals) and, once the server answered,
// switches the connection to it. Streams and their windows carry on.
// The connection owns pc from the call on, and closes it when the
// connection is released, also after a failed migration (quic-go keeps
// the connection registered on the socket's transport until then). On
// failure the connection goes on on the path it used before, and the
// error is a *MigrationError (errors.Is ErrMigrationFailed). Calls are
// serialised; a server-side connection cannot migrate.
func (c *Conn) Migrate(ctx context.Context, pc net.PacketConn) error {
	c.mig.serial.Lock()
	defer c.mig.serial.Unlock()
	if c.ctx.Err() != nil {
		_ = pc.Close()
		return c.connErr()
	}
	// The probe ends with the connection too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	tr := &quic.Transport{Conn: pc}
	err := c.migrate(ctx, tr)
	c.mig.mu.Lock()
	released := c.mig.released
	if !released {
		// Even after a failure: closing the transport would close the
		// connection, whose IDs quic-go keeps registered on it.
		c.mig.transports = append(c.mig.transports, tr)
		c.mig.conns = append(c.mig.conns, pc)
	}
	if err == nil && !released {
		c.mig.done++
	} else {
		c.mig.failed++
	}
	c.mig.mu.Unlock()
	if released {
		_ = tr.Close()
		_ = pc.Close()
	}
	if c.ctx.Err() != nil {
		return c.connErr()
	}
	if err != nil {
		return &MigrationError{Local: pc.LocalAddr(), Err: err}
	}
	if c.set.logger != nil {
		c.set.logger.Info("connection migrated", "local", pc.LocalAddr().String(), "remote", c.qc.RemoteAddr().String())
	}
	return nil
}

// migrate probes the path over tr and switches to it.
func (c *Conn) migrate(ctx context.Context, tr *quic.Transport) error {
	path, err := c.qc.AddPath(tr)
	if err != nil {
		return err
	}
	if err := path.Probe(ctx); err != nil {
		_ = path.Close()
		return err
	}
	if err := path.Switch(); err != nil {
		_ = path.Close()
		return err
	}
	return nil
}

// releaseMigrations closes the transports and sockets of the paths the
// connection migrated to. Called by release, once quic-go closed the
// connection.
func (c *Conn) releaseMigrations() {
	c.mig.mu.Lock()
	trs, pcs := c.mig.transports, c.mig.conns
	c.mig.transports, c.mig.conns, c.mig.released = nil, nil, true
	c.mig.mu.Unlock()
	for _, tr := range trs {
		_ = tr.Close()
	}
	for _, pc := range pcs {
		_ = pc.Close()
	}
}

// ErrNotConnected is the cause of the *MigrationError of a
// ResumableStream.Migrate called while the stream has no connection.
var ErrNotConnected = errors.New("quicrecord: the resumable stream has no connection")

// Migrate moves the resumable stream's current connection to the local
// socket pc, as Conn.Migrate does; the stream carries on without a
// reconnect. Connections dialed after a later loss use the dial function
// as before. Without a connection it fails with a *MigrationError whose
// cause is ErrNotConnected, and closes pc.
func (r *ResumableStream) Migrate(ctx context.Context, pc net.PacketConn) error {
	r.mu.Lock()
	conn := r.curConn
	r.mu.Unlock()
	if conn == nil {
		_ = pc.Close()
		return &MigrationError{Local: pc.LocalAddr(), Err: ErrNotConnected}
	}
	return conn.Migrate(ctx, pc)
}
