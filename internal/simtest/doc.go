// Package simtest is test support for recordmux's reliability tests: a
// [Router] for quic-go's testutils/simnet that loses packets at random,
// blacks a link out for a while or cuts it for good; [Bottleneck], a
// router of limited bandwidth with a drop-tail queue, as tc tbf builds on
// a real link; [Jitter], a seeded
// latency function that makes one-way delays vary (and so reorders
// packets); a [Checker] that verifies what a record stream delivered
// against what was sent; [Seed], which picks and logs the seed of a
// simulated test so that a failure can be replayed; and the builders every
// simulated test uses to join quic-go endpoints over simnet: [Net] (a
// network whose endpoints are closed with the test), [Transport], [Listen]
// and [Connect].
//
// # Usage
//
//	seed := simtest.Seed(t, 1)
//	r := simtest.NewRouter(seed, 0.05) // 5% loss in each direction
//	settings := simnet.NodeBiDiLinkSettings{LatencyFunc: simtest.Jitter(seed, "client", 20*time.Millisecond, 15*time.Millisecond)}
//	n := &simnet.Simnet{Router: r}
//	...
//	c := simtest.NewChecker(dataID)
//	c.Sending(seq); tx.Send(ctx, simtest.Payload(dataID, seq, 100)); c.Sent(seq)
//	// receiver: c.Delivered(rec.Seq, rec.Data); c.Applied(rec.Seq)
//	// sender:   c.Acked(snapshot.Out.AckedSeq); c.BarrierOK(target)
//	require.NoError(t, c.Verify(true))
//
// Joining two endpoints, inside a synctest bubble:
//
//	n := simtest.NewNet(t, router, simtest.Latency(10*time.Millisecond))
//	cconn, sconn := n.Endpoint(simtest.ClientAddr), n.Endpoint(simtest.ServerAddr)
//	n.Start()
//	client, server := simtest.Connect(t, simtest.Endpoints{Client: cconn, Server: sconn, ...})
//
// # Replaying
//
// Every random decision (which packet is lost, how long a packet takes)
// comes from a generator seeded by the test's seed, one generator per
// direction of a link. The environment variable RECORDMUX_SEED overrides
// the default seed of every test that calls [Seed]. Goroutine scheduling
// inside a synctest bubble is not itself deterministic, so a replay sees
// the same loss and delay pattern per packet index of each direction,
// which reproduces most failures but not necessarily every interleaving.
//
// # Concurrency
//
// Router, Bottleneck, the function Jitter returns and Checker are safe
// for concurrent use.
package simtest
