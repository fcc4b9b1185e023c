package simtest

import (
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go/testutils/simnet"
)

// Bottleneck is a simnet.Router that sends every packet through a link of
// limited bandwidth before handing it to the next router: each direction
// (packets towards one address) has a transmitter that serialises one
// packet at a time at the link rate, and a drop-tail queue in front of it
// that holds at most a queue delay's worth of packets, as a router with a
// token-bucket filter (tc tbf) would. Packets that find the queue full are
// dropped. Propagation delay stays with the simnet link settings.
//
// All times are read from the caller's clock, so inside a synctest bubble
// the link runs in virtual time.
type Bottleneck struct {
	next simnet.Router

	mu       sync.Mutex
	rate     float64       // bytes per second
	maxQueue time.Duration // longest wait a packet may find before its transmission
	dirs     map[string]*linkDir
}

// linkDir is one direction's transmitter.
type linkDir struct {
	busyUntil time.Time // when the transmitter finishes the last queued packet
	sent      uint64
	dropped   uint64
	bytes     uint64
	maxWait   time.Duration
}

// NewBottleneck returns a Bottleneck forwarding to next (for example a
// *Router that adds loss, or simnet's PerfectRouter) at bitsPerSecond in
// each direction, with a queue of at most maxQueue of transmission time.
func NewBottleneck(next simnet.Router, bitsPerSecond float64, maxQueue time.Duration) *Bottleneck {
	return &Bottleneck{next: next, rate: bitsPerSecond / 8, maxQueue: maxQueue, dirs: map[string]*linkDir{}}
}

// SetRate changes the link rate of both directions from now on; packets
// already queued keep their departure times.
func (b *Bottleneck) SetRate(bitsPerSecond float64) {
	b.mu.Lock()
	b.rate = bitsPerSecond / 8
	b.mu.Unlock()
}

// SendPacket implements simnet.Router: it queues p for transmission and
// hands it to the next router when its last byte has left the link.
func (b *Bottleneck) SendPacket(p simnet.Packet) error {
	now := time.Now()
	to := p.To.String()
	b.mu.Lock()
	d := b.dirs[to]
	if d == nil {
		d = &linkDir{}
		b.dirs[to] = d
	}
	start := d.busyUntil
	if start.Before(now) {
		start = now
	}
	wait := start.Sub(now)
	if wait > b.maxQueue {
		d.dropped++
		b.mu.Unlock()
		return nil
	}
	tx := time.Duration(float64(len(p.Data)) / b.rate * float64(time.Second))
	d.busyUntil = start.Add(max(tx, 1))
	d.sent++
	d.bytes += uint64(len(p.Data))
	d.maxWait = max(d.maxWait, wait)
	departure := d.busyUntil.Sub(now)
	b.mu.Unlock()
	time.AfterFunc(departure, func() { _ = b.next.SendPacket(p) })
	return nil
}

// AddNode implements simnet.Router.
func (b *Bottleneck) AddNode(addr net.Addr, conn simnet.PacketReceiver) { b.next.AddNode(addr, conn) }

// RemoveNode implements simnet.Router, when the next router does.
func (b *Bottleneck) RemoveNode(addr net.Addr) {
	if r, ok := b.next.(interface{ RemoveNode(net.Addr) }); ok {
		r.RemoveNode(addr)
	}
}

// LinkStats are a Bottleneck's counters for the packets towards one
// address.
type LinkStats struct {
	Sent    uint64        // packets transmitted (or queued for it)
	Dropped uint64        // packets dropped because the queue was full
	Bytes   uint64        // bytes of the packets sent
	MaxWait time.Duration // longest time a packet waited in the queue
}

// StatsTo returns the counters of the packets sent to addr.
func (b *Bottleneck) StatsTo(addr net.Addr) LinkStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.dirs[addr.String()]
	if d == nil {
		return LinkStats{}
	}
	return LinkStats{Sent: d.sent, Dropped: d.dropped, Bytes: d.bytes, MaxWait: d.maxWait}
}

var _ simnet.Router = (*Bottleneck)(nil)
