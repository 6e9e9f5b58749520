package opahost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// DefaultMemoryLimitPages is the per-instance memory cap used when
// Config.MemoryLimitPages is 0: 1024 pages of 64 KiB, i.e. 64 MiB. OPA's
// parsed values take several times the size of their JSON, so this leaves
// room for inputs of a few MiB next to a moderate data document. Memory
// grows on demand only, so the cap costs nothing until used; the worst case
// for a Policy is MaxInstances times the cap.
const DefaultMemoryLimitPages = 1024

const pageSize = 64 * 1024

// Config tunes a Policy. The zero value is ready to use.
type Config struct {
	// MemoryLimitPages caps each instance's linear memory, in 64 KiB pages.
	// 0 means DefaultMemoryLimitPages.
	MemoryLimitPages uint32
	// MaxInstances bounds the instances (and so the concurrent evaluations)
	// of the Policy. 0 means runtime.GOMAXPROCS(0).
	MaxInstances int
	// CompilationCache, if set, lets the module's machine code be shared
	// between Loads of the same bytes (and across processes if the cache is
	// on disk).
	CompilationCache wazero.CompilationCache
	// Print, if set, receives the output of print() calls (when the policy
	// was compiled with print statements enabled) and of opa_println, one
	// line per call. Nil discards it.
	Print io.Writer

	// Interruptible runs every evaluation on code compiled with wazero's
	// termination checks, so that the end of its context stops it: for a
	// module not trusted to finish. Only that code is compiled. Without it
	// the module is trusted: evaluations run the fast code under any
	// context (see Eval), and the watchdog guards against a runaway.
	Interruptible bool
	// RunawayLimit is how long an evaluation of the fast code may run
	// before the watchdog takes its instance out of the pool and switches
	// the Policy to the interruptible code for good. 0 means
	// DefaultRunawayLimit.
	RunawayLimit time.Duration
	// InterruptibleCache, if set, keeps the machine code of the
	// interruptible compilation that a switch makes (CompilationCache is
	// for what Load compiles; a switch is rare, and its code need not go
	// where the load's does, e.g. into an on-disk cache).
	InterruptibleCache wazero.CompilationCache
	// OnDegrade, if set, is called once, on its own goroutine, when the
	// watchdog has switched the Policy to the interruptible code (after
	// that code is compiled, or failed to compile).
	OnDegrade func(Degradation)
}

// DefaultRunawayLimit is the RunawayLimit used when Config.RunawayLimit is
// 0. A precheck decision takes a fraction of a millisecond and a document
// is bounded in size, so an evaluation that runs for a second is not one
// that will finish soon; the limit is generous so that a loaded machine
// does not trip it.
const DefaultRunawayLimit = time.Second

// EvalOptions are per-evaluation settings.
type EvalOptions struct {
	// Time is what time.now_ns and friends see during this evaluation. The
	// zero value means the wall clock, read once per evaluation when a
	// builtin first needs it.
	Time time.Time
	// Seed is the randomness source for builtins that need one (rand.intn,
	// uuid.rfc4122, ...). Nil means crypto/rand.
	Seed io.Reader
}

// AbortError is returned when the policy called opa_abort: the module hit an
// error it cannot express as a result, such as a rule with conflicting
// values (eval_conflict_error) or an invalid entrypoint.
type AbortError struct {
	Message string
}

func (e *AbortError) Error() string { return "opahost: policy aborted: " + e.Message }

// ErrMemoryLimit is wrapped by errors caused by the per-instance memory cap.
var ErrMemoryLimit = errors.New("opahost: memory limit exceeded")

// ErrClosed is returned by Eval after Close.
var ErrClosed = errors.New("opahost: policy is closed")

