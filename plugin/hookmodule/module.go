package hookmodule

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/precheck/precheck/policy"
)

// ABIVersion is the version of the hook module ABI this host speaks (see the package documentation).
const ABIVersion = 1

// Defaults for the zero values of Config.
const (
	// DefaultMemoryLimitPages is 32 MiB: a Go hook needs a few MiB, and every instance may grow to the limit.
	DefaultMemoryLimitPages = 512
	// DefaultTimeout is generous for a hook (a call takes microseconds; creating a Go instance a few
	// milliseconds) and short enough that a looping hook does not hold a request for long.
	DefaultTimeout = time.Second
)

// MaxFindingsBytes bounds the findings JSON a hook may answer.
const MaxFindingsBytes = 1 << 20

// Errors wrapped by the errors of Run (besides context.DeadlineExceeded for a hook that overran its time
// limit, and the caller's context error). Test with errors.Is.
var (
	// ErrTrapped: the module trapped (a wasm trap, a Go panic) or exited during a call.
	ErrTrapped = errors.New("trapped")
	// ErrMemoryLimit: the module reached its memory limit.
	ErrMemoryLimit = errors.New("memory limit exceeded")
	// ErrMalformed: the module broke the ABI or answered something that is not findings.
	ErrMalformed = errors.New("malformed answer")
	// ErrNoJudgement: the module answered {"error": ...}.
	ErrNoJudgement = errors.New("could not judge")
	// ErrClosed: the Module was closed.
	ErrClosed = errors.New("hookmodule: closed")
)

// Config tunes a Module. The zero value is ready to use; Config is a plain value, safe to share.
type Config struct {
	// MemoryLimitPages caps each instance's linear memory, in 64 KiB pages (0: DefaultMemoryLimitPages).
	MemoryLimitPages uint32
	// Timeout bounds each call into the module: a Run, and the creation of an instance (0: DefaultTimeout).
	// The caller's context bounds them too.
	Timeout time.Duration
	// MaxInstances bounds the instances, and so the Runs in flight (0: GOMAXPROCS). A Run beyond it waits
	// for a free instance, honouring its context.
	MaxInstances int
	// Clock is the wall clock the hook sees (WASI's realtime clock), like policy.WithClock for the policy:
	// give both the same to judge a document as of another time (nil: the host's clock, time.Now). The
	// monotonic clock is always the host's.
	Clock func() time.Time
	// Cache keeps compiled machine code, so that loading a module whose code it holds compiles nothing.
	// Code put in a Cache stays there until the Cache is closed. When nil, Modules share a cache of the
	// package's, which holds a module's code only while a Module of it is open: a hot reload (the new
	// Module loaded before the old one is closed) compiles nothing, and the cache does not grow.
	Cache wazero.CompilationCache
}

// sharedCache serves Loads without a Config.Cache. wazero counts the users of each compiled module in a
// cache and drops its code when the last one closes it, which Module.Close does for this cache only.
var sharedCache = wazero.NewCompilationCache()

// Module is a loaded hook module with a pool of instances. It implements plugin.Hook and is safe for
// concurrent use.
type Module struct {
	name     string
	timeout  time.Duration
	memPages uint32
	clock    func() time.Time

	rt       wazero.Runtime
	compiled wazero.CompiledModule
	// ownCache: the caller gave the cache, and the compiled code stays in it when the Module closes.
	ownCache bool

	// sem holds one token per Run in flight, so at most cap(sem) instances are in use. Instances are
	// created only when none is idle, so idle + in use never exceeds cap(sem) either. idle keeps the most
	// recently used instance last: a lightly loaded Module keeps reusing one warm instance.
	sem    chan struct{}
	mu     sync.Mutex
	idle   []*instance
	closed bool
}

