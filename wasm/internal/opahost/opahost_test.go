package opahost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
	"github.com/tetratelabs/wazero"
)

// Test builtins, registered in the process-wide registry the way the
// project registers its own (rego.RegisterBuiltinN), under names no other
// package uses.
const (
	cmpBuiltin  = "opahost_test.cmp"
	echoBuiltin = "opahost_test.echo"
	addBuiltin  = "opahost_test.setadd"
)

func init() {
	// cmp compares two strings: -1/0/1, undefined for "undef", an error for
	// "boom".
	rego.RegisterBuiltin2(&rego.Function{
		Name: cmpBuiltin,
		Decl: types.NewFunction(types.Args(types.S, types.S), types.N),
	}, func(_ rego.BuiltinContext, a, b *ast.Term) (*ast.Term, error) {
		as, _ := a.Value.(ast.String)
		bs, _ := b.Value.(ast.String)
		switch {
		case as == "undef" || bs == "undef":
			return nil, nil
		case as == "boom" || bs == "boom":
			return nil, errors.New("cannot compare boom")
		}
		return ast.IntNumberTerm(strings.Compare(string(as), string(bs))), nil
	})
	rego.RegisterBuiltin1(&rego.Function{
		Name: echoBuiltin,
		Decl: types.NewFunction(types.Args(types.A), types.A),
	}, func(_ rego.BuiltinContext, a *ast.Term) (*ast.Term, error) {
		return a, nil
	})
	// setadd fails unless its first argument really is a set, which is what
	// the host's use of opa_value_dump (not opa_json_dump) guarantees.
	rego.RegisterBuiltin2(&rego.Function{
		Name: addBuiltin,
		Decl: types.NewFunction(types.Args(types.NewSet(types.A), types.A), types.NewSet(types.A)),
	}, func(_ rego.BuiltinContext, s, x *ast.Term) (*ast.Term, error) {
		set, ok := s.Value.(ast.Set)
		if !ok {
			return nil, fmt.Errorf("want a set, got %s", ast.ValueName(s.Value))
		}
		out := set.Copy()
		out.Add(x)
		return ast.NewTerm(out), nil
	})
}

// topdownResult evaluates query with OPA's interpreter and renders the
// result set the way opa_eval does: [{"result": value}], or [] if undefined.
func topdownResult(t *testing.T, sources map[string]string, data, input, query string, now time.Time) []byte {
	t.Helper()
	pq := preparedTopdown(t, sources, data, query)
	opts := []rego.EvalOption{rego.EvalTime(now)}
	if input != "" {
		// Numbers as json.Number, so big ones keep their digits in topdown
		// as they do in wasm.
		opts = append(opts, rego.EvalInput(normJSON(t, []byte(input))))
	}
	rs, err := pq.Eval(context.Background(), opts...)
	if err != nil {
		t.Fatalf("topdown %s: %v", query, err)
	}
	out := []any{}
	for _, r := range rs {
		out = append(out, map[string]any{"result": r.Expressions[0].Value})
	}
	return mustJSON(t, out)
}

// prepared keeps topdown's prepared queries by what they were prepared from: the tables decide many inputs
// on one query, and preparing compiles the policy (slowly, under the race detector).
var prepared sync.Map

func preparedTopdown(t *testing.T, sources map[string]string, data, query string) rego.PreparedEvalQuery {
	t.Helper()
	key := fmt.Sprintf("%v\x00%s\x00%s", sources, data, query)
	if pq, ok := prepared.Load(key); ok {
		return pq.(rego.PreparedEvalQuery)
	}
	opts := []func(*rego.Rego){rego.Query(query)}
	for name, src := range sources {
		opts = append(opts, rego.Module(name, src))
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		t.Fatal(err)
	}
	opts = append(opts, rego.Store(inmemStore(d)))
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatalf("topdown %s: %v", query, err)
	}
	prepared.Store(key, pq)
	return pq
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// normJSON decodes JSON into Go values with numbers as json.Number, so big
// numbers keep their digits.
func normJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// canon makes two JSON results comparable: numbers by value (the wasm side
// keeps the input's spelling, -3e2, where topdown may print -300), and the
// arrays at setPaths (paths below [0].result, "" for the result itself)
// sorted, because a set is rendered in the module's internal order in wasm
// and sorted by topdown.
func canon(t *testing.T, b []byte, setPaths ...string) any {
	t.Helper()
	v := canonNumbers(normJSON(t, b))
	rs, _ := v.([]any)
	for _, r := range rs {
		obj, _ := r.(map[string]any)
		for _, path := range setPaths {
			sortArrayAt(obj, append([]string{"result"}, splitPath(path)...))
		}
	}
	return v
}

