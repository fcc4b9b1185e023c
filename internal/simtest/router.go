package simtest

import (
	"hash/fnv"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/testutils/simnet"
)

// SeedEnv is the environment variable that overrides the seed of every
// simulated test.
const SeedEnv = "RECORDMUX_SEED"

// Seed returns the seed a simulated test should use: the value of
// RECORDMUX_SEED when it is set, def otherwise. It logs the seed and how
// to replay it.
func Seed(t testing.TB, def uint64) uint64 {
	t.Helper()
	seed := def
	if v := os.Getenv(SeedEnv); v != "" {
		s, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", SeedEnv, v, err)
		}
		seed = s
	}
	t.Logf("seed %d (replay: %s=%d go test -run '^%s$' <this package>)", seed, SeedEnv, seed, t.Name())
	return seed
}

// stream returns a generator for one named random stream of a seed, so
// that each direction of a link draws from its own sequence whatever the
// interleaving with the others.
func stream(seed uint64, name string) *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// Router is a simnet.Router that delivers packets like simnet's
// PerfectRouter, except that it drops
//
//   - each packet with the loss probability of its direction, drawn from a
//     generator of its own per destination address;
//   - every packet during a blackout ([Router.Blackout]);
//   - every packet after [Router.Cut], until [Router.Restore];
//   - every packet for which the optional DropIf returns true.
//
// Set DropIf before the network starts; everything else may change at any
// time.
type Router struct {
	simnet.PerfectRouter

	// DropIf, if set, is asked about every packet not already dropped.
	DropIf func(p simnet.Packet) bool

	seed uint64

	mu       sync.Mutex
	loss     float64
	lossTo   map[string]float64 // per-destination override
	dirs     map[string]*direction
	blackout time.Time // drop everything until then
	cut      bool
}

// direction is the state of the packets towards one address.
type direction struct {
	rng              *rand.Rand
	sent, lost, dark uint64
	lastForwarded    time.Time
}

// NewRouter returns a Router that loses each packet with probability loss
// (0 to 1) in every direction, drawing from generators seeded by seed.
func NewRouter(seed uint64, loss float64) *Router {
	return &Router{seed: seed, loss: loss, lossTo: map[string]float64{}, dirs: map[string]*direction{}}
}

// SetLoss changes the loss probability of every direction.
func (r *Router) SetLoss(loss float64) {
	r.mu.Lock()
	r.loss = loss
	clear(r.lossTo)
	r.mu.Unlock()
}

// SetLossTo changes the loss probability of packets sent to addr only.
func (r *Router) SetLossTo(addr net.Addr, loss float64) {
	r.mu.Lock()
	r.lossTo[addr.String()] = loss
	r.mu.Unlock()
}

// Blackout drops every packet sent from now until now+d. It uses the
// clock of the caller, which is virtual inside a synctest bubble.
func (r *Router) Blackout(d time.Duration) {
	r.mu.Lock()
	r.blackout = time.Now().Add(d)
	r.mu.Unlock()
}

// Cut drops every packet from now on, as if the peer had vanished.
func (r *Router) Cut() {
	r.mu.Lock()
	r.cut = true
	r.mu.Unlock()
}

// Restore ends a Cut and a blackout.
func (r *Router) Restore() {
	r.mu.Lock()
	r.cut = false
	r.blackout = time.Time{}
	r.mu.Unlock()
}

// SendPacket implements simnet.Router.
func (r *Router) SendPacket(p simnet.Packet) error {
	to := p.To.String()
	r.mu.Lock()
	d := r.dirs[to]
	if d == nil {
		d = &direction{rng: stream(r.seed, "loss "+to)}
		r.dirs[to] = d
	}
	d.sent++
	loss, ok := r.lossTo[to]
	if !ok {
		loss = r.loss
	}
	// Draw for every packet, so the pattern of a direction depends only
	// on the packet's index, not on when blackouts happened.
	lost := d.rng.Float64() < loss
	dark := r.cut || time.Now().Before(r.blackout)
	switch {
	case dark:
		d.dark++
	case lost:
		d.lost++
	}
	r.mu.Unlock()
	if dark || lost || (r.DropIf != nil && r.DropIf(p)) {
		return nil
	}
	r.mu.Lock()
	d.lastForwarded = time.Now()
	r.mu.Unlock()
	return r.PerfectRouter.SendPacket(p)
}

// Stats are a Router's counters for the packets towards one address.
type Stats struct {
	Sent uint64 // packets handed to the router
	Lost uint64 // dropped at random
	Dark uint64 // dropped by a blackout or a cut
	// LastForwarded is when the last packet not dropped left the router;
	// it arrives one link latency later.
	LastForwarded time.Time
}

// StatsTo returns the counters of the packets sent to addr.
func (r *Router) StatsTo(addr net.Addr) Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dirs[addr.String()]
	if d == nil {
		return Stats{}
	}
	return Stats{Sent: d.sent, Lost: d.lost, Dark: d.dark, LastForwarded: d.lastForwarded}
}

var _ simnet.Router = (*Router)(nil)

// Jitter returns a simnet LatencyFunc giving each packet a delay drawn
// uniformly from [base-spread, base+spread], from a generator seeded by
// seed and name (use one name per direction). Packets may so overtake each
// other, as on a real path with several routes.
func Jitter(seed uint64, name string, base, spread time.Duration) func(simnet.Packet) time.Duration {
	var mu sync.Mutex
	rng := stream(seed, "jitter "+name)
	return func(simnet.Packet) time.Duration {
		if spread <= 0 {
			return base
		}
		mu.Lock()
		d := base - spread + time.Duration(rng.Int64N(int64(2*spread)+1))
		mu.Unlock()
		return max(d, 0)
	}
}