// Load compiles module, checks that it is a hook module the sandbox can run (its imports, its exports,
// their signatures, its memory), creates the first instance and reads the hook's ABI version and name.
// The errors say what is missing or refused. What the module declares is bounded before it is compiled
// (MaxModuleBytes, MaxTableEntries, MaxFunctionLocals, MaxModuleLocals): wazero's compiler does not stop
// for ctx, which bounds, with cfg.Timeout, the creation of the first instance.
func Load(ctx context.Context, module []byte, cfg Config) (_ *Module, err error) {
	m := &Module{timeout: cfg.Timeout, memPages: cfg.MemoryLimitPages, clock: cfg.Clock}
	if m.timeout <= 0 {
		m.timeout = DefaultTimeout
	}
	if m.memPages == 0 {
		m.memPages = DefaultMemoryLimitPages
	}
	if m.memPages > 65536 {
		return nil, fmt.Errorf("hookmodule: a memory limit of %d pages is over the 65536 pages (4 GiB) of a wasm memory", m.memPages)
	}
	maxInst := cfg.MaxInstances
	if maxInst <= 0 {
		maxInst = runtime.GOMAXPROCS(0)
	}
	m.sem = make(chan struct{}, maxInst)
	cache := cfg.Cache
	m.ownCache = cache != nil
	if cache == nil {
		cache = sharedCache
	}

	// Every call must be stoppable: hooks are untrusted code, so the runtime compiles the termination
	// checks in (RuntimeConfig.WithCloseOnContextDone) and every call carries a deadline.
	m.rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(m.memPages).
		WithCompilationCache(cache))
	defer func() {
		if err != nil {
			_ = m.rt.Close(ctx)
		}
	}()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, m.rt); err != nil {
		return nil, fmt.Errorf("hookmodule: instantiating WASI: %w", err)
	}
	if module, err = bounded(module); err != nil {
		return nil, fmt.Errorf("hookmodule: the module is refused: %w", err)
	}
	if m.compiled, err = m.rt.CompileModule(ctx, module); err != nil {
		return nil, fmt.Errorf("hookmodule: compiling the module: %w", err)
	}
	defer func() {
		if err != nil && !m.ownCache {
			_ = m.compiled.Close(ctx)
		}
	}()
	if err := checkImports(m.compiled, m.wasiFunctions()); err != nil {
		return nil, err
	}
	if err := checkExports(m.compiled); err != nil {
		return nil, err
	}

	in, err := m.instantiate(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.readIdentity(ctx, in); err != nil {
		in.close(ctx)
		return nil, err
	}
	m.idle = append(m.idle, in)
	return m, nil
}

// wasiFunctions names the functions of wazero's WASI preview 1.
func (m *Module) wasiFunctions() map[string]bool {
	fns := map[string]bool{}
	for name := range m.rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions() {
		fns[name] = true
	}
	return fns
}

// checkImports refuses any import but the functions of WASI preview 1, naming each. (A table or global import
// would fail instantiation, which names it too.)
func checkImports(m wazero.CompiledModule, wasi map[string]bool) error {
	var refused []string
	for _, f := range m.ImportedFunctions() {
		module, name, _ := f.Import()
		switch {
		case module != wasi_snapshot_preview1.ModuleName:
			refused = append(refused, fmt.Sprintf("function %s.%s", module, name))
		case !wasi[name]:
			refused = append(refused, fmt.Sprintf("function %s.%s (not a WASI preview 1 function)", module, name))
		}
	}
	for _, mem := range m.ImportedMemories() {
		module, name, _ := mem.Import()
		refused = append(refused, fmt.Sprintf("memory %s.%s", module, name))
	}
	if len(refused) == 0 {
		return nil
	}
	slices.Sort(refused)
	return fmt.Errorf("hookmodule: the module imports %s; a hook module may import only %s functions, and defines its own memory",
		strings.Join(refused, ", "), wasi_snapshot_preview1.ModuleName)
}

