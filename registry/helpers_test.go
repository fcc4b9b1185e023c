package registry_test

import (
	"cmp"
	"sync"

	"github.com/recordmux/recordmux/registry"
)

// detachCall is one recorded OnDetach call.
type detachCall struct {
	key   int
	val   string
	cause error
}

// detachLog records OnDetach calls.
type detachLog struct {
	mu    sync.Mutex
	calls []detachCall // owner: mu
}

func (l *detachLog) hook(key int, val string, cause error) {
	l.mu.Lock()
	l.calls = append(l.calls, detachCall{key: key, val: val, cause: cause})
	l.mu.Unlock()
}

// forKey returns the calls recorded for key, in call order.
func (l *detachLog) forKey(key int) []detachCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []detachCall
	for _, c := range l.calls {
		if c.key == key {
			out = append(out, c)
		}
	}
	return out
}

func (l *detachLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// newLogged returns a registry of int keys and string values whose
// OnDetach hook records into the returned log.
func newLogged(shards int) (*registry.Registry[int, string], *detachLog) {
	log := &detachLog{}
	r := registry.New(cmp.Compare[int], &registry.Options[int, string]{
		OnDetach: log.hook,
		Shards:   shards,
	})
	return r, log
}

// isClosed reports whether ch is closed, without blocking.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
