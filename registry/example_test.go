package registry_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/recordmux/recordmux/registry"
)

func Example() {
	type stream struct{ name string }
	streams := registry.New[uint64, *stream](cmp.Compare[uint64], &registry.Options[uint64, *stream]{Shards: 1})

	conn, closeConn := context.WithCancelCause(context.Background())
	b, _ := streams.Register(conn, 4, &stream{name: "b"})
	a, _ := streams.Register(conn, 0, &stream{name: "a"})
	_, _ = streams.Register(conn, 8, &stream{name: "c"})

	_, err := streams.Register(conn, 4, &stream{name: "dup"})
	fmt.Println("duplicate:", errors.Is(err, registry.ErrDuplicateKey), err)

	for _, s := range streams.Snapshot() {
		fmt.Println("live:", s.name)
	}

	fmt.Println("removed:", b.Remove(), b.Cause())

	closeConn(errors.New("connection closed"))
	<-a.Done()
	fmt.Println("a:", a.Cause())

	_, err = streams.Register(conn, 12, &stream{name: "late"})
	fmt.Println("late:", errors.Is(err, registry.ErrContextDone), err)
	// Output:
	// duplicate: true registry: duplicate key 4
	// live: a
	// live: b
	// live: c
	// removed: true registry: entry removed
	// a: connection closed
	// late: true registry: context done (key 12): connection closed
}
