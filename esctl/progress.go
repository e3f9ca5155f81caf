package esctl

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress draws a one-line progress bar on stderr, only when stderr is a
// terminal: scripts and logs stay quiet.
type progress struct {
	w     io.Writer
	on    bool
	label string
	total int64
	done  int64
	last  time.Time
	env   *Env
}

func (env *Env) progress(label string, total int64) *progress {
	return &progress{w: env.Stderr, on: isTerminal(env.Stderr), label: label, total: total, env: env}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) add(n int64) {
	p.done += n
	p.env.observeProgress(p.label, n)
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progress) draw() {
	if p.total > 0 {
		const width = 30
		frac := float64(p.done) / float64(p.total)
		if frac > 1 {
			frac = 1
		}
		fill := int(frac * width)
		bar := make([]byte, width)
		for i := range bar {
			if i < fill {
				bar[i] = '#'
			} else {
				bar[i] = '.'
			}
		}
		fmt.Fprintf(p.w, "\r%s [%s] %d/%d (%3.0f%%)", p.label, bar, p.done, p.total, frac*100)
		return
	}
	fmt.Fprintf(p.w, "\r%s %d", p.label, p.done)
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if !p.on {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}