// abiExports are the functions of the ABI with their signatures.
var abiExports = []struct {
	name            string
	params, results []api.ValueType
}{
	{"precheck_abi_version", nil, []api.ValueType{api.ValueTypeI32}},
	{"precheck_hook_name", nil, []api.ValueType{api.ValueTypeI64}},
	{"precheck_alloc", []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	{"precheck_hook", []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
	{"_initialize", nil, nil}, // optional
}

// checkExports refuses a module that lacks an export of the ABI or exports one with the wrong signature,
// and a WASI command, naming what is wrong.
func checkExports(m wazero.CompiledModule) error {
	fns := m.ExportedFunctions()
	var missing, wrong []string
	for _, e := range abiExports {
		f, ok := fns[e.name]
		if !ok {
			if e.name != "_initialize" {
				missing = append(missing, e.name)
			}
			continue
		}
		if !slices.Equal(f.ParamTypes(), e.params) || !slices.Equal(f.ResultTypes(), e.results) {
			wrong = append(wrong, fmt.Sprintf("%s is %s, not %s", e.name, signature(f.ParamTypes(), f.ResultTypes()), signature(e.params, e.results)))
		}
	}
	if _, ok := m.ExportedMemories()["memory"]; !ok {
		missing = append([]string{"memory"}, missing...)
	}
	var errs []string
	if len(missing) > 0 {
		errs = append(errs, "it does not export "+strings.Join(missing, ", "))
	}
	errs = append(errs, wrong...)
	if _, ok := fns["_start"]; ok {
		if _, ok := fns["_initialize"]; !ok {
			errs = append(errs, "it exports _start: it is a WASI command, whose _start runs main and exits; build a reactor (Go: go build -buildmode=c-shared; C: -mexec-model=reactor)")
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("hookmodule: not a precheck hook module (ABI %d): %s", ABIVersion, strings.Join(errs, "; "))
	}
	return nil
}

func signature(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	sig := "(" + names(params) + ")"
	if len(results) > 0 {
		sig += " -> " + names(results)
	}
	return sig
}

// readIdentity reads the ABI version and the name of the hook from its first instance.
func (m *Module) readIdentity(ctx context.Context, in *instance) error {
	callCtx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	res, err := in.mod.ExportedFunction("precheck_abi_version").Call(callCtx)
	if err != nil {
		return fmt.Errorf("hookmodule: %w", in.failure(ctx, "precheck_abi_version", err))
	}
	if v := int32(res[0]); v != ABIVersion {
		return fmt.Errorf("hookmodule: the module is written for hook ABI version %d; this host speaks version %d", v, ABIVersion)
	}
	res, err = in.mod.ExportedFunction("precheck_hook_name").Call(callCtx)
	if err != nil {
		return fmt.Errorf("hookmodule: %w", in.failure(ctx, "precheck_hook_name", err))
	}
	name, err := in.read(res[0], 64)
	if err != nil {
		return fmt.Errorf("hookmodule: precheck_hook_name: %w", err)
	}
	if !validName(string(name)) {
		return fmt.Errorf("hookmodule: the hook's name %q is not 1 to 64 bytes of A-Z a-z 0-9 . _ -", name)
	}
	m.name = string(name)
	return nil
}

// validName reports whether s is 1 to 64 bytes of A-Z a-z 0-9 . _ - (hook names and finding codes).
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Name returns the name the module gave itself (precheck_hook_name).
func (m *Module) Name() string { return m.name }

// Run judges the document on an instance of the module and returns the hook's decision: allowed exactly
// when it found no violations; when it did, Error is the refusal (the hook's status, 403 by default; the
// first violation's code; every violation's code and message). A module that could not judge gives an
// error naming the hook and saying what happened (see the package documentation), never an allow.
func (m *Module) Run(ctx context.Context, doc *policy.Document) (*policy.Decision, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("hook %s: not run: the caller's context ended: %w", m.name, err)
	}
	in, err := m.acquire(ctx)
	if err != nil {
		return nil, err
	}
	d, err := in.run(ctx, doc.JSON())
	m.release(ctx, in, err == nil)
	return d, err
}

// Close releases the module and its instances. Runs in flight fail; later ones return ErrClosed.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.idle = nil
	m.mu.Unlock()
	// Closing the runtime closes every instance. Closing the compiled module releases its code in the
	// shared cache; in the caller's cache it stays, for the next Load of the same module.
	err := m.rt.Close(ctx)
	if !m.ownCache {
		err = errors.Join(err, m.compiled.Close(ctx))
	}
	return err
}

// acquire returns an instance for the caller's exclusive use: the most recently used idle one, else a new
// one.
func (m *Module) acquire(ctx context.Context) (*instance, error) {
	select {
	case m.sem <- struct{}{}:
	default:
		select {
		case m.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("hook %s: waiting for a free instance: %w", m.name, ctx.Err())
		}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.sem
		return nil, ErrClosed
	}
	if n := len(m.idle); n > 0 {
		in := m.idle[n-1]
		m.idle = m.idle[:n-1]
		m.mu.Unlock()
		return in, nil
	}
	m.mu.Unlock()
	in, err := m.instantiate(ctx)
	if err != nil {
		<-m.sem
		m.mu.Lock()
		closed := m.closed
		m.mu.Unlock()
		if closed { // closed while the instance was being created
			return nil, ErrClosed
		}
		return nil, err
	}
	return in, nil
}

// release returns in to the pool if it is sound, and drops it otherwise: after a failed call an instance
// may be half-way through anything.
func (m *Module) release(ctx context.Context, in *instance, sound bool) {
	m.mu.Lock()
	keep := sound && !m.closed
	if keep {
		m.idle = append(m.idle, in)
	}
	m.mu.Unlock()
	if !keep {
		in.close(context.WithoutCancel(ctx))
	}
	<-m.sem
}

// instantiate creates an instance in the sandbox and runs its _initialize, within the time limit.
func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	callCtx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	in := &instance{m: m, stderr: &stderrSummary{}, stack: make([]uint64, 2)}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous, so that the compiled module can be instantiated many times
		WithStartFunctions("_initialize").
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader).
		WithStderr(in.stderr)
	if m.clock != nil {
		cfg = cfg.WithWalltime(func() (int64, int32) {
			t := m.clock()
			return t.Unix(), int32(t.Nanosecond())
		}, sys.ClockResolution(time.Microsecond))
	}
	// No WithArgs, WithEnv or WithFSConfig: no arguments, no environment, no file system.
	mod, err := m.rt.InstantiateModule(callCtx, m.compiled, cfg)
	if err != nil {
		err = in.failure(ctx, "", err) // wazero closed what it had instantiated
		if m.name == "" {
			return nil, fmt.Errorf("hookmodule: creating an instance: %w", err)
		}
		return nil, fmt.Errorf("hook %s: creating an instance: %w", m.name, err)
	}
	in.mod, in.mem = mod, mod.Memory()
	in.alloc, in.hook = mod.ExportedFunction("precheck_alloc"), mod.ExportedFunction("precheck_hook")
	return in, nil
}
