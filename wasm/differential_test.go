package wasm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
	regofs "github.com/precheck/precheck/rego"
	"github.com/precheck/precheck/wasm"
	"github.com/precheck/precheck/wasm/internal/opahost"
)

// engines returns a rego and a wasm engine on the default policy, built once per test binary.
var engines = sync.OnceValues(func() ([2]*policy.Engine, error) {
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		return [2]*policy.Engine{}, err
	}
	r, err := policy.New(ctx, p)
	if err != nil {
		return [2]*policy.Engine{}, err
	}
	w, err := policy.New(ctx, p, policy.WithBackend(wasm.Backend(wasm.Config{})))
	return [2]*policy.Engine{r, w}, err
})

func defaultModule(t testing.TB) *wasm.Module {
	t.Helper()
	m, err := wasm.DefaultCompiled()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func bothEngines(t testing.TB) (rego, wasm *policy.Engine) {
	t.Helper()
	e, err := engines()
	if err != nil {
		t.Fatal(err)
	}
	return e[0], e[1]
}

// corpus is every input document the project keeps: the policy's test corpus and the examples.
func corpus(t testing.TB) map[string][]byte {
	t.Helper()
	docs, err := policytest.Documents("..")
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte, len(docs))
	for _, d := range docs {
		out[d.Name] = d.JSON
	}
	return out
}

// decideBoth decides doc on both engines and fails unless they agree byte for byte (or refuse the document
// with the same error).
func decideBoth(t *testing.T, ctx context.Context, doc []byte) []byte {
	t.Helper()
	r, w := bothEngines(t)
	dr, errR := r.CheckJSON(ctx, doc)
	dw, errW := w.CheckJSON(ctx, doc)
	if errR != nil || errW != nil {
		var inR, inW *policy.InputError
		if !errors.As(errR, &inR) || !errors.As(errW, &inW) || errR.Error() != errW.Error() {
			t.Fatalf("rego: %v\nwasm: %v", errR, errW)
		}
		return nil
	}
	jr, _ := json.Marshal(dr)
	jw, _ := json.Marshal(dw)
	if !bytes.Equal(jr, jw) {
		t.Fatalf("decisions differ for %s\nrego: %s\nwasm: %s", doc, jr, jw)
	}
	return jr
}

func TestDifferentialCorpus(t *testing.T) {
	t.Parallel()
	withoutRace.Delegate(t)
	ctx := context.Background()
	for name, doc := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			if decideBoth(t, ctx, doc) == nil {
				t.Fatal("the document was refused")
			}
		})
	}
}

// The same under a context that can end: the wasm host then runs its interruptible code.
func TestDifferentialCorpusCancellableContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for name, doc := range corpus(t) {
		t.Run(name, func(t *testing.T) { decideBoth(t, ctx, doc) })
	}
}

