package suite

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Machine describes where the suite ran.
type Machine struct {
	Time       time.Time `json:"time"`
	GoVersion  string    `json:"go_version"`
	OS         string    `json:"os"`
	Arch       string    `json:"arch"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	NumCPU     int       `json:"num_cpu"`
	CPUModel   string    `json:"cpu_model"`
	QUICGo     string    `json:"quic_go"`
	// LoadStart and LoadEnd are the 1, 5 and 15 minute load averages
	// (empty where unknown): other work on the machine skews every figure.
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end,omitempty"`
}

// DescribeMachine returns the machine description, with the load average
// now as LoadStart.
func DescribeMachine() Machine {
	return Machine{
		Time:       time.Now().UTC().Truncate(time.Second),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		CPUModel:   cpuModel(),
		QUICGo:     moduleVersion("github.com/quic-go/quic-go"),
		LoadStart:  LoadAverage(),
	}
}

// String is a two-line header for the report.
func (m Machine) String() string {
	s := fmt.Sprintf("machine: %s/%s, %s, GOMAXPROCS=%d, NumCPU=%d, CPU %q, quic-go %s\n",
		m.OS, m.Arch, m.GoVersion, m.GOMAXPROCS, m.NumCPU, m.CPUModel, m.QUICGo)
	s += fmt.Sprintf("load average (1/5/15 min): %s at start", orNA(m.LoadStart))
	if m.LoadEnd != "" {
		s += fmt.Sprintf(", %s at end", m.LoadEnd)
	}
	return s + "\n"
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

// cpuModel reads the CPU model name on Linux; elsewhere it is empty.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// LoadAverage returns the 1, 5 and 15 minute load averages on Linux, and
// "" elsewhere.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// moduleVersion returns the version of a dependency of the running binary.
func moduleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}
