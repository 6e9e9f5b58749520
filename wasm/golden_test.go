package wasm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm"
)

// -update rewrites testdata/decisions.golden.json from the rego engine. The file was first written by the
// code before issue #10's load-time rewrites and fast paths, so that the test below holds both engines to
// the decisions precheck gave before them, not only to each other.
var update = flag.Bool("update", false, "rewrite testdata/decisions.golden.json")

const goldenFile = "testdata/decisions.golden.json"

// withoutRace is the package's list (see export_test.go).
var withoutRace = wasm.WithoutRace

func TestWithoutRace(t *testing.T) { withoutRace.Run(t) }

// overrideData is the levels-and-waivers layer of TestDifferentialWithLevelsAndWaivers.
const overrideData = `{"precheck": {
	"levels": {"global": {"PRECHECK-CLU-005": "deny"}, "tenant_classes": {"regulated": {"PRECHECK-KEY-001": "off"}}},
	"waivers": [
		{"rule": "PRECHECK-VER-002", "scope": {"cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"}, "reason": "vendor upgrade", "owner": "dba-team", "expires": "2027-01-01T08:00:00+08:00"},
		{"rule": "PRECHECK-TEN-001", "scope": {"tenant_class": "regulated", "project_id": "89cd04f168b84af6be287f71730fdb4b"}, "reason": "SM4 keys pending", "owner": "security", "expires": "2026-12-01"}]}}`

// overrideTimes are the clocks the override cases are decided at: before, just before and at an expiry.
var overrideTimes = []time.Time{
	time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC),
	time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond),
	time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
}

// goldenCase is one policy and clock the golden decisions are taken under.
type goldenCase struct {
	name     string
	policy   func(t *testing.T) *policy.Policy
	now      time.Time
	variants bool // decide the variants too
}

func goldenCases() []goldenCase {
	cases := []goldenCase{{name: "default", policy: func(t *testing.T) *policy.Policy {
		p, err := policy.Default()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}, now: overrideTimes[0]}}
	for _, now := range overrideTimes {
		cases = append(cases, goldenCase{name: "overrides@" + now.Format(time.RFC3339Nano), policy: overridePolicy(overrideData), now: now})
	}
	cases = append(cases, goldenCase{name: "mapped", policy: overridePolicy(mappedData), now: overrideTimes[0], variants: true})
	cases[0].variants, cases[1].variants = true, true
	return cases
}

// mappedData classifies tenants in data (by project, enterprise project and tags) and waives by class.
const mappedData = `{"precheck": {
	"config": {"tenants": {
		"by_project": {"89cd04f168b84af6be287f71730fdb4b": "regulated", "00000000000000000000000000000000": "default"},
		"by_enterprise_project": {"0": "default", "ep-1": "regulated"},
		"by_tag": [{"key": "env", "value": "prod", "class": "default"}, {"key": "compliance", "value": "regulated", "class": "regulated"}]}},
	"levels": {"global": {"PRECHECK-OPS-001": "off", "PRECHECK-REQ-007": "warn"}, "tenant_classes": {"default": {"PRECHECK-CLU-001": "warn"}}},
	"waivers": [
		{"rule": "PRECHECK-TEN-001", "scope": {"tenant_class": "regulated"}, "reason": "SM4 keys pending", "owner": "security", "expires": "2027-01-01"},
		{"rule": "PRECHECK-TEN-001", "scope": {"tenant_class": "regulated"}, "reason": "second", "owner": "ops", "expires": "2026-01-01"},
		{"rule": "PRECHECK-CLU-002", "scope": {"project_id": "89cd04f168b84af6be287f71730fdb4b", "cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"}, "reason": "r", "owner": "o", "expires": "2026-06-01T00:00:00Z"}]}}`