// FuzzDifferential: for any bytes, both engines refuse them alike or decide alike.
func FuzzDifferential(f *testing.F) {
	withoutRace.Delegate(f)
	for _, doc := range corpus(f) {
		f.Add(doc)
	}
	for _, s := range []string{`{}`, `{"request": {"body": {"encrypt": {"master_key_id": 1.50, "crypt_algorithm": -0}}}}`,
		`{"cluster": {"version": "8.3.0.200", "sub_status": "DEGRADED|READONLY", "action_progress": {"b": 1, "a": [2]}}}`,
		`{"tenant": {"class": "` + "\u00e9\u4e2d" + `"}, "key": {"key_id": "x", "key_state": "7"}}`,
		`{"request": {"project_id": "` + "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9x" + `"}}`,
		`{"request": {"body": {"encrypt": {"x\"y": 1, "": 2}}}}`, `{"cluster": {"tags": [{"key": "compliance", "value": "regulated"}, 3]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		decideBoth(t, context.Background(), doc)
	})
}

// FuzzDifferentialFields varies the members the rules read, inside the example document, so that the fuzzer
// explores the policy's branches rather than JSON syntax.
func FuzzDifferentialFields(f *testing.F) {
	withoutRace.Delegate(f)
	f.Add("8.1.3.310", "8.3.0.200", "AVAILABLE", "NORMAL", "", "generalCipher", "0f3196c8-5c23-469f-84da-92ecd2499dce", "2", "default", false)
	f.Add("10.0.0", "8.3.0.1999", "ACTIVE", "DEGRADED | READONLY", "SNAPSHOTTING", "SMcompatible", "KMS-1abd-1016", "3", "regulated", true)
	f.Add("8.0.0-rc1", "v8.3.0", "", "UNBALANCED|", "x", "", "", "", "bank", false)
	f.Fuzz(func(t *testing.T, ver, agent, status, sub, task, alg, keyID, keyState, class string, encrypted bool) {
		doc := map[string]any{
			"request": map[string]any{
				"project_id": "89cd04f168b84af6be287f71730fdb4b",
				"cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
				"body":       map[string]any{"encrypt": map[string]any{"crypt_algorithm": alg, "master_key_id": keyID, "master_key_name": class}},
			},
			"cluster": map[string]any{
				"version": ver, "guest_agent_version": agent, "status": status, "sub_status": sub,
				"task_status": task, "encrypted": encrypted, "dr_relationship": false,
			},
			"key":    map[string]any{"key_id": keyID, "key_state": keyState},
			"tenant": map[string]any{"class": class},
		}
		data, err := json.Marshal(doc)
		if err != nil {
			t.Skip()
		}
		decideBoth(t, context.Background(), data)
	})
}

// TestDifferentialWithLevelsAndWaivers holds the engines together on a policy that uses what the default
// data leaves empty: levels per tenant class, and waivers at and around their expiry.
func TestDifferentialWithLevelsAndWaivers(t *testing.T) {
	t.Parallel()
	withoutRace.Delegate(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"precheck": {
		"levels": {"global": {"PRECHECK-CLU-005": "deny"}, "tenant_classes": {"regulated": {"PRECHECK-KEY-001": "off"}}},
		"waivers": [
			{"rule": "PRECHECK-VER-002", "scope": {"cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"}, "reason": "vendor upgrade", "owner": "dba-team", "expires": "2027-01-01T08:00:00+08:00"},
			{"rule": "PRECHECK-TEN-001", "scope": {"tenant_class": "regulated", "project_id": "89cd04f168b84af6be287f71730fdb4b"}, "reason": "SM4 keys pending", "owner": "security", "expires": "2026-12-01"}]}}`), 0o644)
	p, err := policy.LoadWithOverrides(dir)
	if err != nil {
		t.Fatal(err)
	}
	expiry := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	backend := wasm.Backend(wasm.Config{}) // one compilation for the three clocks
	for _, now := range []time.Time{time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC), expiry.Add(-time.Nanosecond), expiry} {
		clock := policy.WithClock(func() time.Time { return now })
		r, err := policy.New(context.Background(), p, clock)
		if err != nil {
			t.Fatal(err)
		}
		w, err := policy.New(context.Background(), p, clock, policy.WithBackend(backend))
		if err != nil {
			t.Fatal(err)
		}
		waived := 0
		for name, doc := range corpus(t) {
			dr, err1 := r.CheckJSON(context.Background(), doc)
			dw, err2 := w.CheckJSON(context.Background(), doc)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: %v %v", name, err1, err2)
			}
			jr, _ := json.Marshal(dr)
			jw, _ := json.Marshal(dw)
			if !bytes.Equal(jr, jw) {
				t.Fatalf("at %s, %s:\nrego: %s\nwasm: %s", now, name, jr, jw)
			}
			if bytes.Contains(jr, []byte("waived until")) {
				waived++
			}
		}
		if waived == 0 && now.Before(expiry) {
			t.Errorf("at %s no decision used a waiver: the test proves nothing", now)
		}
		w.Close(context.Background())
	}
}

