package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fleetProgressOver is the inventory size above which a person at a terminal sees a progress bar: a smaller
// fleet is decided before one would be worth drawing.
const fleetProgressOver = 100

// fleetProgress draws a progress bar on stderr while a large fleet is decided (or, with --from-api,
// gathered). A nil *fleetProgress draws nothing, so callers need not ask whether there is one.
type fleetProgress struct {
	w io.Writer
	// total is set once, by setTotal, before the drawing starts: with --from-api it is known only once the
	// clusters are listed.
	total   int
	started bool
	done    atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
}

// newFleetProgress returns a progress bar to start with setTotal, or nil when nobody would see one: a
// stderr that is not a terminal (a pipe, a CI log, a test's buffer). A stderr that is not a file (the
// command run in-process) follows e.terminal; a report sent to a file still shows progress on the terminal.
func newFleetProgress(e *env) *fleetProgress {
	show := e.terminal
	if f, ok := e.stderr.(*os.File); ok {
		show = isTerminal(f)
	}
	if !show {
		return nil
	}
	return &fleetProgress{w: e.stderr}
}

// startFleetProgress returns a running progress bar for total clusters, or nil (see newFleetProgress; a
// small fleet gets none either).
func startFleetProgress(e *env, total int) *fleetProgress {
	p := newFleetProgress(e)
	p.setTotal(total)
	return p
}

// setTotal starts drawing, for total clusters, unless the fleet is too small to be worth it. Call it once,
// from the goroutine that later calls finish.
func (p *fleetProgress) setTotal(total int) {
	if p == nil || p.started || total <= fleetProgressOver {
		return
	}
	p.total, p.started, p.stop = total, true, make(chan struct{})
	p.wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				p.draw()
			case <-p.stop:
				return
			}
		}
	})
}

// add counts one cluster done; the workers call it, so it only counts.
func (p *fleetProgress) add() {
	if p != nil {
		p.done.Add(1)
	}
}

// finish draws the final state and ends the line, so the report starts on a line of its own.
func (p *fleetProgress) finish() {
	if p == nil || !p.started {
		return
	}
	close(p.stop)
	p.wg.Wait()
	p.draw()
	fmt.Fprintln(p.w)
}

const fleetProgressWidth = 30

func (p *fleetProgress) draw() {
	n := min(int(p.done.Load()), p.total)
	filled := fleetProgressWidth * n / p.total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d clusters", strings.Repeat("#", filled), strings.Repeat(".", fleetProgressWidth-filled), n, p.total)
}
