package suite

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recordmux/recordmux/bench/internal/pace"
	"github.com/recordmux/recordmux/bench/internal/transport"
)

// Consumer says how the server end of a run applies records. The zero
// value applies as fast as it can, doing nothing with the records.
type Consumer struct {
	// SlowRate > 0 makes each stream apply at most SlowRate records/s
	// for SlowFor from its first record, then at full speed (backlog).
	SlowRate float64       `json:"slow_rate,omitempty"`
	SlowFor  time.Duration `json:"slow_for,omitempty"`
}

// SinkReport is what the server end of a run saw.
type SinkReport struct {
	// Streams accepted and records applied.
	Streams int    `json:"streams"`
	Applied uint64 `json:"applied"`
	// PeakBacklogRecords and PeakBacklogBytes are the largest apply
	// backlog of any stream, for transports that keep one (recordmux).
	PeakBacklogRecords uint64 `json:"peak_backlog_records,omitempty"`
	PeakBacklogBytes   uint64 `json:"peak_backlog_bytes,omitempty"`
	HasBacklog         bool   `json:"has_backlog,omitempty"`
	// CPU is the server process's CPU time while the sink ran, and
	// PeakHeapInUse its largest heap in use (sampled every 10 ms); both
	// are filled by a two-host server only.
	CPU           time.Duration `json:"cpu,omitempty"`
	Wall          time.Duration `json:"wall,omitempty"`
	PeakHeapInUse uint64        `json:"peak_heap_inuse,omitempty"`
}

// Sink is the server end of one run: it accepts the streams of one
// transport and applies their records as its Consumer says, one goroutine
// per stream.
type Sink struct {
	ln       transport.Listener
	consumer Consumer
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	accepted atomic.Int64
	applied  atomic.Uint64

	// backlog holds the largest backlog peaks of the streams that ended;
	// has says whether the transport keeps a backlog. Owner: mu.
	mu      sync.Mutex
	backlog transport.Backlog
	has     bool
}

// StartSink listens for transport tr at addr of n and starts accepting.
func StartSink(ctx context.Context, tr transport.Transport, n transport.Network, addr string, id *transport.Identity, c Consumer) (*Sink, error) {
	ln, err := tr.Listen(ctx, n, addr, id)
	if err != nil {
		return nil, err
	}
	s := &Sink{ln: ln, consumer: c}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Go(s.acceptLoop)
	return s, nil
}

// Addr is the address to dial.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Accepted returns the number of streams accepted so far.
func (s *Sink) Accepted() int { return int(s.accepted.Load()) }

func (s *Sink) acceptLoop() {
	for {
		r, err := s.ln.Accept(s.ctx)
		if err != nil {
			return
		}
		s.accepted.Add(1)
		s.wg.Go(func() { s.apply(r) })
	}
}

// apply runs one stream's receive loop until the stream ends. Errors
// are those of a stream cut by the end of its connection: the client
// learns of real failures through its acks.
func (s *Sink) apply(r transport.Receiver) {
	fn := func([]byte) { s.applied.Add(1) }
	if s.consumer.SlowRate > 0 {
		fn = s.throttled()
	}
	_ = transport.Apply(s.ctx, r, fn)
	s.noteBacklog(r)
}

// throttled returns an apply function that waits for the slow pace while
// the consumer is slow. The pacer sleeps without spinning (a millisecond
// late at times), releasing records in bursts that keep the average.
func (s *Sink) throttled() func([]byte) {
	var p *pace.Pacer
	var until time.Time
	credits := 0
	return func([]byte) {
		if p == nil {
			now := time.Now()
			p, until = pace.New(now, s.consumer.SlowRate, &pace.Options{SpinWindow: -1}), now.Add(s.consumer.SlowFor)
		}
		if time.Now().Before(until) {
			if credits == 0 {
				credits, _ = p.Wait()
			}
			credits--
		}
		s.applied.Add(1)
	}
}

// noteBacklog keeps the peaks of an ended stream's apply backlog.
func (s *Sink) noteBacklog(r transport.Receiver) {
	b, ok := r.(transport.Backlogger)
	if !ok {
		return
	}
	bl := b.Backlog()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.has = true
	s.backlog.PeakRecords = max(s.backlog.PeakRecords, bl.PeakRecords)
	s.backlog.PeakBytes = max(s.backlog.PeakBytes, bl.PeakBytes)
}

// Stop closes the listener, which ends every connection and stream, waits
// for the receive loops and reports.
func (s *Sink) Stop() SinkReport {
	s.cancel()
	_ = s.ln.Close()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return SinkReport{
		Streams:            s.Accepted(),
		Applied:            s.applied.Load(),
		PeakBacklogRecords: s.backlog.PeakRecords,
		PeakBacklogBytes:   s.backlog.PeakBytes,
		HasBacklog:         s.has,
	}
}
