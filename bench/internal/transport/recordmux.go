package transport

// This file is the benchmark's only user of quicrecord: when its public
// API changes, only this file follows.

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/quicrecord"
)

// defaultQUICConfig is the QUIC configuration of every QUIC transport:
// recordmux's default, so that flow-control windows are equal.
func defaultQUICConfig() *quic.Config { return quicrecord.DefaultQUICConfig() }

// RecordmuxOptions are recordmux's batching knobs: the
// quicrecord.StreamConfig fields of the same names, set as the
// connection's defaults. Zero values mean the library's defaults.
type RecordmuxOptions struct {
	FlushDelay      time.Duration `json:"flush_delay,omitempty"`
	MaxBatchRecords int           `json:"max_batch_records,omitempty"`
	MaxBatchBytes   int           `json:"max_batch_bytes,omitempty"`
	// AckDelay 0 means the library's default; negative switches it off.
	AckDelay time.Duration `json:"ack_delay,omitempty"`
}

// Recordmux is quicrecord, the system under test, through its public API
// (NewListener and NewConn over the same quic.Transport setup as the
// other QUIC transports, OpenRecordStream, Send, WaitAcked, Apply): one
// QUIC stream per record stream. Its variants differ in configuration
// only: "recordmux" keeps the default Config (adaptive windows, batches
// sent uncompressed), "recordmux-wN" a fixed window of N records
// (WindowFixed, with MaxInFlightRecords and MaxApplyBacklogRecords N),
// "recordmux-s2", "recordmux-zstd" and "recordmux-auto" compress their
// batches (StreamConfig.Compression).
type Recordmux struct {
	name        string
	opts        RecordmuxOptions
	tuning      Tuning
	fixed       bool
	compression quicrecord.Compression
}

// newRecordmuxCompressed is recordmux with StreamConfig.Compression
// named c ("s2", "zstd", "auto"); it panics on another name, a
// programming error.
func newRecordmuxCompressed(o RecordmuxOptions, c string) Recordmux {
	z, err := quicrecord.ParseCompression(c)
	if err != nil {
		panic(err)
	}
	return Recordmux{name: "recordmux-" + c, opts: o, compression: z}
}

func newRecordmux(o RecordmuxOptions) Recordmux { return Recordmux{name: "recordmux", opts: o} }

// newRecordmuxFixed is recordmux with MaxInFlightRecords and
// MaxApplyBacklogRecords both window.
func newRecordmuxFixed(o RecordmuxOptions, window int) Recordmux {
	return Recordmux{name: fmt.Sprintf("recordmux-w%d", window), opts: o, tuning: Tuning{WindowRecords: window}, fixed: true}
}

// Name returns "recordmux", "recordmux-wN" or "recordmux-" and the
// compression.
func (r Recordmux) Name() string { return r.name }

// Describe says what the transport is.
func (r Recordmux) Describe() string {
	if w := r.tuning.WindowRecords; r.fixed && w > 0 {
		return fmt.Sprintf("recordmux, a fixed window: Window = WindowFixed, MaxInFlightRecords = MaxApplyBacklogRecords = %d", w)
	}
	if r.compression != 0 {
		return fmt.Sprintf("recordmux (quicrecord), default Config with batches compressed: Compression = %s", r.compression)
	}
	return "recordmux (quicrecord), default Config (adaptive windows), one QUIC stream per stream"
}

// QUIC returns true.
func (Recordmux) QUIC() bool { return true }

// With applies t; its windows set MaxInFlight* and MaxApplyBacklog*.
func (r Recordmux) With(t Tuning) Transport { r.tuning = r.tuning.merge(t); return r }

func (r Recordmux) config(n Network) *quicrecord.Config {
	return &quicrecord.Config{
		QUIC: quicConfig(n, r.tuning),
		Stream: quicrecord.StreamConfig{
			FlushDelay:             r.opts.FlushDelay,
			MaxBatchRecords:        r.opts.MaxBatchRecords,
			MaxBatchBytes:          r.opts.MaxBatchBytes,
			AckDelay:               r.opts.AckDelay,
			MaxInFlightRecords:     r.tuning.WindowRecords,
			MaxApplyBacklogRecords: r.tuning.WindowRecords,
			MaxInFlightBytes:       r.tuning.WindowBytes,
			MaxApplyBacklogBytes:   r.tuning.WindowBytes,
			Window:                 r.window(),
			Compression:            r.compression,
		},
	}
}