// Policy is a loaded policy module with its data and a pool of instances.
type Policy struct {
	// wazero can only interrupt running wasm code if it was compiled with
	// termination checks (RuntimeConfig.WithCloseOnContextDone), and its
	// checks leave native code for Go at every loop iteration, which makes
	// OPA's evaluator several times slower. A trusted module runs fast (no
	// checks) and guarded is compiled only when the watchdog switches the
	// Policy to it; an untrusted one (Config.Interruptible) has only
	// guarded. guarded is set under mu, once, before guardedReady closes.
	fast, guarded *variant
	module        []byte // kept for the switch's compilation
	guardedCache  wazero.CompilationCache

	// interruptible says evaluations run guarded (once guardedReady is
	// closed); degraded, whether the watchdog made it so.
	interruptible atomic.Bool
	guardedReady  chan struct{}
	degradeOnce   sync.Once
	degraded      atomic.Pointer[Degradation]
	onDegrade     func(Degradation)
	limit         time.Duration

	runaways, abandoned atomic.Int64

	data     []byte
	memPages uint32
	maxInst  int

	entrypoints map[string]int32
	epNames     []string // entrypoint id -> name; "" for ids not in use
	builtins    []*boundBuiltin
	names       []string // imported builtin names, sorted

	print     io.Writer // serialised; nil discards
	printHook print.Hook
	location  *ast.Location

	// instances maps the policy module of every live instance to its
	// instance, for the host functions, which wazero hands only the calling
	// module.
	instances sync.Map

	// sem holds one token per evaluation in flight, abandoned ones
	// included: an evaluation whose caller gave up keeps its token until
	// it finishes, so the pool bounds them too. mu guards the rest: live
	// counts the instances in the pool, of both variants (idle, in use or
	// being built), and stays <= maxInst; each variant's idle list keeps the
	// most recently used instance last, so a lightly loaded Policy keeps
	// reusing one warm instance instead of creating more. An instance the
	// watchdog takes out gives back its token and its place in live.
	sem    chan struct{}
	mu     sync.Mutex
	live   int
	closed bool
}

// variant is one compilation of the policy, with its own runtime (the
// termination checks are a runtime setting) and idle instances.
type variant struct {
	rt           wazero.Runtime
	glue, module wazero.CompiledModule
	idle         []*instance // guarded by Policy.mu
}

type boundBuiltin struct {
	name  string
	fn    topdown.BuiltinFunc
	arity int // -1 if the declaration is unknown
}

// Load compiles module, checks that the process can serve every builtin it
// imports, and prepares the first instance with data (a JSON object; nil
// means {}). The module must be OPA wasm ABI 1.2 or later.
func Load(ctx context.Context, module []byte, data []byte, cfg Config) (_ *Policy, err error) {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	} else if !json.Valid(data) {
		return nil, errors.New("opahost: data is not valid JSON")
	} else if bytes.TrimSpace(data)[0] != '{' {
		return nil, errors.New("opahost: data must be a JSON object")
	}
	maxInst := cfg.MaxInstances
	if maxInst <= 0 {
		// The GOMAXPROCS the process started with, not today's: a trusted Policy raises it (see
		// reserveProcs), and the next load must not take the raised value for its size and raise it again.
		maxInst = startProcs
	}
	memPages := cfg.MemoryLimitPages
	if memPages == 0 {
		memPages = DefaultMemoryLimitPages
	}
	if memPages > 65536 {
		return nil, fmt.Errorf("opahost: memory limit of %d pages exceeds the 4 GiB of a wasm32 memory", memPages)
	}

	limit := cfg.RunawayLimit
	if limit <= 0 {
		limit = DefaultRunawayLimit
	}
	p := &Policy{
		module:       module,
		guardedCache: cfg.InterruptibleCache,
		guardedReady: make(chan struct{}),
		onDegrade:    cfg.OnDegrade,
		limit:        limit,
		data:         slices.Clone(data),
		memPages:     memPages,
		maxInst:      maxInst,
		sem:          make(chan struct{}, maxInst),
		location:     &ast.Location{File: "policy.wasm"},
	}
	if cfg.Print != nil {
		p.print = &lockedWriter{w: cfg.Print}
		p.printHook = topdown.NewPrintHook(p.print)
	}

	if !cfg.Interruptible {
		reserveProcs(maxInst)
	}
	// Only the code this configuration runs is compiled: compiling is the
	// expensive part of a load (tens of milliseconds).
	first := &p.fast
	if cfg.Interruptible {
		first = &p.guarded
		p.interruptible.Store(true)
		close(p.guardedReady)
	}
	*first, err = p.newVariant(ctx, module, cfg.Interruptible, cfg.CompilationCache)
	defer func() {
		if err != nil {
			p.closeRuntimes(ctx)
		}
	}()
	if err != nil {
		return nil, err
	}

	// The first instance is built by hand: the module's metadata must be read
	// before data is loaded, and builtins bound before anything can call one.
	in, err := p.instantiate(ctx, *first)
	if err != nil {
		return nil, err
	}
	if err := p.readMetadata(ctx, in); err != nil {
		in.close(ctx)
		return nil, err
	}
	if err := in.loadData(ctx); err != nil {
		in.close(ctx)
		return nil, err
	}
	(*first).idle = append((*first).idle, in)
	p.live = 1
	return p, nil
}

