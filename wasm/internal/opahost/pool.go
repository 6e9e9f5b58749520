package opahost

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// State is what a Policy reports about the code it runs.
type State struct {
	// Interruptible says evaluations run the code with termination checks:
	// configured so (Config.Interruptible), or switched by the watchdog.
	Interruptible bool
	// Degradation is the watchdog's switch; nil while it has not switched.
	Degradation *Degradation
	// Runaways counts the evaluations the watchdog took out of the pool.
	Runaways int64
	// Abandoned counts the evaluations whose callers gave up (their context
	// ended) while the fast code ran.
	Abandoned int64
	// RunawayLimit is the watchdog's limit.
	RunawayLimit time.Duration
}

// Degradation is the watchdog's switch of a Policy to the interruptible
// code.
type Degradation struct {
	At         time.Time
	Entrypoint string        // the entrypoint of the runaway evaluation
	Limit      time.Duration // the limit it ran past
	// Err is set when the interruptible code could not be compiled; the
	// Policy then keeps running the fast code.
	Err error
}

func (d *Degradation) String() string {
	s := fmt.Sprintf("an evaluation of %q ran past the runaway limit of %v: the policy runs interruptible code from now on", d.Entrypoint, d.Limit)
	if d.Err != nil {
		s += fmt.Sprintf(" (but that code could not be compiled, so the fast code stays: %v)", d.Err)
	}
	return s
}

// variant is the compilation the next evaluation runs: fast, unless the
// Policy is interruptible; then guarded, once it is compiled (waiting for
// the compilation, within ctx, after a switch).
func (p *Policy) variant(ctx context.Context) (*variant, error) {
	if !p.interruptible.Load() {
		return p.fast, nil
	}
	select {
	case <-p.guardedReady:
	default:
		select {
		case <-p.guardedReady:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the interruptible code to compile: %w", ctx.Err())
		}
	}
	p.mu.Lock()
	v := p.guarded
	p.mu.Unlock()
	if v == nil { // the switch's compilation failed
		return p.fast, nil
	}
	return v, nil
}

// acquire returns an instance of v for the caller's exclusive use: an idle
// one, else a new one. When the Policy already has maxInst instances, an
// idle instance of the other variant makes room (there always is one: at
// most maxInst-1 other evaluations hold an instance of the pool).
func (p *Policy) acquire(ctx context.Context, v *variant) (*instance, error) {
	select {
	case p.sem <- struct{}{}:
	default:
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("opahost: waiting for a free instance: %w", ctx.Err())
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.sem
		return nil, ErrClosed
	}
	if n := len(v.idle); n > 0 {
		in := v.idle[n-1]
		v.idle = v.idle[:n-1]
		p.mu.Unlock()
		return in, nil
	}
	var evict *instance
	if p.live >= p.maxInst {
		other := p.fast
		if v == p.fast {
			other = p.guarded
		}
		if other != nil && len(other.idle) > 0 {
			evict = other.idle[0] // the least recently used
			other.idle = other.idle[1:]
			p.live--
		}
	}
	p.live++
	p.mu.Unlock()
	if evict != nil {
		evict.close(ctx)
	}

	in, err := p.instantiate(ctx, v)
	if err == nil {
		if err = in.loadData(ctx); err != nil {
			in.close(ctx)
		}
	}
	if err != nil {
		p.mu.Lock()
		p.live--
		closed := p.closed
		p.mu.Unlock()
		<-p.sem
		if closed {
			return nil, ErrClosed
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("opahost: creating an instance: %w", ctx.Err())
		}
		return nil, err
	}
	return in, nil
}

// release returns in to the pool, or drops it if it can no longer be
// trusted (or is of the fast code after a switch); the pool replaces
// dropped instances lazily. An instance the watchdog took out is only
// closed: its token and its place are given back already.
func (p *Policy) release(ctx context.Context, in *instance) {
	in.mu.Lock()
	out := in.runaway
	in.mu.Unlock()
	if out {
		in.close(context.WithoutCancel(ctx))
		return
	}
	p.mu.Lock()
	keep := !in.broken && !p.closed && !(in.v == p.fast && p.interruptible.Load())
	if keep {
		in.v.idle = append(in.v.idle, in)
	} else {
		p.live--
	}
	p.mu.Unlock()
	if !keep {
		in.close(context.WithoutCancel(ctx))
	}
	<-p.sem
}

// evalAbandonable runs a fast evaluation under a context that can end: on
// the instance's own goroutine, so that the caller can leave when ctx ends.
// The input is written into the instance's memory here, on the caller's
// goroutine, so that nothing of the caller's is read after it has left.
func (p *Policy) evalAbandonable(ctx context.Context, in *instance, ep int32, input []byte, opts EvalOptions) ([]byte, error) {
	addr, n, heap, err := in.writeInput(ctx, input)
	if err != nil {
		p.release(ctx, in)
		return nil, err
	}
	if in.jobs == nil {
		in.jobs = make(chan job, 1)
		in.results = make(chan result, 1)
		go in.work()
	}
	in.start(ep)
	in.jobs <- job{ctx: ctx, ep: ep, addr: addr, n: n, heap: heap, opts: opts}
	select {
	case r := <-in.results:
		p.release(ctx, in)
		return r.out, r.err
	case <-ctx.Done():
	}
	in.mu.Lock()
	running := in.running
	in.abandoned = running
	in.mu.Unlock()
	if !running { // it finished as ctx ended: the result is there
		r := <-in.results
		p.release(ctx, in)
		return r.out, r.err
	}
	p.abandoned.Add(1)
	return nil, fmt.Errorf("opahost: evaluating %q: abandoned, the evaluation finishes in the background: %w", p.epNames[ep], ctx.Err())
}

