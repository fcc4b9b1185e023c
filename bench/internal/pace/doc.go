// Package pace releases events at a fixed rate without the oversleep of
// [time.Sleep].
//
// On a loaded virtual machine time.Sleep wakes about a millisecond late,
// which would turn a paced load of 10,000 events per second into bursts of
// ten. A [Pacer] schedules events by absolute time (event i is due at
// start + i/rate), sleeps with time.Sleep only until shortly before a
// deadline (the spin window, 1 ms) and then waits finely: by default with
// the nanosleep system call ([NanoSleep], about 50 µs late on Linux), or,
// with [Options.Spin], by spinning on [runtime.Gosched] until the deadline
// passes. [Pacer.Wait] returns how many events are due, so a caller that
// fell behind can send all of them at once (catch-up) or send one and
// drop the rest (rate cap); either way the schedule never drifts.
//
// # Usage
//
//	p := pace.New(time.Now(), 10_000, nil)
//	for !stopped() {
//		n, first := p.Wait() // n > 1 only if the caller fell behind
//		for range n {
//			send(first) // count latency from the deadline, not from now
//		}
//	}
//
// # Cost
//
// Spinning is the most precise wait but keeps one CPU busy: at rates
// above 1000 events per second (intervals shorter than the 1 ms window)
// all the time. On a machine shared with other work that core is taken
// from the code being measured, and while a processor spins on
// runtime.Gosched the Go scheduler, always finding it runnable, does not
// poll the network from it: on two cores we measured paced latencies ten
// times worse with spinning than with nanosleep. Hence nanosleep is the
// default and spinning is opt-in.
//
// # Concurrency
//
// A Pacer is used by one goroutine.
//
// # Testing
//
// [Options] replace the clock, the sleep and the yield, so the pacer can be
// tested deterministically inside a testing/synctest bubble, where a
// goroutine spinning on runtime.Gosched would stop virtual time.
package pace
