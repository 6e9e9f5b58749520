package hookmodule_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin"
	"github.com/precheck/precheck/plugin/hookmodule"
	"github.com/precheck/precheck/policy"
)

// checkDeny checks the decision of the probe asked to deny: its violation, its warning, the refusal.
func checkDeny(t *testing.T, d *policy.Decision) {
	t.Helper()
	if d.Allowed || len(d.Violations) != 1 || len(d.Warnings) != 1 {
		t.Fatalf("decision = %+v, want one violation and one warning", d)
	}
	v := d.Violations[0]
	if v.Code != "PROBE-DENY" || v.Field != "probe" || v.Severity != policy.SeverityDeny || v.Message != "denied as asked" {
		t.Errorf("violation = %+v", v)
	}
	if w := d.Warnings[0]; w.Code != "PROBE-CALLS" || w.Severity != policy.SeverityWarn {
		t.Errorf("warning = %+v", w)
	}
	want := policy.APIError{Status: 403, ErrorCode: "PROBE-DENY", ErrorMsg: "PROBE-DENY: denied as asked"}
	if d.Error == nil || *d.Error != want {
		t.Errorf("error = %+v, want %+v", d.Error, want)
	}
}

// TestFailuresThenRecovery makes the probe fail in every way a hook can, and checks that each failure is
// an error naming the hook and saying what happened, within bounds, and that the same Module, and a
// Chain holding it next to another hook, serve the next request correctly.
func TestFailuresThenRecovery(t *testing.T) {
	t.Parallel()
	// Each failure gets limits that only it can reach. The loop and the sleep, which never end, run on a
	// Module with a short time limit, though not too short: it bounds the creation of the fresh instance
	// that serves the requests after a failure too, which takes a few hundred milliseconds under -race on
	// a busy machine. Every other failure runs on one with all the time it wants, so that its error names
	// what happened however slow the machine (the memory hog is slow under -race).
	const timeout = 2 * time.Second
	m := loadBuilt(t, probeModule, hookmodule.Config{MemoryLimitPages: 256, Timeout: timeout, MaxInstances: 2})
	chain, err := plugin.NewChain(m, allowWithWarning)
	if err != nil {
		t.Fatal(err)
	}
	patient := loadBuilt(t, probeModule, hookmodule.Config{MemoryLimitPages: 256, Timeout: time.Minute, MaxInstances: 2})
	patientChain, err := plugin.NewChain(patient, allowWithWarning)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	for _, tc := range []struct {
		probe string
		is    error
		says  string // in the error text, after "hook probe: "
	}{
		{"loop", context.DeadlineExceeded, "did not finish within its time limit of 2s"},
		{"sleep", context.DeadlineExceeded, "did not finish within its time limit"},
		{"hog", hookmodule.ErrMemoryLimit, `reached its memory limit of 256 pages (16 MiB) (stderr: "fatal error: out of memory")`},
		{"trap", hookmodule.ErrTrapped, `trapped in precheck_hook: wasm error: unreachable (stderr: "panic: probe: trap requested")`},
		{"exit", hookmodule.ErrTrapped, "exited with code 0 in precheck_hook"},
		{"garbage", hookmodule.ErrMalformed, "answered malformed findings: not a findings object: the answer must be a JSON object"},
		{"badcode", hookmodule.ErrMalformed, `code "DWS.0047" is in the cloud API's namespace`},
		{"error", hookmodule.ErrNoJudgement, "could not judge: probe: cannot judge, as asked"},
	} {
		t.Run(tc.probe, func(t *testing.T) {
			t.Parallel()
			// bound is how long the failure may take: the time limit, or, for a failure that is not one, what
			// a trap takes and more; the hog fills its memory a page at a time, which takes longer.
			m, chain, bound := m, chain, timeout+2*time.Second
			if !errors.Is(tc.is, context.DeadlineExceeded) {
				m, chain = patient, patientChain
			}
			if tc.probe == "hog" {
				bound = time.Minute + 2*time.Second
			}
			doc := probe(t, tc.probe)
			start := time.Now()
			d, err := m.Run(ctx, doc)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("Run = %+v, want an error", d)
			}
			if d != nil {
				t.Errorf("Run returned a decision with its error: %+v", d)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), "hook probe: ") || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error = %q, want it to name the hook and say %q", err, tc.says)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines; it ends up in an API answer", err)
			}
			if elapsed > bound {
				t.Errorf("the failure took %v, over %v", elapsed, bound)
			}

			// The chain refuses, naming the hook, and keeps the other hook's findings.
			cd, err := chain.CheckDocument(ctx, doc)
			if err != nil {
				t.Fatal(err)
			}
			if cd.Allowed || cd.Error.ErrorCode != plugin.CodeHookFailed || cd.Error.Status != plugin.HookFailedStatus ||
				cd.Violations[0].Field != "hook.probe" || !strings.Contains(cd.Violations[0].Message, tc.says) {
				t.Errorf("chain decision = %+v, error %+v, want a refusal naming the hook", cd, cd.Error)
			}
			if got := codes(cd.Warnings); len(got) != 1 || got[0] != "STATIC-001" {
				t.Errorf("chain warnings = %v, want the other hook's", got)
			}

			// The same Module, and the chain, serve the next requests correctly.
			for range 2 {
				d, err = m.Run(ctx, probe(t, "deny"))
				if err != nil {
					t.Fatalf("Run after the failure: %v", err)
				}
				checkDeny(t, d)
			}
			cd, err = chain.CheckDocument(ctx, probe(t, "allow"))
			if err != nil || !cd.Allowed || len(cd.Violations) != 0 || len(cd.Warnings) != 1 {
				t.Errorf("chain after the failure = %+v, %v; want allowed with the other hook's warning", cd, err)
			}
		})
	}
}

