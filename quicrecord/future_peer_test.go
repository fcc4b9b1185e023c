package quicrecord

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// futurePeer plays, on a raw quic-go stream, a peer of a protocol version
// this library does not speak: it announces version 3, feature bits this
// library does not know and an unknown HELLO extension, and it sends a
// frame of a reserved type before every batch. It otherwise speaks the
// protocol as version 2 does (the highest version both sides know): it
// validates and acks the library's records (piggybacked on its own
// batches while it sends, when that is effective) and sends records of
// its own.
type futurePeer struct {
	t  testing.TB
	qs *quic.Stream
	fr *frames.Reader
	// peerHello is the library's HELLO; piggy says whether piggybacked
	// acks are effective (both announce them at a common version >= 2).
	peerHello frames.Hello
	piggy     bool

	// wmu serialises writes to qs and guards what the writes decide on. A
	// channel rather than a sync.Mutex: a goroutine waiting for it while
	// another is blocked in Write must count as durably blocked, or the
	// synctest clock stops.
	wmu     chanMutex
	sending bool   // sendAll runs: acks wait for its next batch
	pendAck uint64 // ack owed to the library, 0 if none
	out     futureCounts

	// Written by the reader goroutine; read once readDone is closed.
	in       futureCounts
	received uint64
	readErr  error
	readDone chan struct{}
	// peerAcked is the library's last ack, published by the reader.
	peerAcked atomic.Uint64
}

// futureCounts count a future peer's frames in one direction, in the
// library's snapshot terms.
type futureCounts struct {
	batches, unknown, piggyAcks, soloAcks, errors uint64
}

// futureFeatures are the features a future peer announces: piggybacked
// acks, two bits this library does not know, and a reserved (grease) bit.
const futureFeatures = FeaturePiggybackAck | Features(1<<40|1<<30) | 1<<61

// chanMutex is a mutex whose waiters are durably blocked under synctest.
type chanMutex struct{ ch chan struct{} }

func (m *chanMutex) Lock()   { m.ch <- struct{}{} }
func (m *chanMutex) Unlock() { <-m.ch }

func futureHello(scope string) *frames.Hello {
	return &frames.Hello{
		MinVersion: 1, MaxVersion: 3, Features: futureFeatures,
		MaxFrameSize: 1 << 20, MaxRecordSize: 1 << 20, WindowRecords: DefaultMaxApplyBacklogRecords, WindowBytes: DefaultMaxApplyBacklogBytes,
		Scope:      scope,
		Extensions: []frames.Extension{{ID: 0x3f00, Value: []byte("future")}, {ID: 0x1f*3 + 0x21, Value: []byte("grease")}},
	}
}

func newFuturePeer(t testing.TB, qs *quic.Stream) *futurePeer {
	return &futurePeer{t: t, qs: qs, fr: frames.NewReader(qs, 1<<22), readDone: make(chan struct{}), wmu: chanMutex{make(chan struct{}, 1)}}
}

// open sends the future HELLO as the opener and reads the library's
// reply; accept reads the library's HELLO and replies. Either then starts
// the reader.
func (p *futurePeer) open(scope string) {
	p.t.Helper()
	p.write(futureHello(scope).Append(nil))
	p.readPeerHello()
	go p.readLoop()
}

func (p *futurePeer) accept() {
	p.t.Helper()
	p.readPeerHello()
	p.write(futureHello("").Append(nil))
	go p.readLoop()
}

func (p *futurePeer) readPeerHello() {
	p.t.Helper()
	typ, payload, err := p.fr.ReadFrame()
	require.NoError(p.t, err)
	require.Equal(p.t, frames.TypeHello, typ)
	p.peerHello, _, err = frames.ParseHello(payload)
	require.NoError(p.t, err)
	v := min(uint64(3), p.peerHello.MaxVersion)
	p.piggy = v >= 2 && p.peerHello.Features.Has(FeaturePiggybackAck)
}

func (p *futurePeer) write(b []byte) {
	p.t.Helper()
	_, err := p.qs.Write(b)
	require.NoError(p.t, err)
}

