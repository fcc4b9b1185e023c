package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The binaries a test starts are built with the race detector when the
// tests run with it (see buildExamples). quic-go v0.65 has one known data
// race that an edge-agent reconnecting in 0-RTT can hit (quic-go #4303,
// README Limitations): the stream opened in 0-RTT reads the server's
// remembered transport parameters (Conn.newFlowController) while the
// handshake replaces them (Conn.handleTransportParameters). A race-built
// process that reports it exits with status 66, which would fail a test
// for a race recordmux can neither cause nor order.
//
// So the started processes write their race reports to files instead
// (GORACE log_path, exit code unchanged), and the test reads them when the
// processes are gone: a report of exactly that race is logged, and any
// other report fails the test. A race in recordmux's code or in any other
// part of quic-go still fails it.

// raceLog collects the race reports of the processes a test starts.
type raceLog struct {
	dir string // log_path's directory; empty without the race detector
}

// newRaceLog returns the race log of a test, empty when the tests do not
// run with the race detector.
func newRaceLog(t *testing.T) *raceLog {
	if !raceBuild {
		return &raceLog{}
	}
	return &raceLog{dir: t.TempDir()}
}

// attach makes cmd write its race reports to the log, under name, and
// exit with its own status whatever they say.
func (l *raceLog) attach(cmd *exec.Cmd, name string) {
	if l.dir == "" {
		return
	}
	cmd.Env = append(os.Environ(), "GORACE=exitcode=0 log_path="+filepath.Join(l.dir, name))
}

// knownQUICRace reports whether a race report is quic-go #4303: one side
// of it in Conn.handleTransportParameters, the other in
// Conn.newFlowController.
func knownQUICRace(report string) bool {
	return strings.Contains(report, "quic-go.(*Conn).handleTransportParameters(") &&
		strings.Contains(report, "quic-go.(*Conn).newFlowController(")
}

// check fails the test for every report in the log other than the known
// quic-go race, and logs how many of those there were. Call it once the
// processes have exited.
func (l *raceLog) check(t *testing.T) {
	t.Helper()
	if l.dir == "" {
		return
	}
	files, err := os.ReadDir(l.dir)
	if err != nil {
		t.Fatal(err)
	}
	known := 0
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(l.dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, report := range splitRaceReports(string(data)) {
			if knownQUICRace(report) {
				known++
				continue
			}
			t.Errorf("%s reported a data race:\n%s", f.Name(), report)
		}
	}
	if known > 0 {
		t.Logf("quic-go's known 0-RTT transport-parameter race (quic-go #4303) reported %d time(s); see README Limitations", known)
	}
}

// splitRaceReports splits a race log into its reports, each beginning
// with the detector's "WARNING: DATA RACE" line. The summary the runtime
// prints at exit ("Found N data race(s)") is not a report.
func splitRaceReports(log string) []string {
	const marker = "WARNING: DATA RACE"
	var reports []string
	for {
		i := strings.Index(log, marker)
		if i < 0 {
			return reports
		}
		log = log[i:]
		j := strings.Index(log[len(marker):], marker)
		if j < 0 {
			return append(reports, log)
		}
		reports = append(reports, log[:len(marker)+j])
		log = log[len(marker)+j:]
	}
}

// TestRaceReportFilter: a race log splits into its reports, and only the
// quic-go transport-parameter race is recognised as the known one; a
// report with only one of its two sides, or any other, is not.
func TestRaceReportFilter(t *testing.T) {
	const known = `==================
WARNING: DATA RACE
Write at 0x00c0000050c0 by goroutine 37:
  github.com/quic-go/quic-go.(*Conn).handleTransportParameters()
      /root/go/pkg/mod/github.com/quic-go/quic-go@v0.65.0/connection.go:2460 +0x626

Previous read at 0x00c0000050c0 by goroutine 23:
  github.com/quic-go/quic-go.(*Conn).newFlowController()
      /root/go/pkg/mod/github.com/quic-go/quic-go@v0.65.0/connection.go:3028 +0x4d
==================
`
	const other = `==================
WARNING: DATA RACE
Read at 0x00c000123456 by goroutine 12:
  github.com/recordmux/recordmux/quicrecord.(*ResumableStream).connect()
      /work/quicrecord/resumable.go:502 +0x3c9

Previous write at 0x00c000123456 by goroutine 9:
  github.com/quic-go/quic-go.(*Conn).handleTransportParameters()
      /root/go/pkg/mod/github.com/quic-go/quic-go@v0.65.0/connection.go:2460 +0x626
==================
`
	for _, tc := range []struct {
		name  string
		log   string
		known []bool // per report
	}{
		{"empty", "", nil},
		{"known only", known, []bool{true}},
		{"other only", other, []bool{false}},
		{"both, then the exit summary", known + other + "Found 2 data race(s)\n", []bool{true, false}},
		{"other first", other + known, []bool{false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reports := splitRaceReports(tc.log)
			var got []bool
			for _, r := range reports {
				require.True(t, strings.HasPrefix(r, "WARNING: DATA RACE"))
				got = append(got, knownQUICRace(r))
			}
			require.Equal(t, tc.known, got)
		})
	}
}