// TestInstancesAreReused checks that a sound instance serves the next call (the probe counts the calls its
// instance served) and that a failed one is not reused.
func TestInstancesAreReused(t *testing.T) {
	t.Parallel()
	m := loadBuilt(t, probeModule, hookmodule.Config{MaxInstances: 1})
	ctx := context.Background()
	calls := func() string {
		t.Helper()
		d, err := m.Run(ctx, probe(t, "deny"))
		if err != nil {
			t.Fatal(err)
		}
		return d.Warnings[0].Actual
	}
	first, second := calls(), calls()
	if second == first {
		t.Fatalf("calls served: %s then %s; the instance was not reused", first, second)
	}
	if _, err := m.Run(ctx, probe(t, "trap")); err == nil {
		t.Fatal("trap: no error")
	}
	if got := calls(); got != "1" {
		t.Errorf("after a trap the instance has served %s calls, want 1: a fresh instance", got)
	}
}

// TestSandbox checks what a hook can see: no file system, no environment, no arguments; the host's wall
// clock, or Config.Clock.
func TestSandbox(t *testing.T) {
	m := loadBuilt(t, probeModule, hookmodule.Config{})
	ctx := context.Background()
	report := func(what string) string {
		t.Helper()
		d, err := m.Run(ctx, probe(t, what))
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed || len(d.Warnings) != 1 {
			t.Fatalf("%s: decision %+v, want one warning", what, d)
		}
		return d.Warnings[0].Message
	}

	for _, probe := range []string{"readfile", "readdir"} {
		got := report(probe)
		if !strings.HasPrefix(got, "error: open /") || strings.Contains(got, "root") {
			t.Errorf("%s: the hook saw %q, want an error opening the file", probe, got)
		}
	}
	t.Setenv("HOME", "/home/precheck-test")
	if got, want := report("readenv"), `HOME="" set=false environ=0 args=0`; got != want {
		t.Errorf("readenv: the hook saw %q, want %q", got, want)
	}
	seen, err := time.Parse(time.RFC3339Nano, report("clock"))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(seen); d < -time.Minute || d > time.Minute {
		t.Errorf("the hook's clock says %v, the host's %v", seen, time.Now())
	}

	at := time.Date(2031, 2, 3, 4, 5, 6, 7000, time.UTC)
	m = loadBuilt(t, probeModule, hookmodule.Config{Clock: func() time.Time { return at }})
	d, err := m.Run(ctx, probe(t, "clock"))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Warnings[0].Message; got != "2031-02-03T04:05:06.000007Z" {
		t.Errorf("with Config.Clock the hook's clock says %s, want %v", got, at)
	}
}