func splitPath(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, ".")
}

func sortArrayAt(obj map[string]any, path []string) {
	cur := any(obj)
	for i, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return
		}
		if i == len(path)-1 {
			if arr, ok := m[k].([]any); ok {
				sort.Slice(arr, func(a, b int) bool {
					ja, _ := json.Marshal(arr[a])
					jb, _ := json.Marshal(arr[b])
					return string(ja) < string(jb)
				})
			}
			return
		}
		cur = m[k]
	}
}

func canonNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		r, ok := new(big.Rat).SetString(string(v))
		if !ok {
			return string(v)
		}
		return "num:" + r.RatString()
	case []any:
		for i := range v {
			v[i] = canonNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = canonNumbers(v[k])
		}
	}
	return v
}

const diffPolicy = `package diff

default allow := false

allow if {
	input.user in data.admins
}

allow if {
	some grant in data.grants[input.user]
	grant.action == input.action
	glob.match(grant.resource, ["/"], input.resource)
}

deny contains msg if {
	some c in input.containers
	not startswith(c.image, "registry.local/")
	msg := sprintf("container %q uses image %q from an untrusted registry", [c.name, c.image])
}

deny contains msg if {
	some c in input.containers
	c.privileged
	msg := concat(" ", ["container", c.name, "is privileged"])
}

summary := {
	"containers": count(object.get(input, "containers", [])),
	"ports": sort([p | some c in input.containers; some p in c.ports]),
	"total_ports": sum([p | some c in input.containers; some p in c.ports]),
	"names": {c.name | some c in input.containers},
	"upper": [upper(c.name) | some c in input.containers],
	"ratio": count(object.get(input, "containers", [])) / 4,
}

every_trusted if {
	every c in input.containers {
		startswith(c.image, "registry.local/")
	}
}
`

const diffData = `{
	"admins": ["root", "alice"],
	"grants": {
		"bob": [{"action": "read", "resource": "/docs/*"}, {"action": "write", "resource": "/tmp/*"}]
	}
}`

func TestDifferentialAgainstTopdown(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	sources := map[string]string{"diff.rego": diffPolicy}
	eps := []string{"diff/allow", "diff/deny", "diff/summary", "diff/every_trusted"}
	module := compileWasm(t, sources, nil, eps...)
	p := mustLoad(t, module, []byte(diffData), Config{})
	guarded := mustLoad(t, module, []byte(diffData), Config{Interruptible: true})

	inputs := []struct{ name, input string }{
		{"admin", `{"user":"alice"}`},
		{"grant match", `{"user":"bob","action":"read","resource":"/docs/a"}`},
		{"grant glob mismatch", `{"user":"bob","action":"read","resource":"/docs/a/b"}`},
		{"grant wrong action", `{"user":"bob","action":"delete","resource":"/tmp/x"}`},
		{"unknown user", `{"user":"mallory","action":"read","resource":"/docs/a"}`},
		{"containers", `{"containers":[
			{"name":"web","image":"docker.io/nginx","ports":[80,443],"privileged":false},
			{"name":"db","image":"registry.local/pg","ports":[5432],"privileged":true},
			{"name":"side \"car\" ü","image":"quay.io/x\ty","ports":[]}]}`},
		{"trusted containers", `{"containers":[{"name":"a","image":"registry.local/a","ports":[1]}]}`},
		{"no input", ``},
		{"scalar input", `42`},
	}
	sets := map[string][]string{"diff/deny": {""}, "diff/summary": {"names"}}
	// Both compilations, and the fast one under a context that can end (on
	// the instance's goroutine).
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	type run struct {
		p   *Policy
		ctx context.Context
	}
	contexts := map[string]run{"fast": {p, context.Background()}, "fast, cancellable": {p, cancellable}, "guarded": {guarded, cancellable}}
	for _, tc := range inputs {
		for _, ep := range eps {
			t.Run(tc.name+"/"+ep, func(t *testing.T) {
				query := "data." + strings.ReplaceAll(ep, "/", ".")
				want := topdownResult(t, sources, diffData, tc.input, query, time.Now())
				for variant, r := range contexts {
					got, err := r.p.Eval(r.ctx, entrypoint(t, r.p, ep), []byte(tc.input), EvalOptions{})
					if err != nil {
						t.Fatalf("%s Eval: %v", variant, err)
					}
					if !reflect.DeepEqual(canon(t, got, sets[ep]...), canon(t, want, sets[ep]...)) {
						t.Errorf("%s wasm %s\n        topdown %s", variant, got, want)
					}
				}
			})
		}
	}
}

