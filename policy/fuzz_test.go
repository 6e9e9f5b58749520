package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/valyala/fastjson"

	"github.com/precheck/precheck/policy/policytest"
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
	WithoutRace.Delegate(f)
	addCorpus(f)
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

func addCorpus(f *testing.F) {
	docs, err := policytest.Corpus("..")
	if err != nil {
		f.Fatal(err)
	}
	for _, d := range docs {
		f.Add(d.JSON)
	}
}

// FuzzReadDocument: a document ReadDocument accepts is read the same by encoding/json (last member wins,
// lone surrogates become U+FFFD), OPA's reader and fastjson (first member wins, lone surrogates kept as
// written), so no reader can see a member or a character the others do not; ReadEnvelope reads it the
// same; and neither ever panics.
func FuzzReadDocument(f *testing.F) {
	addCorpus(f)
	for _, seed := range []string{`{}`, `{"key": {}, "key": {}}`, `{"key": {}, "\u212aey": {}}`, "{\"key\": {}, \"\u212aey\": {}}",
		`{"cluster": {"status": "A", "\u017ftatus": "B"}}`, `{"cluster": {"action_progress": {"a": "1", "A": "2"}}}`,
		`{"request": {"body": {"encrypt": {"crypt_algorithm": "x", "Crypt_Algorithm": "y"}}}}`, `{"request": {"body": {"Encrypt": {}}}}`,
		`{"tenant": {"class": "\ud800"}}`, `{"tenant": {"class": "\udc00\ud800"}}`, `{"tenant": {"class": "\ud800\u0041"}}`,
		`{"tenant": {"class": "\ud83d\ude00"}}`, `{"tenant": {"class": "\\ud800"}}`, `{"tenant": {"\ud800": 1}}`,
		`{"key": {"key_state": 1e999999999}}`, `{"request": {"body": [1e-400, -0, 1.7976931348623157e308]}}`,
		`{"keyy": {}}`, `{"input": {"key": {}}}`, `{"input": {}, "input": {}}`, `{"cluster": {"tags": [{"key": "a", "KEY": "b"}]}}`,
		`{"request": {"body": {"encrypt": {"ma\u017fter_key_id": "x"}}}}`, `{"request": {"body": {"encrypt": {"master_key_id": "\u0030f"}}, "project_id": "p", "cluster_id": 7}}`, "{\"tenant\": {\"class\": \"\xed\xa0\x80\"}}"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ReadDocument(data, DefaultLimits)
		env, envErr := ReadEnvelope(data, DefaultLimits)
		for _, err := range []error{err, envErr} {
			var inErr *InputError
			if err != nil && (!errors.As(err, &inErr) || inErr.Msg == "") {
				t.Fatalf("not a clear input error: %v", err)
			}
		}
		if err != nil {
			return
		}
		if envErr != nil || !bytes.Equal(env.JSON(), doc.JSON()) {
			t.Fatalf("ReadEnvelope reads the document otherwise: %v", envErr)
		}
		if _, err := doc.Value(); err != nil {
			t.Fatalf("OPA cannot read an accepted document: %v", err)
		}
		var std, opa any
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if err := util.UnmarshalJSON(data, &opa); err != nil {
			t.Fatalf("OPA: %v", err)
		}
		fj, err := fastjson.ParseBytes(data)
		if err != nil {
			t.Fatalf("fastjson: %v", err)
		}
		first, err := firstWins(fj)
		if err != nil {
			t.Fatal(err)
		}
		std, opa = floats(std), floats(opa)
		if !reflect.DeepEqual(std, opa) || !reflect.DeepEqual(std, first) {
			t.Fatalf("readers disagree on an accepted document:\nencoding/json %#v\nOPA           %#v\nfirst wins    %#v", std, opa, first)
		}
		project, cluster := doc.RequestIDs()
		ids := [3]string{project, cluster, doc.MasterKeyID()}
		want := [3]string{stringAt(std, "request", "project_id"), stringAt(std, "request", "cluster_id"), stringAt(std, "request", "body", "encrypt", "master_key_id")}
		if ids != want {
			t.Fatalf("the reading found the identifiers %q, encoding/json %q", ids, want)
		}
	})
}

// stringAt is the string at path in v, a value encoding/json decoded, or "" when there is none.
func stringAt(v any, path ...string) string {
	for _, name := range path {
		o, _ := v.(map[string]any)
		v = o[name]
	}
	s, _ := v.(string)
	return s
}

// FuzzNewDocument: NewDocument reads a body as ReadDocument reads the text json.Marshal makes of the Input
// (NewDocument leaves out the check that the text is JSON, which Marshal makes), and refuses what that
// refuses.
func FuzzNewDocument(f *testing.F) {
	for _, seed := range []string{``, `{}`, `{"encrypt": {"crypt_algorithm": "SMcompatible"}}`, `{"encrypt":`, `[1e400]`,
		"\"\xff\"", `{"a": "\ud800"}`, `{"Encrypt": {}}`, `{"encrypt": {}, "encrypt": {}}`, `<>&`, `"\u2028"`,
		strings.Repeat("[", 40) + strings.Repeat("]", 40)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in := &Input{Request: Request{ProjectID: "p", Body: json.RawMessage(body)}}
		doc, err := NewDocument(in, DefaultLimits)
		text, marshalErr := json.Marshal(in)
		if marshalErr != nil {
			if err == nil {
				t.Fatalf("accepted a body json.Marshal refuses: %v", marshalErr)
			}
			return
		}
		read, readErr := ReadDocument(text, DefaultLimits)
		if (err == nil) != (readErr == nil) {
			t.Fatalf("NewDocument: %v; ReadDocument of the same text: %v", err, readErr)
		}
		if err == nil && !bytes.Equal(doc.JSON(), read.JSON()) {
			t.Fatalf("NewDocument's text %q is not the one read, %q", doc.JSON(), read.JSON())
		}
	})
}

// firstWins is fastjson's reading with the first of two equal member names kept, as some servers read
// them, and refuses an object with two names that are equal up to case.
func firstWins(v *fastjson.Value) (any, error) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := map[string]any{}
		var names []string
		var err error
		o.Visit(func(k []byte, v *fastjson.Value) {
			name := string(k)
			for _, prev := range names {
				if strings.EqualFold(prev, name) && err == nil {
					err = fmt.Errorf("members %q and %q in one object", prev, name)
				}
			}
			names = append(names, name)
			x, e := firstWins(v)
			if _, seen := m[name]; !seen {
				m[name] = x
			}
			if err == nil {
				err = e
			}
		})
		return m, err
	case fastjson.TypeArray:
		a, _ := v.Array()
		out := make([]any, len(a))
		for i, e := range a {
			x, err := firstWins(e)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case fastjson.TypeString:
		return string(v.GetStringBytes()), nil
	case fastjson.TypeNumber:
		return strconv.ParseFloat(string(v.MarshalTo(nil)), 64)
	case fastjson.TypeTrue:
		return true, nil
	case fastjson.TypeFalse:
		return false, nil
	}
	return nil, nil
}

// floats reads OPA's json.Number as encoding/json reads a number, so that the readings compare.
func floats(x any) any {
	switch x := x.(type) {
	case map[string]any:
		for k, v := range x {
			x[k] = floats(v)
		}
	case []any:
		for i, v := range x {
			x[i] = floats(v)
		}
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return x
}
