package hookmodule_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/precheck/precheck/plugin/hookmodule"
	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
)

// The Go modules the tests use, built from source once per test binary.
const (
	probeModule  = "probe"  // testdata/probe: what it does is chosen by the document's request.body.probe
	freezeModule = "freeze" // examples/hooks/freeze, built with freezeWindows
)

// freezeWindows are the freeze windows the tests build the freeze hook with: one long past, one far ahead.
const freezeWindows = "2020-12-20T00:00:00Z/2021-01-05T00:00:00Z,2036-12-20T00:00:00Z/2037-01-05T00:00:00Z"

var built struct {
	once  sync.Once
	dir   string
	paths map[string]string
	// cacheDir holds the machine code of the Go hook modules (see testdata/precompile), and cache reads
	// it. Tests load the modules with Config.Cache set to it, through loadBuilt.
	cacheDir string
	cache    wazero.CompilationCache
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.cache != nil {
		built.cache.Close(context.Background())
	}
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	policytest.Exit(code)
}

// builtPath returns the file of a Go hook module, building them all the first time: with the local
// toolchain (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared), all at once. Then testdata/precompile,
// a program built without -race, compiles them to machine code into a cache directory: wazero's compiler
// takes a few seconds for a Go module, but a minute when it runs in the test binary, under the race
// detector. wazero's machine code is the same whichever binary compiled it.
func builtPath(name string) (string, error) {
	built.once.Do(func() { built.err = buildModules() })
	if built.err != nil {
		return "", built.err
	}
	return built.paths[name], nil
}

func module(tb testing.TB, name string) []byte {
	tb.Helper()
	path, err := builtPath(name)
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// compiledCache returns the cache that holds the machine code of the Go hook modules.
func compiledCache(tb testing.TB) wazero.CompilationCache {
	tb.Helper()
	if _, err := builtPath(probeModule); err != nil {
		tb.Fatal(err)
	}
	return built.cache
}

// loadBuilt loads a Go hook module the tests built, with cfg and the cache of its machine code. A zero
// cfg.Timeout is a minute, not DefaultTimeout: creating an instance of a Go module takes a while under
// -race on a busy machine, and only the tests of the time limit should meet one.
func loadBuilt(tb testing.TB, name string, cfg hookmodule.Config) *hookmodule.Module {
	tb.Helper()
	cfg.Cache = compiledCache(tb)
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	return load(tb, module(tb, name), cfg)
}

// buildModules fills in built.
func buildModules() error {
	dir, err := os.MkdirTemp("", "hookmodule-test")
	if err != nil {
		return err
	}
	built.dir = dir
	specs := map[string][]string{
		probeModule:  {"./testdata/probe"},
		freezeModule: {"-ldflags", "-X main.freezeWindows=" + freezeWindows, "../../examples/hooks/freeze"},
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []string
	)
	paths := map[string]string{}
	for name, args := range specs {
		wg.Go(func() {
			out := filepath.Join(dir, name+".wasm")
			cmd := policytest.GoCommand(append([]string{"build", "-buildmode=c-shared", "-o", out}, args...)...)
			// GOFLAGS is cleared: a -race or -cover meant for the test binary does not apply to wasm.
			cmd.Env = append(cmd.Env, "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=")
			msg, err := cmd.CombinedOutput()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Sprintf("building %s (go build %s): %v\n%s", name, strings.Join(args, " "), err, msg))
				return
			}
			paths[name] = out
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}

	// wazero files its cache under its version, which it reads from the binary's build information: a
	// test binary has none of its dependencies' and says "dev". The precompiler is told to say the same.
	cacheDir := machineCodeDir(dir)
	args := []string{"run", "-ldflags=-X=github.com/tetratelabs/wazero/internal/version.version=" + wazeroVersion(),
		"./testdata/precompile", cacheDir, paths[probeModule], paths[freezeModule]}
	cmd := policytest.GoCommand(args...) // without -race: that is the point
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("precompiling the hook modules (go %s): %v\n%s", strings.Join(args, " "), err, msg)
	}
	cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		return err
	}
	built.paths, built.cacheDir, built.cache = paths, cacheDir, cache
	return nil
}

