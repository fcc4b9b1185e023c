//go:build race

package compress

// raceEnabled is true in builds with the race detector, whose sync.Pool
// drops a share of the items put back on purpose: the zstd decoder's
// pooled table decoders are then rebuilt now and then, which allocates.
const raceEnabled = true