// newVariant compiles the policy and the glue in a runtime of their own.
func (p *Policy) newVariant(ctx context.Context, module []byte, interruptible bool, cache wazero.CompilationCache) (_ *variant, err error) {
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(interruptible)
	if cache != nil {
		rc = rc.WithCompilationCache(cache)
	}
	v := &variant{rt: wazero.NewRuntimeWithConfig(ctx, rc)}
	defer func() {
		if err != nil {
			_ = v.rt.Close(ctx)
		}
	}()
	if err := p.instantiateHost(ctx, v.rt); err != nil {
		return nil, err
	}
	if v.module, err = v.rt.CompileModule(ctx, module); err != nil {
		return nil, fmt.Errorf("opahost: compiling policy module: %w", err)
	}
	minPages, err := checkModule(v.module)
	if err != nil {
		return nil, err
	}
	end, err := dataEnd(module)
	if err != nil {
		return nil, fmt.Errorf("opahost: reading the policy module's data segments: %w", err)
	}
	minPages = max(minPages, uint32((end+pageSize-1)/pageSize))
	if minPages > p.memPages {
		return nil, fmt.Errorf("opahost: memory limit of %d pages is below the %d pages the policy module needs", p.memPages, minPages)
	}
	if v.glue, err = v.rt.CompileModule(ctx, glueModule(minPages, p.memPages)); err != nil {
		return nil, fmt.Errorf("opahost: compiling glue module: %w", err)
	}
	return v, nil
}

func (p *Policy) closeRuntimes(ctx context.Context) error {
	var errs []error
	p.mu.Lock()
	variants := []*variant{p.fast, p.guarded}
	p.mu.Unlock()
	for _, v := range variants {
		if v != nil {
			errs = append(errs, v.rt.Close(ctx))
		}
	}
	return errors.Join(errs...)
}

// requiredExports are the functions the host calls.
var requiredExports = []string{
	"opa_eval", "opa_malloc", "opa_free", "opa_json_parse", "opa_json_dump",
	"opa_value_parse", "opa_value_dump", "opa_heap_ptr_get", "opa_heap_ptr_set",
	"builtins", "entrypoints",
}

// checkModule rejects modules that are not OPA policies this host can run,
// before anything is instantiated, and returns the memory the module needs.
func checkModule(m wazero.CompiledModule) (minPages uint32, err error) {
	exports := m.ExportedFunctions()
	var missing []string
	for _, name := range requiredExports {
		if _, ok := exports[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("opahost: module is not an OPA policy of wasm ABI 1.2 or later: missing exports %v", missing)
	}
	for _, f := range m.ImportedFunctions() {
		mod, name, _ := f.Import()
		known := false
		for _, h := range hostImports {
			known = known || h.name == name
		}
		if mod != "env" || !known {
			return 0, fmt.Errorf("opahost: module imports function %s.%s, which an OPA host does not provide", mod, name)
		}
	}
	mems := m.ImportedMemories()
	if len(mems) != 1 {
		return 0, fmt.Errorf("opahost: module imports %d memories, an OPA policy imports exactly one (env.memory)", len(mems))
	}
	if mod, name, _ := mems[0].Import(); mod != "env" || name != "memory" {
		return 0, fmt.Errorf("opahost: module imports memory %s.%s, an OPA policy imports env.memory", mod, name)
	}
	return mems[0].Min(), nil
}

// instantiateHost registers the Go side of the imports. Each function finds
// the instance it serves from the calling module.
func (p *Policy) instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	i32 := api.ValueTypeI32
	b := rt.NewHostModuleBuilder(hostModuleName)
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostAbort), []api.ValueType{i32}, nil).
		Export("opa_abort")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostPrintln), []api.ValueType{i32}, nil).
		Export("opa_println")
	for n := range 5 {
		params := make([]api.ValueType, 2+n) // builtin id, reserved ctx, n args
		for i := range params {
			params[i] = i32
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(p.hostBuiltin(n), params, []api.ValueType{i32}).
			Export(fmt.Sprintf("opa_builtin%d", n))
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("opahost: instantiating host module: %w", err)
	}
	return nil
}

