// Package flow sizes a record stream's windows from what the stream
// measures, so that a busy stream keeps enough records in flight to use
// its path and its consumer, and not more.
//
// [Window] is the sender's in-flight window. It learns from every
// applied-ack: the time from the creation of the batch that held the
// acked record to the ack (the delay, which includes queueing anywhere:
// in the sender's own pending batches, in QUIC, on the network and in the
// receiver's apply backlog) and the delivery rate (records and bytes
// acknowledged per second, measured as BBR does). It keeps the windowed
// minimum of the delay (refreshed by a short probe when it gets old, as
// BBR's ProbeRTT does) and the windowed maximum of the rate, and once per
// round (an ack that covers what was sent when the round began) moves the
// window so that the queueing delay stays near a target. The queueing
// delay is the round's least net delay above the path's: a net delay is
// a delay sample less the acked batch's own transmission (its records
// and bytes up to the acked one at the delivery rate, at most half the
// sample), which it takes through a bottleneck with no queue, or at a
// consumer that is the bottleneck. A batch that left while others were
// in flight may lose more than the target (on a slow link one batch
// takes longer than the target to cross it) but not go below the
// path's minimum delay; one that left alone, whose rate was measured
// with its own delay, loses at most the target. Batches are what acks
// free, so they grow with the window, and without that deduction a
// window at the pipe's size read its own bursts as a standing queue: it
// held at a small window with a millisecond of "queue", or shrank below
// the pipe a percent a round against the spread of its bursts. (Startup
// reads the delays as they are: its rate is what its window lets
// through, which would make the deduction far too large.) The window
// shrinks in proportion when the queueing delay exceeds the target, grows
// while the sender is window-limited and the queueing delay is small, and
// never exceeds twice the measured rate times the target round trip, so
// that queueing the delay signal cannot see stays bounded too. It starts
// by doubling once per round (startup) until a queue forms; a queue while
// the delivery rate still grows by a quarter a round is the path ramping
// up (QUIC's own slow start on a long round trip) and does not end
// startup, since a window sized from that rate would be far too small a
// round later. But a queue above the target that persists for a round
// trip ends startup at once (after three round trips in steady state):
// a round's delays show the window of the round before, and each round
// of waiting doubles the overshoot; leaving, the window drops to what the
// measured rate needs at the target delay. The ideas
// come from TCP BBR (delivery rate × minimum round trip, periodic probing
// of the minimum), TCP Vegas and Copa (a delay target) and CoDel (a
// standing queue is the minimum over an interval).
//
// [Backlog] is the receiver's announced window. It watches how long
// received batches wait before the application starts on them (their
// sojourn) and how fast
// the application applies; when the minimum sojourn over an interval
// exceeds twice the target, the application is the bottleneck and the
// window it announces shrinks to twice the apply rate times the round trip
// plus that delay, so a slow consumer makes its producer block in Send instead
// of queueing seconds of records; otherwise it announces its maximum.
//
// # Concurrency
//
// Neither type is safe for concurrent use: each belongs to one direction
// of one stream, whose lock guards it. Neither reads the clock nor
// allocates after its first growth; callers pass the time.
package flow
