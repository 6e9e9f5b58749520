package policy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// FuzzVersionBuiltins: the go-version builtins never panic, give undefined exactly for what go-version
// cannot parse, and order versions consistently.
func FuzzVersionBuiltins(f *testing.F) {
	for _, seed := range [][2]string{
		{"8.3.0.200", "8.3.0.1999"}, {"8.3.0", "8.3.0.200"}, {"8.3.0.200-beta", "8.3.0.200"}, {"10.0.0", "8.0.0"},
		{"v8.3.0.200", "8.3.0.200+meta"}, {"", "8"}, {"8..3", "x"}, {"1.2.3.4.5.6.7.8.9", "99999999999999999999.0"},
		{"8.3.0.200-", "-1"}, {"8.3.0.200 ", " 8.3.0.200"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ta, tb := ast.StringTerm(a), ast.StringTerm(b)
		validA, _ := versionValid(rego.BuiltinContext{}, ta)
		validB, _ := versionValid(rego.BuiltinContext{}, tb)
		ab, err1 := versionCompare(rego.BuiltinContext{}, ta, tb)
		ba, err2 := versionCompare(rego.BuiltinContext{}, tb, ta)
		if err1 != nil || err2 != nil {
			t.Fatalf("errors %v %v: a wrong version must be undefined, not an error", err1, err2)
		}
		bothValid := validA.Value.Compare(ast.Boolean(true)) == 0 && validB.Value.Compare(ast.Boolean(true)) == 0
		if (ab != nil) != bothValid || (ba != nil) != bothValid {
			t.Fatalf("compare(%q, %q) defined=%v, but valid=%v,%v", a, b, ab != nil, validA, validB)
		}
		if ab == nil {
			return
		}
		x, _ := ab.Value.(ast.Number).Int()
		y, _ := ba.Value.(ast.Number).Int()
		if x != -y || x < -1 || x > 1 {
			t.Fatalf("compare(%q, %q) = %d but compare(%q, %q) = %d", a, b, x, b, a, y)
		}
		self, _ := versionCompare(rego.BuiltinContext{}, ta, ta)
		if n, _ := self.Value.(ast.Number).Int(); n != 0 {
			t.Fatalf("compare(%q, %q) = %d", a, a, n)
		}
	})
}

var (
	fuzzEngineOnce sync.Once
	fuzzEngine     *Engine
	fuzzEngineErr  error
)

// FuzzCheckJSON: any bytes give either a clear InputError or a well-formed decision, never a panic or an
// engine error.
func FuzzCheckJSON(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.json")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var c struct {
			Input json.RawMessage `json:"input"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(c.Input))
	}
	for _, seed := range []string{``, `{`, `[]`, `null`, `{"request": null}`, `{"cluster": {"version": 1e400}}`,
		`{"request": {"body": {"encrypt": {"master_key_id": "\u0000"}}}}`, `{"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"tenant": {"class": "__proto__"}, "key": {"key_state": 2}}`, "{\"request\": {\"cluster_id\": \"\xff\xfe\"}}"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzEngineOnce.Do(func() {
			p, err := Default()
			if err != nil {
				fuzzEngineErr = err
				return
			}
			fuzzEngine, fuzzEngineErr = New(context.Background(), p)
		})
		if fuzzEngineErr != nil {
			t.Fatal(fuzzEngineErr)
		}
		d, err := fuzzEngine.CheckJSON(context.Background(), data)
		if err != nil {
			var inErr *InputError
			if !errors.As(err, &inErr) || inErr.Msg == "" {
				t.Fatalf("not a clear input error: %v", err)
			}
			return
		}
		if d.Allowed == (len(d.Violations) > 0) || d.Allowed == (d.Error != nil) {
			t.Fatalf("inconsistent decision %+v", d)
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatal(err)
		}
	})
}