// machineCodeDir is where the precompiled machine code is kept: policytest.MachineCodeDir, across runs, for
// compiling a Go module takes seconds even without the race detector, and the modules rarely change. Without
// it, the run's own temporary directory.
func machineCodeDir(runDir string) string {
	if dir := policytest.MachineCodeDir(); dir != "" {
		return dir
	}
	return filepath.Join(runDir, "wazero")
}

// wazeroVersion is the version wazero finds for itself in this binary (internal/version.GetWazeroVersion):
// the dependency's in the build information, else the main module's, else "dev".
func wazeroVersion() string {
	missing := func(v string) bool { return v == "" || v == "(devel)" }
	v := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if strings.Contains(dep.Path, "github.com/tetratelabs/wazero") {
				v = dep.Version
			}
		}
		if missing(v) {
			v = info.Main.Version
		}
	}
	if missing(v) {
		return "dev"
	}
	return v
}

func load(tb testing.TB, wasm []byte, cfg hookmodule.Config) *hookmodule.Module {
	tb.Helper()
	m, err := hookmodule.Load(context.Background(), wasm, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func document(tb testing.TB, json string) *policy.Document {
	tb.Helper()
	d, err := policy.ReadDocument([]byte(json), policy.DefaultLimits)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// probe is a document asking the probe module to do what (request.body is the one member of a strict
// document that is free).
func probe(tb testing.TB, what string) *policy.Document {
	tb.Helper()
	return document(tb, fmt.Sprintf(`{"request": {"body": {"probe": %q}}}`, what))
}

// staticHook is a trivial hook that always answers the same decision.
type staticHook struct {
	name string
	d    policy.Decision
}

func (h staticHook) Name() string { return h.name }

func (h staticHook) Run(context.Context, *policy.Document) (*policy.Decision, error) {
	d := h.d
	return &d, nil
}

// allowWithWarning is a second hook for chains: it allows, with a warning.
var allowWithWarning = staticHook{name: "static", d: policy.Decision{
	Allowed:    true,
	Violations: []policy.Violation{},
	Warnings:   []policy.Violation{{Code: "STATIC-001", Field: "request", Severity: "warn", Message: "static warning"}},
}}

// codes lists the codes of findings, in order.
func codes(vs []policy.Violation) []string {
	c := make([]string, len(vs))
	for i, v := range vs {
		c[i] = v.Code
	}
	return c
}

// A tiny WebAssembly assembler for hand-written modules: the shapes Go cannot produce (a real wasm trap, a
// module without exports, foreign imports, ABI mistakes).

const (
	i32 = 0x7f
	i64 = 0x7e
)

type wasmImport struct {
	module, name          string
	params, results       []byte // of a function
	memory, global, table bool   // an import of another kind
}

type wasmFunc struct {
	export          string
	params, results []byte
	locals          uint32 // i32 locals it declares
	body            []byte // instructions, without the final end
}

type wasmModule struct {
	imports  []wasmImport
	tables   []wasmTable // funcref tables
	memPages int         // 0: no memory; exported as "memory"
	funcs    []wasmFunc
	data     map[uint32]string // offset -> bytes
}

type wasmTable struct {
	min, max uint32
	hasMax   bool
}

func (w wasmModule) bytes() []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	var types, imports, funcs, exports, code, data []byte
	ntypes, nimports, nfuncImports, nexports := 0, 0, 0, 0
	addType := func(params, results []byte) int {
		types = append(types, 0x60)
		types = appendVec(types, params)
		types = appendVec(types, results)
		ntypes++
		return ntypes - 1
	}
	for _, im := range w.imports {
		imports = appendName(imports, im.module)
		imports = appendName(imports, im.name)
		switch {
		case im.memory:
			imports = append(imports, 0x02, 0x00, 0x01)
		case im.global:
			imports = append(imports, 0x03, i32, 0x00)
		case im.table:
			imports = append(imports, 0x01, 0x70, 0x01, 0x01, 0x02)
		default:
			imports = append(imports, 0x00)
			imports = binary.AppendUvarint(imports, uint64(addType(im.params, im.results)))
			nfuncImports++
		}
		nimports++
	}
	for i, f := range w.funcs {
		funcs = binary.AppendUvarint(funcs, uint64(addType(f.params, f.results)))
		body := []byte{0x00} // no locals
		if f.locals > 0 {
			body = binary.AppendUvarint([]byte{0x01}, uint64(f.locals))
			body = append(body, i32)
		}
		body = append(body, f.body...)
		body = append(body, 0x0b)
		code = binary.AppendUvarint(code, uint64(len(body)))
		code = append(code, body...)
		if f.export != "" {
			exports = appendName(exports, f.export)
			exports = append(exports, 0x00)
			exports = binary.AppendUvarint(exports, uint64(nfuncImports+i))
			nexports++
		}
	}
	if w.memPages > 0 {
		exports = appendName(exports, "memory")
		exports = append(exports, 0x02, 0x00)
		nexports++
	}
	for off, b := range w.data {
		data = append(data, 0x00, 0x41)
		data = appendSleb(data, int64(off))
		data = append(data, 0x0b)
		data = appendVec(data, []byte(b))
	}
	section := func(id byte, count int, body []byte) {
		if count == 0 {
			return
		}
		content := binary.AppendUvarint(nil, uint64(count))
		content = append(content, body...)
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(content)))
		out = append(out, content...)
	}
	section(1, ntypes, types)
	section(2, nimports, imports)
	section(3, len(w.funcs), funcs)
	var tables []byte
	for _, t := range w.tables {
		if t.hasMax {
			tables = binary.AppendUvarint(binary.AppendUvarint(append(tables, 0x70, 0x01), uint64(t.min)), uint64(t.max))
		} else {
			tables = binary.AppendUvarint(append(tables, 0x70, 0x00), uint64(t.min))
		}
	}
	section(4, len(w.tables), tables)
	if w.memPages > 0 {
		section(5, 1, binary.AppendUvarint([]byte{0x00}, uint64(w.memPages)))
	}
	section(7, nexports, exports)
	section(10, len(w.funcs), code)
	section(11, len(w.data), data)
	return out
}

