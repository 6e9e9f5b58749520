package opahost

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// loopPolicy runs input.n squared iterations of wasm code without allocating in the loop: about 0.1 µs
// each, so n = 4000 runs for a second or more and then finishes, and n = 100000 for hours.
const loopPolicy = `package slow

xs := numbers.range(1, input.n)

pairs := count([1 | some i in xs; some j in xs; i == j])
`

var (
	runaway = []byte(`{"n":4000}`)
	shorter = []byte(`{"n":2000}`) // a few tenths of a second
	endless = []byte(`{"n":100000}`)
	quick   = []byte(`{"n":10}`)
)

func loopWasm(t *testing.T) []byte {
	t.Helper()
	return compileWasm(t, map[string]string{"s.rego": loopPolicy}, nil, "slow/pairs")
}

// inFlight is the number of evaluations holding a place in the pool, and the instances in it.
func inFlight(p *Policy) (tokens, live int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sem), p.live
}

// waitFor polls cond until it holds, for at most a minute (the background evaluations of these tests
// finish within seconds, more under the race detector on a loaded machine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestOnlyTheCodeTheConfigurationRunsIsCompiled(t *testing.T) {
	t.Parallel()
	mod := loopWasm(t)
	trusted := mustLoad(t, mod, nil, Config{})
	if trusted.fast == nil || trusted.guarded != nil {
		t.Errorf("trusted: fast %v, guarded %v; want only the fast code", trusted.fast != nil, trusted.guarded != nil)
	}
	untrusted := mustLoad(t, mod, nil, Config{Interruptible: true})
	if untrusted.fast != nil || untrusted.guarded == nil {
		t.Errorf("untrusted: fast %v, guarded %v; want only the interruptible code", untrusted.fast != nil, untrusted.guarded != nil)
	}
	for _, p := range []*Policy{trusted, untrusted} {
		if got, err := p.Eval(context.Background(), 0, quick, EvalOptions{}); err != nil || string(got) != `[{"result":10}]` {
			t.Errorf("Eval = %s, %v", got, err)
		}
	}
}

// A caller whose deadline passes while the fast code runs gets ctx.Err() at once; the evaluation it left
// finishes in the background, holding its place in the pool, and its instance is then discarded.
func TestAbandonedEvaluation(t *testing.T) {
	p := mustLoad(t, loopWasm(t), nil, Config{MaxInstances: 2, RunawayLimit: time.Hour})
	ok := func() { // the abandoned evaluations are done, and discarded (none returned to the pool)
		t.Helper()
		waitFor(t, "the abandoned evaluations to finish", func() bool {
			tokens, live := inFlight(p)
			return tokens == 0 && live == 0
		})
	}
	abandon := func(i int) time.Duration {
		t.Helper()
		runtime.GC() // a collection that starts while the fast code runs waits for it, and may hold up the caller
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		deadline, _ := ctx.Deadline()
		_, err := p.Eval(ctx, 0, shorter, EvalOptions{})
		late := time.Since(deadline)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("attempt %d: err = %v, want DeadlineExceeded", i, err)
		}
		t.Logf("attempt %d: returned %v after the deadline: %v", i, late, err)
		return late
	}
	// How late the caller is told depends on the machine too (the timer's goroutine must be scheduled):
	// the best of a few attempts, each on a quiet pool, must be within 1 ms.
	best := time.Hour
	for i := 0; i < 5 && best > time.Millisecond; i++ {
		best = min(best, abandon(i))
		ok()
	}
	if best > time.Millisecond {
		t.Errorf("the caller got its error %v after the deadline at best, want within 1ms", best)
	}
	// The pool bounds the evaluations left running: with two abandoned, a third caller waits for an
	// instance until its deadline instead of starting a third. (How late these callers hear of their
	// deadline is not asserted: a garbage collection that starts while two evaluations of the fast code run
	// waits for them to end, and holds up every goroutine meanwhile; see pool.go.)
	before := p.State().Abandoned
	abandon(10)
	abandon(11)
	abandon(12)
	if tokens, live := inFlight(p); tokens > 2 || live > 2 {
		t.Errorf("%d evaluations hold the pool's %d instances, MaxInstances is 2", tokens, live)
	}
	// Two at least (the third may have found an instance whose evaluation had ended).
	if s := p.State(); s.Abandoned-before < 2 || s.Interruptible || s.Runaways != 0 {
		t.Errorf("state: %+v, want 2 or 3 more abandoned on the fast code", s)
	}
	ok()
	if got, err := p.Eval(context.Background(), 0, quick, EvalOptions{}); err != nil || string(got) != `[{"result":10}]` {
		t.Errorf("after: Eval = %s, %v", got, err)
	}
}