type job struct {
	ctx           context.Context
	ep            int32
	addr, n, heap uint32
	opts          EvalOptions
}

type result struct {
	out []byte
	err error
}

// work runs the instance's abandonable evaluations, one at a time, until the
// instance is closed or an evaluation is abandoned (the instance is then
// discarded, here, when it finishes).
func (in *instance) work() {
	for j := range in.jobs {
		out, err := in.run(j.ctx, j.ep, j.addr, j.n, j.heap, j.opts)
		if in.stop() {
			in.broken = true
			in.p.release(context.WithoutCancel(j.ctx), in)
			return
		}
		in.results <- result{out, err}
	}
}

// Go cannot preempt a goroutine while it runs wasm code without termination checks: it keeps its P (one
// of the GOMAXPROCS slots that run Go code) until the code returns. Were every P running such code, nothing
// else in the process would run until one returned: not the timer that tells a caller its deadline has
// passed, not the watchdog, not the HTTP server. So a trusted Policy makes sure, when it loads, that the
// process has a P more than the Policy has instances. (Setting GOMAXPROCS turns off Go's own updates of it
// to a container's CPU limit; an extra P costs nothing while it is idle.)
//
// What no P can help with: Go's stop-the-world pauses (the garbage collector's, for one) wait for every
// goroutine, and so for a running evaluation of the fast code, to reach a point where it can stop; wasm
// code has none. A decision takes a fraction of a millisecond, so the pause is no longer than it would be
// anyway; a runaway delays the process's next collection until it ends, which is why the watchdog switches
// the policy to the interruptible code rather than letting it happen again (and why the memory cap, which
// ends a runaway comprehension that allocates, matters).
var procsMu sync.Mutex

// startProcs is the GOMAXPROCS the process had before any Policy raised it: the default number of instances.
var startProcs = runtime.GOMAXPROCS(0)

func reserveProcs(instances int) {
	procsMu.Lock()
	defer procsMu.Unlock()
	if runtime.GOMAXPROCS(0) <= instances {
		runtime.GOMAXPROCS(instances + 1)
	}
}

// start marks the instance as running an evaluation of the fast code, and
// arms the watchdog.
func (in *instance) start(ep int32) {
	in.mu.Lock()
	in.running, in.abandoned, in.ep, in.started = true, false, ep, time.Now()
	in.mu.Unlock()
	if in.watch == nil {
		in.watch = time.AfterFunc(in.p.limit, in.watchdog)
	} else {
		in.watch.Reset(in.p.limit)
	}
}

// stop marks the evaluation finished, disarms the watchdog and reports
// whether the caller abandoned it.
func (in *instance) stop() (abandoned bool) {
	in.watch.Stop()
	in.mu.Lock()
	in.running = false
	abandoned = in.abandoned
	in.mu.Unlock()
	return abandoned
}

// watchdog fires when an evaluation of the fast code has run for the
// runaway limit. It cannot stop that code; it takes the instance out of the
// pool (its token and its place go back, so another instance can take its
// place) and switches the Policy to the interruptible code.
func (in *instance) watchdog() {
	in.mu.Lock()
	// A timer that fired as the last evaluation ended may run while the next
	// one runs: that one is a runaway only once it has run for the limit.
	if !in.running || in.runaway || time.Since(in.started) < in.p.limit {
		in.mu.Unlock()
		return
	}
	in.runaway = true
	ep := in.ep
	in.mu.Unlock()
	p := in.p
	p.degrade(p.epNames[ep])
	p.mu.Lock()
	p.live--
	p.mu.Unlock()
	<-p.sem
	p.runaways.Add(1)
}

// degrade switches the Policy to the interruptible code, once: from now on
// evaluations wait for that code to be compiled and run it; idle instances
// of the fast code are closed.
func (p *Policy) degrade(entrypoint string) {
	p.degradeOnce.Do(func() {
		d := &Degradation{At: time.Now(), Entrypoint: entrypoint, Limit: p.limit}
		p.interruptible.Store(true)
		p.degraded.Store(d)
		go func() {
			ctx := context.Background()
			v, err := p.newVariant(ctx, p.module, true, p.guardedCache)
			p.mu.Lock()
			closed := p.closed
			if err == nil && !closed {
				p.guarded = v
			}
			idle := p.fast.idle
			p.fast.idle = nil
			p.live -= len(idle)
			p.mu.Unlock()
			if err == nil && closed {
				_ = v.rt.Close(ctx)
			}
			for _, in := range idle {
				in.close(ctx)
			}
			if err != nil {
				err = errors.Join(errors.New("opahost: compiling the interruptible code"), err)
				p.degraded.Store(&Degradation{At: d.At, Entrypoint: d.Entrypoint, Limit: d.Limit, Err: err})
			}
			close(p.guardedReady)
			if p.onDegrade != nil {
				p.onDegrade(*p.degraded.Load())
			}
		}()
	})
}
