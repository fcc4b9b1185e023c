//go:build !race

package compress

// raceEnabled is true in builds with the race detector (race_on_test.go).
const raceEnabled = false
