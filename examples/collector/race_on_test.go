//go:build race

package main

// raceBuild is true when the tests run with the race detector: the
// binaries a test builds then get it too (and reuse the cached race build
// of their dependencies).
const raceBuild = true