// readMetadata reads the ABI version, entrypoints and builtins of the module
// through its first instance and binds every imported builtin.
func (p *Policy) readMetadata(ctx context.Context, in *instance) error {
	major, minor := in.global("opa_wasm_abi_version"), in.global("opa_wasm_abi_minor_version")
	if major < 0 || minor < 0 {
		return errors.New("opahost: module exports no opa_wasm_abi_version/opa_wasm_abi_minor_version; OPA wasm ABI 1.2 or later is required")
	}
	if major != 1 || minor < 2 {
		return fmt.Errorf("opahost: module has OPA wasm ABI %d.%d; this host supports 1.2 and later 1.x", major, minor)
	}

	var eps map[string]int32
	if err := in.readJSONExport(ctx, "entrypoints", &eps); err != nil {
		return err
	}
	p.entrypoints = eps
	for name, id := range eps {
		if id < 0 || int(id) > len(eps)*4+64 {
			return fmt.Errorf("opahost: entrypoint %q has implausible id %d", name, id)
		}
		for int(id) >= len(p.epNames) {
			p.epNames = append(p.epNames, "")
		}
		p.epNames[id] = name
	}

	var ids map[string]int32
	if err := in.readJSONExport(ctx, "builtins", &ids); err != nil {
		return err
	}
	var missing []string
	for name, id := range ids {
		p.names = append(p.names, name)
		if id < 0 || int(id) > len(ids)*4+4096 {
			return fmt.Errorf("opahost: builtin %q has implausible id %d", name, id)
		}
		fn := topdown.GetBuiltin(name)
		if fn == nil {
			missing = append(missing, name)
			continue
		}
		b := &boundBuiltin{name: name, fn: fn, arity: -1}
		if decl, ok := ast.BuiltinMap[name]; ok && decl.Decl != nil {
			b.arity = len(decl.Decl.FuncArgs().Args)
		}
		for int(id) >= len(p.builtins) {
			p.builtins = append(p.builtins, nil)
		}
		p.builtins[id] = b
	}
	sort.Strings(p.names)
	if len(missing) > 0 {
		sort.Strings(missing)
		if len(missing) == 1 {
			return fmt.Errorf("opahost: builtin %q imported by the module is not available", missing[0])
		}
		return fmt.Errorf("opahost: builtins %q imported by the module are not available", missing)
	}
	return nil
}

// Entrypoints returns the module's entrypoints, name to id, as a new map.
func (p *Policy) Entrypoints() map[string]int32 { return maps.Clone(p.entrypoints) }

// Builtins returns the names of the builtins the module imports from the
// host, sorted.
func (p *Policy) Builtins() []string { return slices.Clone(p.names) }