const builtinPolicy = `package b

order := opahost_test.cmp(input.a, input.b)

newer if opahost_test.cmp(input.a, input.b) == 1

not_newer if not newer

# true whenever the builtin yields any value at all
cmp_defined if opahost_test.cmp(input.a, input.b)

greeting := sprintf("%s is %d years old", [input.a, count(input.a)])

now := time.now_ns()

echo := opahost_test.echo(input.v)

echo_set := opahost_test.echo({1, "two", [3]})

echo_keys := opahost_test.echo({1: "one", "k": {true: null}})

setadd := opahost_test.setadd({"x", "y"}, input.a)

split_parts := split(input.a, ".")
`

func TestBuiltins(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	sources := map[string]string{"b.rego": builtinPolicy}
	eps := []string{"b/order", "b/newer", "b/not_newer", "b/cmp_defined", "b/greeting", "b/now",
		"b/echo", "b/echo_set", "b/echo_keys", "b/setadd", "b/split_parts"}
	p := mustLoad(t, compileWasm(t, sources, nil, eps...), nil, Config{})

	wantBuiltins := []string{cmpBuiltin, echoBuiltin, addBuiltin, "sprintf", "time.now_ns"}
	if got := p.Builtins(); !reflect.DeepEqual(got, wantBuiltins) {
		t.Errorf("Builtins() = %v, want %v", got, wantBuiltins)
	}

	now := time.Date(2024, 2, 29, 12, 0, 0, 123, time.UTC)
	cases := []struct {
		name, ep, input string
		sets            []string
	}{
		{name: "defined", ep: "b/order", input: `{"a":"b","b":"a"}`},
		{name: "equal", ep: "b/order", input: `{"a":"x","b":"x"}`},
		{name: "undefined result is undefined", ep: "b/order", input: `{"a":"undef","b":"a"}`},
		{name: "rule on defined", ep: "b/newer", input: `{"a":"b","b":"a"}`},
		{name: "rule on undefined is undefined", ep: "b/newer", input: `{"a":"undef","b":"a"}`},
		{name: "negation of undefined", ep: "b/not_newer", input: `{"a":"undef","b":"a"}`},
		{name: "sprintf", ep: "b/greeting", input: `{"a":"héllo"}`},
		{name: "time", ep: "b/now", input: `{}`},
		{name: "echo object", ep: "b/echo", input: `{"v":{"a":[1,2.5,-3e2,true,null],"b":"q\"\\\n\t\u0001 ü 😀"}}`},
		{name: "echo big number", ep: "b/echo", input: `{"v":123456789012345678901234567890}`},
		{name: "echo set", ep: "b/echo_set", input: `{}`, sets: []string{""}},
		{name: "echo non-string keys", ep: "b/echo_keys", input: `{}`},
		{name: "set argument and result", ep: "b/setadd", input: `{"a":"z"}`, sets: []string{""}},
		{name: "native split", ep: "b/split_parts", input: `{"a":"a.b.c"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Eval(context.Background(), entrypoint(t, p, tc.ep), []byte(tc.input), EvalOptions{Time: now})
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			query := "data." + strings.ReplaceAll(tc.ep, "/", ".")
			want := topdownResult(t, sources, `{}`, tc.input, query, now)
			if !reflect.DeepEqual(canon(t, got, tc.sets...), canon(t, want, tc.sets...)) {
				t.Errorf("wasm %s\n     topdown %s", got, want)
			}
		})
	}

	t.Run("time is the eval option", func(t *testing.T) {
		got, err := p.Eval(context.Background(), entrypoint(t, p, "b/now"), nil, EvalOptions{Time: now})
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`[{"result":%d}]`, now.UnixNano()); string(got) != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})

	t.Run("undefined is not an error and not true", func(t *testing.T) {
		ep := entrypoint(t, p, "b/cmp_defined")
		got, err := p.Eval(context.Background(), ep, []byte(`{"a":"undef","b":"a"}`), EvalOptions{})
		if err != nil || string(got) != "[]" {
			t.Errorf("got %s, %v; want [] and no error", got, err)
		}
		got, err = p.Eval(context.Background(), ep, []byte(`{"a":"b","b":"a"}`), EvalOptions{})
		if err != nil || string(got) != `[{"result":true}]` {
			t.Errorf("defined case: got %s, %v", got, err)
		}
	})

	t.Run("error names the builtin", func(t *testing.T) {
		ep := entrypoint(t, p, "b/order")
		_, err := p.Eval(context.Background(), ep, []byte(`{"a":"boom","b":"a"}`), EvalOptions{})
		if err == nil || !strings.Contains(err.Error(), cmpBuiltin) || !strings.Contains(err.Error(), "cannot compare boom") {
			t.Fatalf("err = %v, want an error naming %s and its message", err, cmpBuiltin)
		}
		got, err := p.Eval(context.Background(), ep, []byte(`{"a":"b","b":"a"}`), EvalOptions{})
		if err != nil || string(got) != `[{"result":1}]` {
			t.Errorf("eval after builtin error: %s, %v", got, err)
		}
	})
}

func TestLoadFailsOnUnservedBuiltins(t *testing.T) {
	withoutRace.Delegate(t)
	caps := ast.CapabilitiesForThisVersion()
	for _, name := range []string{"opahost_test.nowhere_b", "opahost_test.nowhere_a"} {
		caps.Builtins = append(caps.Builtins, &ast.Builtin{
			Name: name,
			Decl: types.NewFunction(types.Args(types.S), types.S),
		})
	}
	mod := compileWasm(t, map[string]string{"m.rego": `package m
x := opahost_test.nowhere_b(opahost_test.nowhere_a(input.s))
y := sprintf("%v", [input.s])
`}, caps, "m/x", "m/y")
	p, err := Load(context.Background(), mod, nil, Config{})
	if err == nil {
		p.Close(context.Background())
		t.Fatal("Load succeeded, want an error naming the missing builtins")
	}
	want := `opahost: builtins ["opahost_test.nowhere_a" "opahost_test.nowhere_b"] imported by the module are not available`
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}

const abortPolicy = `package a

x := 1 if input.a
x := 2 if input.b
`

func TestAbortThenRecover(t *testing.T) {
	t.Parallel()
	p := mustLoad(t, compileWasm(t, map[string]string{"a.rego": abortPolicy}, nil, "a/x"), nil, Config{MaxInstances: 1})
	ep := entrypoint(t, p, "a/x")
	_, err := p.Eval(context.Background(), ep, []byte(`{"a":true,"b":true}`), EvalOptions{})
	var ab *AbortError
	if !errors.As(err, &ab) {
		t.Fatalf("err = %v (%T), want *AbortError", err, err)
	}
	if ab.Message == "" || !strings.HasPrefix(err.Error(), "opahost: policy aborted: ") {
		t.Errorf("abort error %q has no message", err)
	}
	t.Logf("abort: %v", err)
	for _, tc := range []struct{ in, want string }{
		{`{"a":true}`, `[{"result":1}]`},
		{`{"b":true}`, `[{"result":2}]`},
		{`{}`, `[]`},
	} {
		got, err := p.Eval(context.Background(), ep, []byte(tc.in), EvalOptions{})
		if err != nil || string(got) != tc.want {
			t.Errorf("after abort, Eval(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// slowPolicy runs for about input.n squared iterations in wasm code with
// little memory: the two ranges are n numbers each and the comprehension
// keeps only n-1 of the pairs.
const slowPolicy = `package slow

pairs := count([1 |
	some i in numbers.range(1, input.n)
	some j in numbers.range(1, input.n)
	i == j + 1
])
`

// An untrusted module (Interruptible) is stopped when the context ends.
func TestContextInterruptsEvaluation(t *testing.T) {
	t.Parallel()
	p := mustLoad(t, compileWasm(t, map[string]string{"s.rego": slowPolicy}, nil, "slow/pairs"), nil, Config{MaxInstances: 1, Interruptible: true})
	ep := entrypoint(t, p, "slow/pairs")
	long := []byte(`{"n":100000}`) // ~10^10 iterations: hours if not interrupted

	check := func(t *testing.T, ctx context.Context, want error) {
		start := time.Now()
		_, err := p.Eval(ctx, ep, long, EvalOptions{})
		if !errors.Is(err, want) {
			t.Fatalf("err = %v, want errors.Is %v", err, want)
		}
		t.Logf("after %v: %v", time.Since(start), err)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("interruption took %v", d)
		}
		got, err := p.Eval(context.Background(), ep, []byte(`{"n":100}`), EvalOptions{})
		if err != nil || string(got) != `[{"result":99}]` {
			t.Errorf("after interruption, Eval = %s, %v; want [{\"result\":99}]", got, err)
		}
	}
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		check(t, ctx, context.DeadlineExceeded)
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		check(t, ctx, context.Canceled)
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		check(t, ctx, context.Canceled)
	})
	t.Run("waiting for an instance", func(t *testing.T) {
		// The only instance is busy with a long evaluation; a second caller
		// must give up when its context ends rather than wait for it.
		busyCtx, stopBusy := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Eval(busyCtx, ep, long, EvalOptions{})
		}()
		time.Sleep(50 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := p.Eval(ctx, ep, []byte(`{"n":3}`), EvalOptions{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want DeadlineExceeded", err)
		}
		stopBusy()
		<-done
	})
}

func TestMemoryLimit(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	const pages = 32 // 2 MiB
	mod := compileWasm(t, map[string]string{"m.rego": `package m
n := count(input.items)
`}, nil, "m/n")
	p := mustLoad(t, mod, nil, Config{MemoryLimitPages: pages, MaxInstances: 1})
	ep := entrypoint(t, p, "m/n")

	items := func(n int) []byte {
		var b bytes.Buffer
		b.WriteString(`{"items":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":%d,"name":"item-%d"}`, i, i)
		}
		b.WriteString(`]}`)
		return b.Bytes()
	}
	ok := func(t *testing.T) {
		t.Helper()
		got, err := p.Eval(context.Background(), ep, items(3), EvalOptions{})
		if err != nil || string(got) != `[{"result":3}]` {
			t.Fatalf("small eval = %s, %v", got, err)
		}
	}

	t.Run("input larger than the cap", func(t *testing.T) {
		big := items(200000) // ~6 MB
		_, err := p.Eval(context.Background(), ep, big, EvalOptions{})
		if !errors.Is(err, ErrMemoryLimit) {
			t.Fatalf("err = %v, want ErrMemoryLimit", err)
		}
		t.Log(err)
		if !strings.Contains(err.Error(), fmt.Sprint(len(big))) {
			t.Errorf("error %q does not give the input size", err)
		}
		ok(t)
	})
	t.Run("parsed input larger than the cap", func(t *testing.T) {
		// ~1 MB of JSON fits, but its parsed form does not.
		_, err := p.Eval(context.Background(), ep, items(30000), EvalOptions{})
		if !errors.Is(err, ErrMemoryLimit) {
			t.Fatalf("err = %v, want ErrMemoryLimit", err)
		}
		t.Log(err)
		ok(t)
	})
	t.Run("input that needs memory growth", func(t *testing.T) {
		// Bigger than the initial memory, well within the cap: the grow path.
		for range 3 {
			got, err := p.Eval(context.Background(), ep, items(3000), EvalOptions{})
			if err != nil || string(got) != `[{"result":3000}]` {
				t.Fatalf("Eval = %s, %v", got, err)
			}
		}
		ok(t)
	})
	t.Run("data larger than the cap", func(t *testing.T) {
		data := fmt.Appendf(nil, `{"blob":%q}`, strings.Repeat("x", 3<<20))
		_, err := Load(context.Background(), mod, data, Config{MemoryLimitPages: pages, CompilationCache: machineCode})
		if !errors.Is(err, ErrMemoryLimit) {
			t.Fatalf("err = %v, want ErrMemoryLimit", err)
		}
		t.Log(err)
	})
	t.Run("limit below module minimum", func(t *testing.T) {
		_, err := Load(context.Background(), mod, nil, Config{MemoryLimitPages: 1, CompilationCache: machineCode})
		if err == nil || !strings.Contains(err.Error(), "memory limit of 1 pages") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestEntrypointsAndABI(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	mod := compileWasm(t, map[string]string{"e.rego": `package e
a := 1
b := 2
c := {"x": input.x}
`}, nil, "e/a", "e/b", "e/c")
	p := mustLoad(t, mod, nil, Config{})
	eps := p.Entrypoints()
	if len(eps) != 3 {
		t.Fatalf("Entrypoints() = %v, want 3", eps)
	}
	for name, want := range map[string]string{"e/a": `[{"result":1}]`, "e/b": `[{"result":2}]`, "e/c": `[{"result":{"x":"y"}}]`} {
		got, err := p.Eval(context.Background(), eps[name], []byte(`{"x":"y"}`), EvalOptions{})
		if err != nil || string(got) != want {
			t.Errorf("%s: %s, %v; want %s", name, got, err, want)
		}
	}
	eps["e/a"] = 99 // the caller's copy
	if p.Entrypoints()["e/a"] == 99 {
		t.Error("Entrypoints returned the policy's own map")
	}
	if _, err := p.Eval(context.Background(), 7, nil, EvalOptions{}); err == nil || !strings.Contains(err.Error(), "unknown entrypoint id 7") {
		t.Errorf("Eval(unknown entrypoint) err = %v", err)
	}

	in, err := p.acquire(context.Background(), p.fast)
	if err != nil {
		t.Fatal(err)
	}
	major, minor := in.global("opa_wasm_abi_version"), in.global("opa_wasm_abi_minor_version")
	p.release(context.Background(), in)
	if major != 1 || minor < 2 {
		t.Errorf("ABI %d.%d", major, minor)
	}

	t.Run("old minor version refused", func(t *testing.T) {
		old := setABIMinor(t, mod, 1)
		_, err := Load(context.Background(), old, nil, Config{})
		if err == nil || !strings.Contains(err.Error(), "ABI 1.1") {
			t.Errorf("err = %v, want a refusal naming ABI 1.1", err)
		}
	})
	t.Run("not a policy", func(t *testing.T) {
		_, err := Load(context.Background(), glueModule(1, 2), nil, Config{})
		if err == nil || !strings.Contains(err.Error(), "missing exports") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("bad data", func(t *testing.T) {
		for _, data := range []string{`{"a":`, `[1]`} {
			if _, err := Load(context.Background(), mod, []byte(data), Config{CompilationCache: machineCode}); err == nil {
				t.Errorf("Load with data %s succeeded", data)
			}
		}
	})
}

// setABIMinor rewrites the initialiser of the opa_wasm_abi_minor_version
// global, to fake a module of an older ABI.
func setABIMinor(t *testing.T, mod []byte, minor byte) []byte {
	t.Helper()
	out := bytes.Clone(mod)
	readU32 := func(b []byte, i *int) uint32 {
		var v uint32
		for shift := 0; ; shift += 7 {
			c := b[*i]
			*i++
			v |= uint32(c&0x7f) << shift
			if c&0x80 == 0 {
				return v
			}
		}
	}
	var globalIdx = -1
	var globalSec int // offset of the global section body
	for i := 8; i < len(out); {
		id := out[i]
		i++
		size := int(readU32(out, &i))
		body := i
		switch id {
		case 6:
			globalSec = body
		case 7:
			j := body
			for n := readU32(out, &j); n > 0; n-- {
				l := int(readU32(out, &j))
				name := string(out[j : j+l])
				j += l
				kind := out[j]
				j++
				idx := readU32(out, &j)
				if kind == 3 && name == "opa_wasm_abi_minor_version" {
					globalIdx = int(idx)
				}
			}
		}
		i = body + size
	}
	if globalIdx < 0 || globalSec == 0 {
		t.Fatal("no ABI minor version global")
	}
	// Globals here are all "type mut i32.const <leb> end"; no global is
	// imported, so the export index is the section index.
	j := globalSec
	n := int(readU32(out, &j))
	for g := range n {
		j += 2 // value type, mutability
		if out[j] != 0x41 {
			t.Fatalf("global %d init is not i32.const", g)
		}
		j++
		if g == globalIdx {
			if out[j]&0x80 != 0 {
				t.Fatal("unexpected multi-byte minor version")
			}
			out[j] = minor
			return out
		}
		readU32(out, &j)
		if out[j] != 0x0b {
			t.Fatalf("global %d init is not a single instruction", g)
		}
		j++
	}
	t.Fatal("global not found")
	return nil
}

func TestGlueModule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for _, lim := range [][2]uint32{{2, 2}, {2, 1024}, {17, 65536}} {
		cm, err := r.CompileModule(ctx, glueModule(lim[0], lim[1]))
		if err != nil {
			t.Fatalf("glue %v does not compile: %v", lim, err)
		}
		mem, ok := cm.ExportedMemories()["memory"]
		if !ok {
			t.Fatalf("glue %v exports no memory", lim)
		}
		max, hasMax := mem.Max()
		if mem.Min() != lim[0] || !hasMax || max != lim[1] {
			t.Errorf("glue memory = %d..%d (max %v), want %d..%d", mem.Min(), max, hasMax, lim[0], lim[1])
		}
		var imports []string
		for _, f := range cm.ImportedFunctions() {
			m, n, _ := f.Import()
			imports = append(imports, m+"."+n)
		}
		for _, h := range hostImports {
			if !strings.Contains(strings.Join(imports, " "), hostModuleName+"."+h.name) {
				t.Errorf("glue does not import %s", h.name)
			}
			if _, ok := cm.ExportedFunctions()[h.name]; !ok {
				t.Errorf("glue does not export %s", h.name)
			}
		}
	}
}

func TestConcurrentEvals(t *testing.T) {
	t.Parallel()
	sources := map[string]string{"c.rego": `package c
result := {
	"double": input.n * 2,
	"label": sprintf("n=%d", [input.n]),
	"newer": opahost_test.cmp(sprintf("%05d", [input.n]), "00500"),
}
`}
	p := mustLoad(t, compileWasm(t, sources, nil, "c/result"), nil, Config{MaxInstances: 4})
	ep := entrypoint(t, p, "c/result")

	// Odd goroutines use a cancellable context: they run the same fast code,
	// on the instance's own goroutine.
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	const goroutines, evals = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if g%2 == 1 {
				ctx = cancellable
			}
			for i := range evals {
				n := g*evals + i
				got, err := p.Eval(ctx, ep, fmt.Appendf(nil, `{"n":%d}`, n), EvalOptions{})
				if err != nil {
					errs <- err
					return
				}
				want := fmt.Sprintf(`[{"result":{"double":%d,"label":"n=%d","newer":%d}}]`, 2*n, n, cmp(n, 500))
				if !reflect.DeepEqual(canon(t, got), canon(t, []byte(want))) {
					errs <- fmt.Errorf("n=%d: got %s, want %s", n, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	p.mu.Lock()
	idle, live := len(p.fast.idle), p.live
	p.mu.Unlock()
	if idle != live || live > 4 || live < 1 {
		t.Errorf("%d idle of %d live instances after the run, MaxInstances is 4", idle, live)
	}
	if s := p.State(); s.Interruptible || s.Abandoned != 0 || s.Runaways != 0 {
		t.Errorf("state after the run: %+v", s)
	}
}

func cmp(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestPrint(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	dir := map[string]string{"p.rego": `package p
x if {
	print("user is", input.user)
}
`}
	mod := compileWasmPrint(t, dir, "p/x")
	var out bytes.Buffer
	p := mustLoad(t, mod, nil, Config{Print: &out})
	got, err := p.Eval(context.Background(), entrypoint(t, p, "p/x"), []byte(`{"user":"alice"}`), EvalOptions{})
	if err != nil || string(got) != `[{"result":true}]` {
		t.Fatalf("Eval = %s, %v", got, err)
	}
	if !strings.Contains(out.String(), "user is alice") {
		t.Errorf("print output %q", out.String())
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	mod := compileWasm(t, map[string]string{"e.rego": "package e\na := 1\n"}, nil, "e/a")
	p, err := Load(context.Background(), mod, nil, Config{CompilationCache: machineCode})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Eval(context.Background(), 0, nil, EvalOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Eval after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCompilationCache(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	cache := wazero.NewCompilationCache()
	defer cache.Close(context.Background())
	mod := compileWasm(t, map[string]string{"e.rego": "package e\na := input.x\n"}, nil, "e/a")
	for range 2 {
		p := mustLoad(t, mod, nil, Config{CompilationCache: cache})
		got, err := p.Eval(context.Background(), 0, []byte(`{"x":[1]}`), EvalOptions{})
		if err != nil || string(got) != `[{"result":[1]}]` {
			t.Errorf("Eval = %s, %v", got, err)
		}
	}
}
