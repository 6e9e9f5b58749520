package policy

import (
	"context"
	"reflect"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
)

// The load-time rewrite answers what OPA answers for the modules as written, rule by rule: a rule's
// METADATA for its own body, nothing for an else branch (OPA gives an else branch no annotations of its
// own), a `with` on data still seen by the rules it reaches.
func TestSpecializeAnswersAsWritten(t *testing.T) {
	t.Parallel()
	const src = `package x

# METADATA
# custom:
#   code: X-1
first := rego.metadata.rule().custom.code if {
	input.a == 1
} else := object.get(rego.metadata.rule(), ["custom", "code"], "none in else")

limit := data.cfg.limit

over if input.n > limit

over_with_other_data if {
	over with data.cfg.limit as 100
}
`
	m, err := ast.ParseModuleWithOpts("x.rego", src, ast.ParserOptions{ProcessAnnotation: true})
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"cfg": map[string]any{"limit": 5}}
	files := []bundle.ModuleFile{{Path: "x.rego", URL: "x.rego", Parsed: m, Raw: []byte(src)}}
	eval := func(files []bundle.ModuleFile, input map[string]any) any {
		opts := []func(*rego.Rego){rego.Query("data.x"), rego.Input(input), rego.Data(data)}
		for _, f := range files {
			opts = append(opts, rego.ParsedModule(f.Parsed))
		}
		rs, err := rego.New(opts...).Eval(context.Background())
		if err != nil || len(rs) != 1 {
			t.Fatalf("eval: %v %v", rs, err)
		}
		return rs[0].Expressions[0].Value
	}
	for _, input := range []map[string]any{{"a": 1, "n": 10}, {"a": 2, "n": 10}, {"a": 2, "n": 3}} {
		for _, forWasm := range []bool{false, true} {
			want := eval(files, input)
			got := eval(specialize(files, data, forWasm), input)
			if ast.MustInterfaceToValue(got).Compare(ast.MustInterfaceToValue(want)) != 0 {
				t.Errorf("input %v, for wasm %v: rewritten %v, as written %v", input, forWasm, got, want)
			}
		}
	}
}

// A package may span files, and so may a rule: a rule that is a literal in one file is not one when
// another file defines it too. As written, the two definitions conflict when both hold, which OPA reports
// as an error; the rewrite must not turn that into one file's value (an override redefining the
// thresholds would otherwise be ignored without a word).
func TestSpecializeSeesEveryFileOfAPackage(t *testing.T) {
	t.Parallel()
	sources := map[string]string{
		"lib.rego":      "package lib\n\nlimit := data.cfg.limit\n\ncfg := data.cfg\n",
		"override.rego": "package lib\n\nlimit := 100 if input.raise\n\ncfg := {\"limit\": 100} if input.raise\n",
		"x.rego":        "package x\n\nimport data.lib\n\nover if input.n > lib.limit\n\nover_cfg if input.n > lib.cfg.limit\n",
	}
	var files []bundle.ModuleFile
	for _, name := range []string{"lib.rego", "override.rego", "x.rego"} {
		m, err := ast.ParseModuleWithOpts(name, sources[name], ast.ParserOptions{})
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, bundle.ModuleFile{Path: name, URL: name, Parsed: m, Raw: []byte(sources[name])})
	}
	data := map[string]any{"cfg": map[string]any{"limit": 5}}
	eval := func(files []bundle.ModuleFile, query string, input map[string]any) (any, error) {
		opts := []func(*rego.Rego){rego.Query(query), rego.Input(input), rego.Data(data)}
		for _, f := range files {
			opts = append(opts, rego.ParsedModule(f.Parsed))
		}
		rs, err := rego.New(opts...).Eval(context.Background())
		if err != nil || len(rs) == 0 {
			return nil, err
		}
		return rs[0].Expressions[0].Value, nil
	}
	for _, query := range []string{"data.x.over", "data.x.over_cfg"} { // a scalar in data, and an object
		for _, input := range []map[string]any{{"n": 10}, {"n": 3}, {"n": 10, "raise": true}} {
			for _, forWasm := range []bool{false, true} {
				want, wantErr := eval(files, query, input)
				got, gotErr := eval(specialize(files, data, forWasm), query, input)
				if (wantErr == nil) != (gotErr == nil) || !reflect.DeepEqual(want, got) {
					t.Errorf("%s, input %v, for wasm %v: rewritten %v (%v), as written %v (%v)", query, input, forWasm, got, gotErr, want, wantErr)
				}
			}
		}
	}
}