// Eval evaluates entrypoint with input (JSON bytes; nil or empty means no
// input, so input references are undefined) and returns the result set JSON
// exactly as opa_eval writes it, e.g. [{"result":true}]; an undefined
// entrypoint gives []. The returned slice is the caller's. As in any
// opa_eval output, sets appear as arrays in the module's internal order
// (topdown sorts them) and object keys in no particular order.
//
// A trusted module (the default) runs its fast code under any context. When
// ctx ends first, Eval returns at once with an error wrapping ctx.Err(); the
// evaluation it abandoned cannot be stopped, so it finishes in the
// background, still holding its place in the pool, on an instance that is
// then discarded. An evaluation that runs past Config.RunawayLimit is a
// runaway: the watchdog takes its instance out of the pool (a new one takes
// its place) and switches the Policy to the interruptible code for good,
// which the end of a context stops. An untrusted module
// (Config.Interruptible) always runs that code.
//
// The input must be valid JSON (RFC 8259, UTF-8): the caller checks it, as
// policy.Document always has. The module's own parser does not report
// errors; it would take malformed input as absent, or as another document.
func (p *Policy) Eval(ctx context.Context, entrypoint int32, input []byte, opts EvalOptions) ([]byte, error) {
	if entrypoint < 0 || int(entrypoint) >= len(p.epNames) || p.epNames[entrypoint] == "" {
		return nil, fmt.Errorf("opahost: unknown entrypoint id %d", entrypoint)
	}
	// wazero would refuse to run interruptible code under an ended context
	// too, but by closing the module, which would cost an instance.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("opahost: evaluating %q: %w", p.epNames[entrypoint], err)
	}
	v, err := p.variant(ctx)
	if err != nil {
		return nil, fmt.Errorf("opahost: evaluating %q: %w", p.epNames[entrypoint], err)
	}
	in, err := p.acquire(ctx, v)
	if err != nil {
		return nil, err
	}
	if v == p.fast && ctx.Done() != nil {
		return p.evalAbandonable(ctx, in, entrypoint, input, opts)
	}
	res, err := in.eval(ctx, entrypoint, input, opts)
	p.release(ctx, in)
	return res, err
}

// State reports which code the Policy runs and what the watchdog did.
func (p *Policy) State() State {
	s := State{Interruptible: p.interruptible.Load(), Runaways: p.runaways.Load(), Abandoned: p.abandoned.Load(), RunawayLimit: p.limit}
	if d := p.degraded.Load(); d != nil {
		s.Degradation = d
	}
	return s
}

// Close releases the runtimes and every instance. Evaluations still running
// interruptible code fail, others run to completion; later ones return
// ErrClosed.
func (p *Policy) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var idle []*instance
	for _, v := range []*variant{p.fast, p.guarded} {
		if v != nil {
			idle = append(idle, v.idle...)
			v.idle = nil
		}
	}
	p.mu.Unlock()
	for _, in := range idle {
		in.close(ctx)
	}
	return p.closeRuntimes(ctx)
}

// instanceOf finds the instance whose policy module made a host call.
func (p *Policy) instanceOf(mod api.Module) *instance {
	if v, ok := p.instances.Load(mod); ok {
		return v.(*instance)
	}
	panic(errors.New("opahost: host function called by a module this policy did not instantiate"))
}

func (p *Policy) hostAbort(_ context.Context, mod api.Module, stack []uint64) {
	msg, ok := readCString(mod.Memory(), uint32(stack[0]))
	if !ok {
		msg = []byte("(unreadable abort message)")
	}
	panic(&AbortError{Message: string(msg)})
}

func (p *Policy) hostPrintln(_ context.Context, mod api.Module, stack []uint64) {
	if p.print == nil {
		return
	}
	if msg, ok := readCString(mod.Memory(), uint32(stack[0])); ok {
		line := make([]byte, 0, len(msg)+1)
		line = append(append(line, msg...), '\n')
		_, _ = p.print.Write(line)
	}
}

func (p *Policy) hostBuiltin(n int) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		in := p.instanceOf(mod)
		stack[0] = uint64(in.callBuiltin(ctx, int32(uint32(stack[0])), stack[2:2+n]))
	}
}

// readCString returns a view (not a copy) of the NUL-terminated string at
// addr in mem.
func readCString(mem api.Memory, addr uint32) ([]byte, bool) {
	if mem == nil {
		return nil, false
	}
	size := mem.Size()
	if addr >= size {
		return nil, false
	}
	view, ok := mem.Read(addr, size-addr)
	if !ok {
		return nil, false
	}
	n := bytes.IndexByte(view, 0)
	if n < 0 {
		return nil, false
	}
	return view[:n], true
}

// lockedWriter keeps lines from concurrent instances whole.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