// readLoop reads the library's frames until the stream ends, checking
// each record and acking every batch.
func (p *futurePeer) readLoop() {
	defer close(p.readDone)
	for {
		typ, payload, err := p.fr.ReadFrame()
		if err != nil {
			p.readErr = err
			return
		}
		if err := p.handle(typ, payload); err != nil {
			p.readErr = err
			return
		}
	}
}

func (p *futurePeer) handle(typ frames.Type, payload []byte) error {
	switch typ {
	case frames.TypeBatch:
		b, _, err := frames.ParseBatch(payload, 1<<20)
		if err != nil {
			return err
		}
		if b.FirstSeq != p.received+1 {
			return fmt.Errorf("batch from %d after %d", b.FirstSeq, p.received)
		}
		if b.HasAck {
			p.in.piggyAcks++
			p.peerAcked.Store(b.Ack)
		}
		for seq, rec := range b.All() {
			if !bytes.Equal(rec, payloadFor(seq)) {
				return fmt.Errorf("record %d: wrong payload", seq)
			}
		}
		p.received = b.LastSeq()
		p.in.batches++
		p.ack(p.received)
	case frames.TypeAck:
		a, _, err := frames.ParseAck(payload)
		if err != nil {
			return err
		}
		p.in.soloAcks++
		p.peerAcked.Store(a)
	case frames.TypeError:
		p.in.errors++
		f, _, err := frames.ParseError(payload)
		if err != nil {
			return err
		}
		return &StreamError{Code: f.Code, Reason: f.Reason, Remote: true}
	case frames.TypeHello:
		return fmt.Errorf("second HELLO")
	default:
		p.in.unknown++
	}
	return nil
}

// ack acks the library's records up to seq: in the header of the next
// batch while sendAll runs and piggybacking is effective, else at once in
// an ACK frame.
func (p *futurePeer) ack(seq uint64) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.piggy && p.sending {
		p.pendAck = seq
		return
	}
	p.writeLocked(frames.AppendAck(nil, seq))
	p.out.soloAcks++
}

// writeLocked writes b from any goroutine; a failure is reported with
// t.Error, as the reader goroutine must not stop the test.
func (p *futurePeer) writeLocked(b []byte) {
	if _, err := p.qs.Write(b); err != nil {
		p.t.Errorf("future peer write: %v", err)
	}
}

// sendAll sends records 1..n in batches of 20, each after a frame of a
// reserved type, pausing 50µs between batches; then it waits until the
// library acked them all.
func (p *futurePeer) sendAll(ctx context.Context, n uint64) error {
	p.wmu.Lock()
	p.sending = true
	p.wmu.Unlock()
	for first := uint64(1); first <= n; first += 20 {
		var recs [][]byte
		for seq := first; seq <= min(first+19, n); seq++ {
			recs = append(recs, payloadFor(seq))
		}
		p.wmu.Lock()
		b := frames.AppendHeader(nil, 0x21, 6)
		b = append(b, "future"...)
		p.out.unknown++
		h := frames.BatchHeader{FirstSeq: first}
		if p.pendAck != 0 {
			h.HasAck, h.Ack = true, p.pendAck
			p.pendAck = 0
			p.out.piggyAcks++
		}
		p.writeLocked(frames.AppendBatch(b, h, recs))
		p.out.batches++
		p.wmu.Unlock()
		time.Sleep(50 * time.Microsecond)
	}
	p.wmu.Lock()
	p.sending = false
	if p.pendAck != 0 {
		p.writeLocked(frames.AppendAck(nil, p.pendAck))
		p.pendAck = 0
		p.out.soloAcks++
	}
	p.wmu.Unlock()
	for p.peerAcked.Load() < n {
		if ctx.Err() != nil {
			return fmt.Errorf("library acked %d of %d records", p.peerAcked.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// finish ends the future peer's direction and waits for the reader, which
// must have seen the library's FIN.
func (p *futurePeer) finish() {
	p.t.Helper()
	_ = p.qs.Close()
	<-p.readDone
	require.ErrorIs(p.t, p.readErr, io.EOF, "the library finished its direction cleanly")
	p.qs.CancelRead(0)
}