// TestCallerContext checks that the caller's context stops a call too, and is told apart from the hook's
// time limit.
func TestCallerContext(t *testing.T) {
	t.Parallel()
	m := loadBuilt(t, probeModule, hookmodule.Config{Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.Run(ctx, probe(t, "loop"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "hook probe: stopped: the caller's context ended") {
		t.Errorf("error = %v, want the caller's deadline", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("stopping took %v", elapsed)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := m.Run(ctx, probe(t, "allow")); !errors.Is(err, context.Canceled) {
		t.Errorf("Run under an ended context: %v, want context.Canceled", err)
	}
	if d, err := m.Run(context.Background(), probe(t, "allow")); err != nil || !d.Allowed {
		t.Errorf("Run afterwards: %+v, %v", d, err)
	}
}

// TestWaitForInstance checks that a Run waits for a free instance when all are busy, honouring its
// context.
func TestWaitForInstance(t *testing.T) {
	t.Parallel()
	// The sleeping probe holds the only instance until its time limit. It reads the wall clock as it
	// starts, which tells the test, through Config.Clock, that the instance is taken: no sleeping on a
	// guess of how long the goroutine takes to get there.
	var (
		armed   atomic.Bool
		holding = make(chan struct{})
		once    sync.Once
	)
	clock := func() time.Time {
		if armed.Load() {
			once.Do(func() { close(holding) })
		}
		return time.Now()
	}
	m := loadBuilt(t, probeModule, hookmodule.Config{MaxInstances: 1, Timeout: 2 * time.Second, Clock: clock})
	sleep := probe(t, "sleep")
	armed.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(context.Background(), sleep)
		done <- err
	}()
	select {
	case <-holding:
	case err := <-done:
		t.Fatalf("sleep ended before it was seen running: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := m.Run(ctx, probe(t, "allow"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "hook probe: waiting for a free instance") {
		t.Errorf("Run with every instance busy: %v, want it to give up waiting", err)
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("sleep: %v", err)
	}
	if d, err := m.Run(context.Background(), probe(t, "allow")); err != nil || !d.Allowed {
		t.Errorf("Run afterwards: %+v, %v", d, err)
	}
}

// TestConcurrentRuns runs many goroutines on one Module with fewer instances than goroutines, failures
// mixed in, and checks every answer (run it with -race).
func TestConcurrentRuns(t *testing.T) {
	t.Parallel()
	m := loadBuilt(t, probeModule, hookmodule.Config{MaxInstances: 3, Timeout: time.Minute})
	chain, err := plugin.NewChain(m, allowWithWarning)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Every goroutine runs each kind of call once, in an order of its own. A failed call costs a fresh
	// instance, which takes a tenth of a second under -race: more runs add time, not interleavings.
	const goroutines, runs = 16, 4
	allow, trap, garbage := probe(t, "allow"), probe(t, "trap"), probe(t, "garbage")
	deny := make([][]*policy.Document, goroutines)
	for g := range deny {
		for i := range runs {
			deny[g] = append(deny[g], document(t, fmt.Sprintf(`{"request": {"body": {"probe": "deny", "code": "G%d-%d"}}}`, g, i)))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*runs)
	for g := range goroutines {
		wg.Go(func() {
			for i := range runs {
				switch (g + i) % 4 {
				case 0:
					d, err := m.Run(ctx, allow)
					if err != nil || !d.Allowed || len(d.Violations) != 0 || d.Warnings == nil {
						errs <- fmt.Errorf("allow: %+v, %v", d, err)
					}
				case 1:
					d, err := m.Run(ctx, deny[g][i])
					if err != nil || d.Allowed || d.Error.ErrorCode != fmt.Sprintf("G%d-%d", g, i) {
						errs <- fmt.Errorf("deny: %+v, %v", d, err)
					}
				case 2:
					if _, err := m.Run(ctx, trap); !errors.Is(err, hookmodule.ErrTrapped) {
						errs <- fmt.Errorf("trap: %v", err)
					}
				case 3:
					d, err := chain.CheckDocument(ctx, garbage)
					if err != nil || d.Allowed || d.Error.ErrorCode != plugin.CodeHookFailed {
						errs <- fmt.Errorf("chain: %+v, %v", d, err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	m, err := hookmodule.Load(context.Background(), module(t, probeModule), hookmodule.Config{Cache: compiledCache(t), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(context.Background(), document(t, `{}`)); !errors.Is(err, hookmodule.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
