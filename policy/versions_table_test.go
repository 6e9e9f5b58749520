package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/hashicorp/go-version"
	"github.com/open-policy-agent/opa/v1/rego"

	_ "github.com/precheck/precheck/policy" // registers the dws.* builtins
)

// versionRow is one row of testdata/versions.json, the version table every host's dws.* builtins must
// agree with (examples/node-host checks its JavaScript port against the same file). A and B are JSON
// values, not only strings: the policy passes input members as they came. Compare is nil when
// dws.version_compare is undefined.
type versionRow struct {
	Note    string `json:"note"`
	A       any    `json:"a"`
	B       any    `json:"b"`
	Compare *int   `json:"compare"`
	AValid  bool   `json:"a_valid"`
	BValid  bool   `json:"b_valid"`
}

func loadVersionTable(t *testing.T) []versionRow {
	t.Helper()
	raw, err := os.ReadFile("testdata/versions.json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []versionRow
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatalf("testdata/versions.json: %v", err)
	}
	if len(rows) == 0 {
		t.Fatal("testdata/versions.json has no rows")
	}
	return rows
}

func (r versionRow) String() string {
	return fmt.Sprintf("%s: a=%#v b=%#v", r.Note, r.A, r.B)
}

func showCompare(c *int) string {
	if c == nil {
		return "undefined"
	}
	return fmt.Sprint(*c)
}

// TestVersionTableGoVersion holds the table to hashicorp/go-version itself, so that the table, not a
// port of the library, is the reference other hosts test against.
func TestVersionTableGoVersion(t *testing.T) {
	t.Parallel()
	parse := func(x any) *version.Version {
		s, ok := x.(string)
		if !ok {
			return nil
		}
		v, err := version.NewVersion(s)
		if err != nil {
			return nil
		}
		return v
	}
	for _, r := range loadVersionTable(t) {
		va, vb := parse(r.A), parse(r.B)
		var got *int
		if va != nil && vb != nil {
			c := va.Compare(vb)
			got = &c
		}
		if (va != nil) != r.AValid || (vb != nil) != r.BValid || showCompare(got) != showCompare(r.Compare) {
			t.Errorf("%v: go-version says compare %s, valid %v/%v; the table says %s, %v/%v",
				r, showCompare(got), va != nil, vb != nil, showCompare(r.Compare), r.AValid, r.BValid)
		}
	}
}

// TestVersionTableBuiltins evaluates the dws.* builtins through OPA's rego package, as every precheck
// engine registers them, over the table. Strict builtin errors: a builtin that fails instead of being
// undefined is a failure here, as it would be on a wasm host.
func TestVersionTableBuiltins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pq, err := rego.New(
		rego.Query(`compare := [c | c := dws.version_compare(input.a, input.b)]; a_valid := dws.version_valid(input.a); b_valid := dws.version_valid(input.b)`),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range loadVersionTable(t) {
		rs, err := pq.Eval(ctx, rego.EvalInput(map[string]any{"a": r.A, "b": r.B}))
		if err != nil {
			t.Errorf("%v: %v", r, err)
			continue
		}
		if len(rs) != 1 {
			t.Errorf("%v: %d results, want 1", r, len(rs))
			continue
		}
		b := rs[0].Bindings
		var got *int
		switch cs := b["compare"].([]any); len(cs) {
		case 0:
		case 1:
			n, err := cs[0].(json.Number).Int64()
			if err != nil {
				t.Errorf("%v: dws.version_compare gave %v", r, cs[0])
				continue
			}
			c := int(n)
			got = &c
		default:
			t.Errorf("%v: dws.version_compare gave %d values", r, len(cs))
			continue
		}
		if b["a_valid"] != r.AValid || b["b_valid"] != r.BValid || showCompare(got) != showCompare(r.Compare) {
			t.Errorf("%v: the builtins say compare %s, valid %v/%v; the table says %s, %v/%v",
				r, showCompare(got), b["a_valid"], b["b_valid"], showCompare(r.Compare), r.AValid, r.BValid)
		}
	}
}
