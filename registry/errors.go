package registry

import "errors"

// ErrDuplicateKey is matched (with [errors.Is]) by the error that
// [Registry.Register] returns when a live entry already holds the key.
var ErrDuplicateKey = errors.New("registry: duplicate key")

// ErrContextDone is matched (with [errors.Is]) by the error that
// [Registry.Register] returns when its context has already ended. That
// error also wraps [context.Cause] of the context, so
// errors.Is(err, context.DeadlineExceeded) and the like work too.
var ErrContextDone = errors.New("registry: context done")

// ErrRemoved is the [Entry.Cause] of an entry that left the registry
// through [Entry.Remove], and the cause passed to [Options.OnDetach] for it.
var ErrRemoved = errors.New("registry: entry removed")
