package suite

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress shows how far a run is. The suite calls Begin once with the
// number of repetitions, Start and Done around each, and End.
type Progress interface {
	Begin(total int)
	// Start names the repetition starting: case, cell, transport and
	// repetition.
	Start(label string)
	Done()
	End()
}

// NewProgress returns a progress bar (with the running repetition and an
// ETA) on w when w is a terminal, and a Progress that writes nothing
// otherwise (a file, a pipe, CI logs).
func NewProgress(w io.Writer) Progress {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nopProgress{}
	}
	return &barProgress{w: w}
}

// nopProgress shows nothing.
type nopProgress struct{}

func (nopProgress) Begin(int)    {}
func (nopProgress) Start(string) {}
func (nopProgress) Done()        {}
func (nopProgress) End()         {}

// barProgress draws a github.com/schollz/progressbar bar.
type barProgress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (p *barProgress) Begin(total int) {
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetWidth(24),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func (p *barProgress) Start(label string) { p.bar.Describe(label) }

func (p *barProgress) Done() { _ = p.bar.Add(1) }

func (p *barProgress) End() { _ = p.bar.Finish() }
