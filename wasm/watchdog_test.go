package wasm_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
	"github.com/precheck/precheck/wasm"
)

// runawayRule is an override that adds a rule with a huge numbers.range comprehension, which runs for
// body.slow squared iterations: a second or more for 4000 on the fast code, hours for 100000.
const runawayRule = `# METADATA
# title: Runaway
# description: A rule that takes long, for the watchdog's test.
package precheck.rules.runaway

xs := numbers.range(1, input.request.body.slow)

# METADATA
# title: never fires
# description: Counts the pairs of a huge comprehension.
# custom:
#   code: TEST-RUN-001
#   severity: deny
#   status: 400
#   remediation: none
findings contains {"rule": rego.metadata.rule().custom, "field": "request.body", "message": "negative"} if {
	count([1 | some i in xs; some j in xs; i == j]) < 0
}
`

func slowDocument(n string) []byte {
	return []byte(`{"request": {"project_id": "89cd04f168b84af6be287f71730fdb4b", "cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		"body": {"encrypt": {"crypt_algorithm": "generalCipher", "master_key_id": "0f3196c8-5c23-469f-84da-92ecd2499dce"}, "slow": ` + n + `}}}`)
}

// The acceptance test of the trusted policy's fast code: a deadline abandons an evaluation at once, the
// pool bounds what keeps running, and the watchdog takes a runaway out of the pool and switches the policy
// to the interruptible code (log, state), after which the next deadline interrupts the evaluation.
func TestWatchdogDegradesARunawayOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "runaway.rego"), []byte(runawayRule), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.LoadWithOverrides(dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs policytest.SyncBuffer
	degraded := make(chan policy.State, 1)
	backend := wasm.Backend(wasm.Config{MaxInstances: 1, RunawayLimit: 200 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
		OnDegrade: func(_ string, s policy.State) { degraded <- s }})
	eng, err := policy.New(context.Background(), p, policy.WithBackend(backend))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	example, err := os.ReadFile("../examples/inputs/allowed-api-example.json")
	if err != nil {
		t.Fatal(err)
	}

	// The deadline abandons the evaluation: the caller gets ctx.Err() as the deadline passes. (A
	// collection that starts while the fast code runs waits for it, and so may the caller: the loading's
	// garbage is collected first.)
	runtime.GC()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_, err = eng.CheckJSON(ctx, slowDocument("4000"))
	late := time.Since(deadline)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	t.Logf("returned %v after the deadline: %v", late, err)
	if late > 50*time.Millisecond { // the 1 ms bound is opahost's TestAbandonedEvaluation's, on a quiet pool
		t.Errorf("returned %v after the deadline", late)
	}
	if s := eng.State(); s.Code != "fast" || s.Abandoned != 1 || s.Degraded {
		t.Errorf("state after abandoning: %+v", s)
	}
	// The abandoned evaluation keeps the only instance: the pool is bounded, so the next caller waits
	// (until its own deadline) rather than start another.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := eng.CheckJSON(ctx2, example); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("while the pool is full: err = %v, want DeadlineExceeded", err)
	}

	// Past the runaway limit the watchdog takes the instance out and switches the policy.
	var s policy.State
	select {
	case s = <-degraded:
	case <-time.After(time.Minute):
		t.Fatal("the watchdog did not switch the policy")
	}
	if s.Code != "interruptible" || !s.Degraded || s.Runaways != 1 || !strings.Contains(s.Reason, "runaway limit of 200ms") {
		t.Errorf("state after the switch: %+v", s)
	}
	if got := eng.State(); got.Code != "interruptible" || !got.Degraded {
		t.Errorf("engine state: %+v", got)
	}
	if !strings.Contains(logs.String(), "switched a policy to its interruptible code") {
		t.Errorf("log: %q", logs.String())
	}
	// The runaway is out of the pool: a decision is served at once, correctly.
	d, err := eng.CheckJSON(context.Background(), example)
	if err != nil || !d.Allowed {
		t.Fatalf("decision after the switch: %+v, %v", d, err)
	}
	// The next deadline interrupts the evaluation: it is stopped, not abandoned.
	ctx3, cancel3 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel3()
	if _, err := eng.CheckJSON(ctx3, slowDocument("100000")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if got := eng.State(); got.Abandoned != 1 {
		t.Errorf("the evaluation under the second deadline was abandoned, not interrupted: %+v", got)
	}
	// The switch is for good: an engine made later for the same policy starts on the interruptible code.
	again, err := policy.New(context.Background(), p, policy.WithBackend(backend))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(context.Background())
	if got := again.State(); got.Code != "interruptible" || !got.Degraded {
		t.Errorf("a new engine on the same revision: %+v", got)
	}
}