// variants are the API page's example with one member at a time replaced by each of a set of values (or
// removed): several hundred documents that walk every rule's branches, wrong types included.
func variants(t *testing.T) map[string][]byte {
	t.Helper()
	base := `{
	"request": {"project_id": "89cd04f168b84af6be287f71730fdb4b", "cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		"body": {"encrypt": {"crypt_algorithm": "generalCipher", "master_key_id": "0f3196c8-5c23-469f-84da-92ecd2499dce", "master_key_name": "KMS-1abd-1016"}}},
	"cluster": {"version": "8.1.3.310", "guest_agent_version": "8.3.0.200", "status": "AVAILABLE", "sub_status": "NORMAL",
		"task_status": "", "action_progress": {}, "encrypted": false, "dr_relationship": false, "enterprise_project_id": "0",
		"tags": [{"key": "env", "value": "prod"}]},
	"key": {"key_id": "0f3196c8-5c23-469f-84da-92ecd2499dce", "key_state": "2", "key_spec": "AES_256"},
	"tenant": {"class": "default"}}`
	paths := [][]string{
		{"request", "project_id"}, {"request", "cluster_id"}, {"request", "body"}, {"request", "body", "encrypt"},
		{"request", "body", "encrypt", "crypt_algorithm"}, {"request", "body", "encrypt", "master_key_id"},
		{"request", "body", "encrypt", "master_key_name"}, {"request", "body", "extra"}, {"request", "body", "encrypt", "extra"},
		{"cluster"}, {"cluster", "version"}, {"cluster", "guest_agent_version"}, {"cluster", "status"}, {"cluster", "sub_status"},
		{"cluster", "task_status"}, {"cluster", "action_progress"}, {"cluster", "encrypted"}, {"cluster", "dr_relationship"},
		{"cluster", "enterprise_project_id"}, {"cluster", "tags"}, {"key"}, {"key", "key_id"}, {"key", "key_state"},
		{"tenant"}, {"tenant", "class"},
	}
	values := []string{`null`, `1`, `true`, `""`, `"x"`, `"8.3.0.1999"`, `"8.0.0-rc1"`, `"v8.3"`, `{}`, `[]`, `"SMcompatible"`,
		`"ACTIVE"`, `"DEGRADED | READONLY"`, `{"a": "b", "c": 1}`, `[{"key": "compliance", "value": "regulated"}]`,
		`"regulated"`, `"bank"`, `"3"`, `"00000000000000000000000000000000"`, `"ep-1"`, `"0f3196c8-5c23-469f-84da-92ecd2499dcf"`,
		`"ABCDEFGH-5c23-469f-84da-92ecd2499dce"`, `"` + strings.Repeat("é", 70) + `"`}
	out := map[string][]byte{}
	for _, path := range paths {
		for i, v := range append(values, "") {
			var doc map[string]any
			if err := json.Unmarshal([]byte(base), &doc); err != nil {
				t.Fatal(err)
			}
			m := doc
			for _, k := range path[:len(path)-1] {
				m = m[k].(map[string]any)
			}
			last := path[len(path)-1]
			name := "variant " + strings.Join(path, ".")
			if v == "" {
				delete(m, last)
				name += " removed"
			} else {
				m[last] = json.RawMessage(v)
				name += fmt.Sprintf(" = #%02d", i)
			}
			data, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = data
		}
	}
	return out
}

func overridePolicy(data string) func(t *testing.T) *policy.Policy {
	return func(t *testing.T) *policy.Policy {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := policy.LoadWithOverrides(dir)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// TestDecisionsAsBefore: both engines give, byte for byte, the decisions recorded before issue #10, for
// every corpus document, on the default policy and on the override with levels and waivers at and around
// their expiry.
func TestDecisionsAsBefore(t *testing.T) {
	t.Parallel()
	withoutRace.Delegate(t)
	docs := corpus(t)
	extra := variants(t)
	var mu sync.Mutex
	got := map[string]json.RawMessage{}
	t.Run("decide", func(t *testing.T) { // returns once its parallel cases have
		for _, c := range goldenCases() {
			all := maps.Clone(docs)
			if c.variants {
				maps.Copy(all, extra)
			}
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				p := c.policy(t)
				clock := policy.WithClock(func() time.Time { return c.now })
				engines := []*policy.Engine{mustEngine(t, p, clock)}
				if !*update {
					engines = append(engines, mustEngine(t, p, clock, policy.WithBackend(wasm.Backend(wasm.Config{}))))
				}
				for _, name := range slices.Sorted(maps.Keys(all)) {
					var first []byte
					for _, e := range engines {
						d, err := e.CheckJSON(context.Background(), all[name])
						var out []byte
						var inErr *policy.InputError
						switch {
						case errors.As(err, &inErr):
							out, _ = json.Marshal(map[string]string{"input_error": err.Error()})
						case err != nil:
							t.Fatalf("%s on %s: %v", name, e.Backend(), err)
						default:
							out, _ = json.Marshal(d)
						}
						if first == nil {
							first = out
						} else if !bytes.Equal(first, out) {
							t.Errorf("%s: engines differ\nrego: %s\nwasm: %s", name, first, out)
						}
					}
					mu.Lock()
					got[c.name+" "+name] = first
					mu.Unlock()
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	if *update {
		// One decision a line, so that a diff shows which ones changed.
		var out bytes.Buffer
		out.WriteString("{\n")
		for i, key := range slices.Sorted(maps.Keys(got)) {
			k, _ := json.Marshal(key)
			fmt.Fprintf(&out, "%s: %s", k, got[key])
			if i < len(got)-1 {
				out.WriteString(",")
			}
			out.WriteString("\n")
		}
		out.WriteString("}\n")
		if err := os.WriteFile(goldenFile, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	data, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	compared := 0
	for key, w := range want {
		g, ok := got[key]
		if !ok {
			t.Errorf("%s: no longer decided", key)
			continue
		}
		compared++
		var buf bytes.Buffer
		if err := json.Compact(&buf, w); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), g) {
			t.Errorf("%s: decision changed\n got %s\nwant %s", key, g, buf.Bytes())
		}
	}
	if compared != len(got) {
		t.Errorf("%d decisions, %d of them in the golden file: run go test ./wasm -run TestDecisionsAsBefore -args -update", len(got), compared)
	}
}

func mustEngine(t *testing.T, p *policy.Policy, opts ...policy.Option) *policy.Engine {
	t.Helper()
	e, err := policy.New(context.Background(), p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}