// An evaluation of the fast code that runs past the limit is taken out of the pool, another instance
// takes its place, and the policy runs the interruptible code from then on: the next deadline stops it.
func TestWatchdogSwitchesToInterruptibleCode(t *testing.T) {
	t.Parallel()
	degraded := make(chan Degradation, 1)
	p := mustLoad(t, loopWasm(t), nil, Config{MaxInstances: 1, RunawayLimit: 50 * time.Millisecond,
		OnDegrade: func(d Degradation) { degraded <- d }})
	result := make(chan string, 1)
	go func() {
		out, err := p.Eval(context.Background(), 0, runaway, EvalOptions{})
		result <- fmt.Sprint(string(out), err)
	}()
	// The watchdog takes the runaway out of the pool at once (the interruptible code is compiled after).
	waitFor(t, "the watchdog", func() bool { return p.State().Runaways == 1 })
	if s := p.State(); !s.Interruptible || s.Degradation == nil {
		t.Errorf("state after the switch: %+v", s)
	}
	select {
	case r := <-result:
		t.Logf("the runaway finished before the test could look (a slow machine): %s", r)
		result <- r
	default:
		if tokens, live := inFlight(p); tokens != 0 || live != 0 {
			t.Errorf("the runaway still holds the pool: %d tokens, %d instances", tokens, live)
		}
	}
	var d Degradation
	select {
	case d = <-degraded:
	case <-time.After(time.Minute):
		t.Fatal("the interruptible code was not compiled")
	}
	if d.Err != nil || d.Entrypoint != "slow/pairs" || d.Limit != 50*time.Millisecond {
		t.Errorf("degradation %+v", d)
	}
	// The runaway is out of the pool, so the one-instance pool serves the next call at once, on the
	// interruptible code.
	if got, err := p.Eval(context.Background(), 0, quick, EvalOptions{}); err != nil || string(got) != `[{"result":10}]` {
		t.Errorf("next Eval = %s, %v", got, err)
	}
	p.mu.Lock()
	fastIdle, guardedIdle := len(p.fast.idle), len(p.guarded.idle)
	p.mu.Unlock()
	if fastIdle != 0 || guardedIdle != 1 {
		t.Errorf("idle instances: fast %d, interruptible %d", fastIdle, guardedIdle)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := p.Eval(ctx, 0, endless, EvalOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the interruptible code took %v to stop", took)
	}
	if s := p.State(); s.Abandoned != 0 {
		t.Errorf("the evaluation was abandoned, not interrupted: %+v", s)
	}
	// The runaway itself finishes, and its caller, who had no deadline, gets its answer.
	select {
	case r := <-result:
		if r != `[{"result":4000}]<nil>` {
			t.Errorf("the runaway's result: %s", r)
		}
	case <-time.After(time.Minute):
		t.Fatal("the runaway did not finish")
	}
	waitFor(t, "the runaway's instance to close", func() bool {
		open := 0
		p.instances.Range(func(any, any) bool { open++; return true })
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.fast.idle) == 0 && open == p.live
	})
}

// Loading trusted Policies one after another (a server's reloads, a second engine) keeps GOMAXPROCS where
// the first load put it: each sizes itself by the GOMAXPROCS the process started with, not the raised one.
// Not parallel: another test's Policy with more instances would move GOMAXPROCS under it.
func TestLoadsDoNotRaiseGOMAXPROCSAgain(t *testing.T) {
	mod := loopWasm(t)
	mustLoad(t, mod, nil, Config{})
	after := runtime.GOMAXPROCS(0)
	if after <= startProcs {
		t.Fatalf("GOMAXPROCS %d after a trusted load; want more than the %d instances", after, startProcs)
	}
	for range 3 {
		mustLoad(t, mod, nil, Config{})
	}
	if got := runtime.GOMAXPROCS(0); got != after {
		t.Errorf("GOMAXPROCS %d after four loads, %d after the first: each load raised it", got, after)
	}
}
