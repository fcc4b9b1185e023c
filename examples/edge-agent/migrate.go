package main

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/recordmux/recordmux/quicrecord"
)

// migrateTimeout bounds one migration's probe of the new path.
const migrateTimeout = 5 * time.Second

// migrations moves the stream's connection to a new socket on every
// request from migrate (SIGHUP) and, with -migrate-after, once after that
// delay. It returns a function that stops it and waits for it.
func migrations(ctx context.Context, o options, rs *quicrecord.ResumableStream, migrate <-chan struct{}, logf func(string, ...any)) func() {
	ctx, cancel := context.WithCancel(ctx)
	var once <-chan time.Time
	var timer *time.Timer
	if o.migrateAfter > 0 {
		timer = time.NewTimer(o.migrateAfter)
		once = timer.C
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if timer != nil {
			defer timer.Stop()
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-migrate:
			case <-once:
				once = nil
			}
			migrateOnce(ctx, o, rs, logf)
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// migrateOnce opens a socket at -migrate-addr and moves the connection
// to it; a failure leaves the connection where it was.
func migrateOnce(ctx context.Context, o options, rs *quicrecord.ResumableStream, logf func(string, ...any)) {
	addr := o.migrateAddr
	if addr == "" {
		addr = ":0"
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		logf("migration: cannot open a socket at %s: %v", addr, err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	if err := rs.Migrate(ctx, pc); err != nil {
		logf("migration to %s failed, staying on the current path: %v", pc.LocalAddr(), err)
		return
	}
	logf("connection moved to %s", pc.LocalAddr())
}
