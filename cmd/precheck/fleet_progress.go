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

// fleetProgress draws a progress bar on stderr while a large fleet is decided. A nil *fleetProgress draws
// nothing, so callers need not ask whether there is one.
type fleetProgress struct {
	w     io.Writer
	total int
	done  atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startFleetProgress returns a running progress bar, or nil when nobody would see one: a small inventory,
// or a stderr that is not a terminal (a pipe, a CI log, a test's buffer). A stderr that is not a file (the
// command run in-process) follows e.terminal; a report sent to a file still shows progress on the terminal.
func startFleetProgress(e *env, total int) *fleetProgress {
	show := e.terminal
	if f, ok := e.stderr.(*os.File); ok {
		show = isTerminal(f)
	}
	if !show || total <= fleetProgressOver {
		return nil
	}
	p := &fleetProgress{w: e.stderr, total: total, stop: make(chan struct{})}
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
	return p
}

// add counts one cluster decided; the workers call it, so it only counts.
func (p *fleetProgress) add() {
	if p != nil {
		p.done.Add(1)
	}
}

// finish draws the final state and ends the line, so the report starts on a line of its own.
func (p *fleetProgress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	p.draw()
	fmt.Fprintln(p.w)
}

const fleetProgressWidth = 30

func (p *fleetProgress) draw() {
	n := int(p.done.Load())
	filled := fleetProgressWidth * n / p.total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d clusters", strings.Repeat("#", filled), strings.Repeat(".", fleetProgressWidth-filled), n, p.total)
}