// canonical re-serialises JSON with sorted keys and no insignificant whitespace, as a host in another language
// would before comparing: numbers keep their text, nothing is dropped or reordered.
func canonical(t *testing.T, data []byte) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawModule loads the default policy's compiled module on the project's host with data, as any OPA host
// would load it, and returns a function giving the module's raw result for a document.
func rawModule(t *testing.T, data []byte) func(doc []byte) []byte {
	t.Helper()
	ctx := context.Background()
	m := defaultModule(t)
	host, err := opahost.Load(ctx, m.Wasm(), data, opahost.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(context.Background()) })
	ep, ok := host.Entrypoints()[policy.Entrypoint]
	if !ok {
		t.Fatalf("no entrypoint %s", policy.Entrypoint)
	}
	return func(doc []byte) []byte {
		t.Helper()
		out, err := host.Eval(ctx, ep, doc, opahost.EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var rs []struct {
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(out, &rs); err != nil || len(rs) != 1 || rs[0].Result == nil {
			t.Fatalf("result set %s: %v", out, err)
		}
		return rs[0].Result
	}
}

// TestModuleResultIsTheDecision: what the module returns to any host is, after canonical re-serialisation
// only, the bytes precheck prints: the policy sorts and leaves out empty members, neither engine fixes it up.
func TestModuleResultIsTheDecision(t *testing.T) {
	t.Parallel()
	withoutRace.Delegate(t)
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(p.Data())
	if err != nil {
		t.Fatal(err)
	}
	eval := rawModule(t, data)
	r, w := bothEngines(t)
	for name, doc := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			raw := canonical(t, eval(doc))
			for _, e := range []*policy.Engine{r, w} {
				d, err := e.CheckJSON(context.Background(), doc)
				if err != nil {
					t.Fatal(err)
				}
				printed, _ := json.Marshal(d)
				if got := canonical(t, printed); !bytes.Equal(raw, got) {
					t.Fatalf("module: %s\n%s engine: %s", raw, e.Backend(), got)
				}
			}
		})
	}
}

// TestModuleWithoutDataRefuses: a host that never sets the policy's data ({} is what opa-wasm evaluates with
// then) gets a refusal with PRECHECK-DATA-001 for every document, never allowed; and so does precheck's wasm
// engine given that module with a policy that has no data.
func TestModuleWithoutDataRefuses(t *testing.T) {
	t.Parallel()
	withoutRace.Delegate(t)
	eval := rawModule(t, []byte(`{}`))
	ctx := context.Background()
	e, err := policy.New(ctx, policyWithoutData(t), policy.WithBackend(wasm.Backend(wasm.Config{Module: defaultModule(t).Wasm()})))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	for name, doc := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			var raw policy.Decision
			if err := json.Unmarshal(eval(doc), &raw); err != nil {
				t.Fatal(err)
			}
			d, err := e.CheckJSON(ctx, doc)
			if err != nil {
				var inErr *policy.InputError
				if errors.As(err, &inErr) {
					return // precheck refuses the document itself; the module alone still must not allow it
				}
				t.Fatal(err)
			}
			for _, d := range []*policy.Decision{&raw, d} {
				if d.Allowed || d.Error == nil || !hasViolation(d, "PRECHECK-DATA-001") {
					t.Fatalf("without data: %+v", d)
				}
			}
		})
	}
}

// policyWithoutData is the default policy's Rego without its data.json.
func policyWithoutData(t *testing.T) *policy.Policy {
	t.Helper()
	dir := t.TempDir()
	files, err := fs.Glob(regofs.FS, "*.rego")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		src, err := fs.ReadFile(regofs.FS, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := policy.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Data()) != 0 {
		t.Fatalf("the policy has data: %v", p.Data())
	}
	return p
}

func hasViolation(d *policy.Decision, code string) bool {
	for _, v := range d.Violations {
		if v.Code == code {
			return true
		}
	}
	return false
}
