package wasm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm"
)

// tinyPolicy loads a policy of one file, without the default policy, from Rego source.
func tinyPolicy(t *testing.T, src string) *policy.Policy {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tiny.rego"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnservedBuiltinFailsTheLoad(t *testing.T) {
	// Declared to the compiler, so the module imports it, but never given an implementation.
	ast.RegisterBuiltin(&ast.Builtin{
		Name: "precheck_test.unserved",
		Decl: types.NewFunction(types.Args(types.A), types.B),
	})
	p := tinyPolicy(t, `package precheck

decision := {"allowed": precheck_test.unserved(input), "violations": [], "warnings": []}
`)
	_, err := policy.New(context.Background(), p, policy.WithBackend(wasm.Backend(wasm.Config{})))
	if err == nil || !strings.Contains(err.Error(), `builtin "precheck_test.unserved" imported by the module is not available`) {
		t.Fatalf("err = %v, want the load to fail naming the builtin", err)
	}
}

// trouble is a policy that decides normally, aborts when the body says {"abort": true} (two values for one
// complete rule), and loops for a good part of a second when it says {"loop": true}. (The body is the one
// member of a strict document that is free.)
const trouble = `package precheck

ok := {"allowed": true, "violations": [], "warnings": []}

decision := ok if not input.request.body.loop

decision := {"allowed": true, "violations": [], "warnings": [], "other": 1} if input.request.body.abort

decision := ok if {
	input.request.body.loop
	count([1 | some i in numbers.range(1, 2000); some j in numbers.range(1, 2000); i != j]) > 0
}
`

func TestTroubleThenRecover(t *testing.T) {
	t.Parallel()
	// No watchdog: a loop left to finish in the background is what a deadline does to the fast code, and
	// switching to the interruptible code is the watchdog's test.
	eng, err := policy.New(context.Background(), tinyPolicy(t, trouble),
		policy.WithBackend(wasm.Backend(wasm.Config{MaxInstances: 1, RunawayLimit: time.Hour})))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	next := func() {
		t.Helper()
		d, err := eng.CheckJSON(context.Background(), []byte(`{}`))
		if err != nil || !d.Allowed {
			t.Fatalf("the next evaluation: %+v, %v", d, err)
		}
	}

	_, err = eng.CheckJSON(context.Background(), []byte(`{"request": {"body": {"abort": true}}}`))
	if err == nil || !strings.Contains(err.Error(), "policy aborted") || !strings.Contains(err.Error(), "conflict") {
		t.Errorf("abort: err = %v", err)
	}
	next()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = eng.CheckJSON(ctx, []byte(`{"request": {"body": {"loop": true}}}`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: err = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the deadline stopped the evaluation only after %v", took)
	}
	next()

	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err = eng.CheckJSON(ctx, []byte(`{"request": {"body": {"loop": true}}}`))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: err = %v", err)
	}
	next()
}

func TestInputOverMemoryCap(t *testing.T) {
	t.Parallel()
	eng, err := policy.New(context.Background(), tinyPolicy(t, trouble),
		policy.WithBackend(wasm.Backend(wasm.Config{MemoryLimitPages: 48, MaxInstances: 1})),
		policy.WithLimits(policy.Limits{MaxBytes: 8 << 20, MaxDepth: 8}))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	big := []byte(`{"request": {"body": "` + strings.Repeat("a", 4<<20) + `"}}`)
	_, err = eng.CheckJSON(context.Background(), big)
	if err == nil || !strings.Contains(err.Error(), "memory limit of 48 pages") {
		t.Fatalf("err = %v, want the memory cap named", err)
	}
	if d, err := eng.CheckJSON(context.Background(), []byte(`{}`)); err != nil || !d.Allowed {
		t.Fatalf("after the oversized input: %+v, %v", d, err)
	}
}

// TestConcurrentEngine shares one wasm engine between many goroutines (run with -race), each checking
// its decisions against the rego engine's.
func TestConcurrentEngine(t *testing.T) {
	t.Parallel()
	r, w := bothEngines(t)
	docs := corpus(t)
	want := map[string]string{}
	for name, doc := range docs {
		d, err := r.CheckJSON(context.Background(), doc)
		if err != nil {
			t.Fatal(err)
		}
		want[name] = outline(d)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			ctx := context.Background()
			if g%2 == 1 { // half of them on the interruptible code
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Minute)
				defer cancel()
			}
			for range 2 {
				for name, doc := range docs {
					d, err := w.CheckJSON(ctx, doc)
					if err != nil {
						t.Error(err)
						return
					}
					if got := outline(d); got != want[name] {
						t.Errorf("%s: %s, want %s", name, got, want[name])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func outline(d *policy.Decision) string {
	var b strings.Builder
	for _, v := range append(append([]policy.Violation{}, d.Violations...), d.Warnings...) {
		b.WriteString(v.Code + " " + v.Field + "; ")
	}
	return b.String()
}

func TestReloadWithWasm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, _ := policy.Default()
	eng, err := policy.New(ctx, p, policy.WithBackend(wasm.Backend(wasm.Config{})))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"precheck": {"config": {"min_guest_agent_version": "9.0.0"}}}`), 0o644)
	strict, err := policy.LoadWithOverrides(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Reload(ctx, strict); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile("../examples/inputs/allowed-api-example.json")
	d, err := eng.CheckJSON(ctx, doc)
	if err != nil || d.Allowed || d.Violations[0].Code != "PRECHECK-VER-002" {
		t.Fatalf("after reload: %+v, %v", d, err)
	}
	if err := eng.Reload(ctx, tinyPolicy(t, "package precheck\n\ndecision := {\"allowed\": true, \"violations\": [], \"warnings\": []} if dws.no_such(1)\n")); err == nil {
		t.Fatal("a policy that does not compile was loaded")
	}
	if d, err := eng.CheckJSON(ctx, doc); err != nil || d.Violations[0].Code != "PRECHECK-VER-002" {
		t.Fatalf("the failed reload changed the policy: %+v, %v", d, err)
	}
}

// A reload is of the policy's content, not of its revision: a manifest may keep its revision while the
// rules change, and the engine must then run the new rules (with the new data), not the module it compiled
// for the old ones.
func TestReloadOfNewRulesUnderTheSameRevision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	withRevision := func(src string) *policy.Policy {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ".manifest"), []byte(`{"revision": "r1"}`), 0o644)
		os.WriteFile(filepath.Join(dir, "tiny.rego"), []byte(src), 0o644)
		p, err := policy.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	allows := withRevision("package precheck\n\ndecision := {\"allowed\": true, \"violations\": [], \"warnings\": []}\n")
	denies := withRevision(`package precheck

decision := {"allowed": false, "warnings": [], "violations": [{"code": "TINY-001", "field": "request", "severity": "deny", "message": "no"}],
	"error": {"status": 403, "error_code": "TINY-001", "error_msg": "no"}}
`)
	if allows.Revision() != denies.Revision() || allows.ContentDigest() == denies.ContentDigest() {
		t.Fatalf("revisions %s %s, contents %s %s", allows.Revision(), denies.Revision(), allows.ContentDigest(), denies.ContentDigest())
	}
	eng, err := policy.New(ctx, allows, policy.WithBackend(wasm.Backend(wasm.Config{})))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	if err := eng.Reload(ctx, denies); err != nil {
		t.Fatal(err)
	}
	d, err := eng.CheckJSON(ctx, []byte(`{"request": {}}`))
	if err != nil || d.Allowed {
		t.Fatalf("after reloading the denying rules under the same revision: %+v, %v", d, err)
	}
}