// window is the window mode: fixed for the recordmux-wN variants.
func (r Recordmux) window() quicrecord.WindowMode {
	if r.fixed {
		return quicrecord.WindowFixed
	}
	return quicrecord.WindowAdaptive
}

// Listen serves recordmux.
func (r Recordmux) Listen(_ context.Context, n Network, addr string, id *Identity) (Listener, error) {
	cfg := r.config(n)
	ql, closeQL, err := quicListen(n, addr, id.ServerTLS(quicrecord.ALPN), cfg.QUIC)
	if err != nil {
		return nil, err
	}
	ln, err := quicrecord.NewListener(ql, cfg)
	if err != nil {
		_ = closeQL()
		return nil, err
	}
	closeLn := func() error {
		err := ln.Close()
		_ = closeQL()
		return err
	}
	return serve(ln.Addr(), closeLn, ln.Accept,
		func(ctx context.Context, c *quicrecord.Conn) (Receiver, error) {
			s, err := c.AcceptRecordStream(ctx)
			if err != nil {
				return nil, err
			}
			return rmReceiver{s}, nil
		},
		(*quicrecord.Conn).Close), nil
}

// Dial connects to a recordmux server.
func (r Recordmux) Dial(ctx context.Context, n Network, addr string, pin Pin) (Conn, error) {
	cfg := r.config(n)
	qc, release, err := quicDial(ctx, n, addr, pin.ClientTLS(quicrecord.ALPN), cfg.QUIC)
	if err != nil {
		return nil, err
	}
	c, err := quicrecord.NewConn(qc, cfg)
	if err != nil {
		_ = closeQUIC(qc)
		release()
		return nil, err
	}
	return &rmConn{c: c, release: release}, nil
}

// rmConn is a recordmux client connection.
type rmConn struct {
	c       *quicrecord.Conn
	release func()
	nextID  atomic.Uint64
}

// Open opens a record stream; each gets its own data ID.
func (c *rmConn) Open(ctx context.Context) (Sender, error) {
	s, err := c.c.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "bench", DataID: c.nextID.Add(1)})
	if err != nil {
		return nil, err
	}
	return rmSender{s}, nil
}

// WireBytesSent returns the bytes quic-go has sent on the connection:
// every UDP payload, QUIC and TLS overhead included.
func (c *rmConn) WireBytesSent() uint64 { return c.c.QUIC().ConnectionStats().BytesSent }

func (c *rmConn) Close() error {
	err := c.c.Close()
	c.release()
	return err
}

// rmSender is the sending end of a record stream.
type rmSender struct{ s *quicrecord.RecordStream }

func (s rmSender) Send(ctx context.Context, rec []byte) (uint64, error) { return s.s.Send(ctx, rec) }

// Flush returns at once: the stream's writer sends as soon as it is free.
func (s rmSender) Flush() error { return nil }

func (s rmSender) WaitApplied(ctx context.Context, seq uint64) error { return s.s.WaitAcked(ctx, seq) }

func (s rmSender) Applied() uint64 { return s.s.AckedSeq() }

func (s rmSender) Close() error { return s.s.Close(context.Background()) }

// rmReceiver is the receiving end of a record stream.
type rmReceiver struct{ s *quicrecord.RecordStream }

func (r rmReceiver) Recv(ctx context.Context) (uint64, []byte, error) {
	rec, err := r.s.Recv(ctx)
	return rec.Seq, rec.Data, err
}

// Ack acknowledges up to seq; the ack rides in the next outgoing batch
// within AckDelay, or leaves at once when this direction is idle.
func (r rmReceiver) Ack(seq uint64) error { return r.s.Ack(seq) }

func (r rmReceiver) Close() error { return r.s.Close(context.Background()) }

// Apply uses RecordStream.Apply, which acknowledges once per received
// batch.
func (r rmReceiver) Apply(ctx context.Context, fn func([]byte)) error {
	return r.s.Apply(ctx, func(rec quicrecord.Record) error { fn(rec.Data); return nil })
}

// Backlog reports the stream's apply backlog.
func (r rmReceiver) Backlog() Backlog {
	in := r.s.Snapshot().In
	return Backlog{Records: in.BacklogRecords, PeakRecords: in.BacklogPeakRecords, PeakBytes: in.BacklogPeakBytes}
}