func appendVec(b, items []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(items)))
	return append(b, items...)
}

func appendName(b []byte, s string) []byte { return appendVec(b, []byte(s)) }

func appendSleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func i32Const(v int32) []byte { return appendSleb([]byte{0x41}, int64(v)) }
func i64Const(v int64) []byte { return appendSleb([]byte{0x42}, v) }

// packed is the i64 of an answer at ptr of n bytes.
func packed(ptr, n uint32) int64 { return int64(uint64(ptr)<<32 | uint64(n)) }

var (
	unreachable = []byte{0x00}
	endlessLoop = []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x00} // loop (br 0) end unreachable
)

// handWritten is a minimal hook module in raw wasm: its name is at 16, the answer "{}" at 32, and its
// precheck_hook runs hookBody. Options change one thing at a time.
func handWritten(hookBody []byte, opts ...func(*wasmModule)) []byte {
	w := wasmModule{
		memPages: 1,
		data:     map[uint32]string{16: "handwritten", 32: "{}"},
		funcs: []wasmFunc{
			{export: "precheck_abi_version", results: []byte{i32}, body: i32Const(1)},
			{export: "precheck_hook_name", results: []byte{i64}, body: i64Const(packed(16, 11))},
			{export: "precheck_alloc", params: []byte{i32}, results: []byte{i32}, body: i32Const(1024)},
			{export: "precheck_hook", params: []byte{i32, i32}, results: []byte{i64}, body: hookBody},
		},
	}
	for _, o := range opts {
		o(&w)
	}
	return w.bytes()
}

// answering is a hook body that returns a packed answer.
func answering(ptr, n uint32) []byte { return i64Const(packed(ptr, n)) }
