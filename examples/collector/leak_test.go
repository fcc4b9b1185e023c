package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if builtExamples.dir != "" {
			_ = os.RemoveAll(builtExamples.dir)
		}
	}))
}
