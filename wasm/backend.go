package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm/internal/opahost"
)

// Config tunes the wasm backend. The zero value is ready to use.
type Config struct {
	// MemoryLimitPages caps each instance's linear memory, in 64 KiB pages (0: 1024, that is 64 MiB).
	MemoryLimitPages uint32
	// MaxInstances bounds the instances, and so the evaluations in flight (0: GOMAXPROCS as the process
	// started). An evaluation beyond it waits for a free instance, honouring its context. Go cannot preempt
	// the fast (uninterruptible) code a trusted policy runs, so loading one raises GOMAXPROCS to
	// MaxInstances+1 if it is lower, keeping a P free for timers, deadlines and the watchdog; setting
	// GOMAXPROCS turns off Go's own updates of it to a container's CPU limit. Interruptible avoids both.
	MaxInstances int
	// Module, when set, is a module built earlier (precheck.wasm, from Compile or `precheck build`) to
	// evaluate instead of compiling the policy; the policy given to Prepare still supplies the data. It must
	// have been built from that policy.
	Module []byte

	// RunawayLimit is how long one evaluation may run the fast code before the watchdog takes its
	// instance out of the pool and switches the policy to the interruptible code (0: DefaultRunawayLimit).
	// precheck's policies are trusted to finish (Rego always terminates, and documents are bounded), so
	// they run the fast code under any context; the limit is what catches one that does not finish soon.
	RunawayLimit time.Duration
	// Interruptible runs the interruptible code from the start, for a policy not trusted to finish.
	Interruptible bool
	// Logger receives the watchdog's switch, at level Warn (default: slog.Default()).
	Logger *slog.Logger
	// OnDegrade, when set, is called (on a goroutine of its own) when the watchdog has switched a policy
	// to the interruptible code, with the policy's revision and the engine's state after the switch.
	OnDegrade func(revision string, state policy.State)

	// Cache, when set, keeps the compiled module and wazero's machine code across processes (see
	// OpenCache): a process that finds the policy's entry skips OPA's compiler and wazero's.
	Cache *Cache
	// MachineCode, when set, is the wazero compilation cache that keeps the module's machine code, for an
	// embedder that shares one with its own wazero runtimes or keeps it on disk
	// (wazero.NewCompilationCacheWithDir); it is not closed with the engine. Default: one in-memory cache for
	// the process's backends. A Cache keeps the machine code of its entries itself.
	MachineCode wazero.CompilationCache
}

// DefaultRunawayLimit is the RunawayLimit when Config.RunawayLimit is 0: a decision takes a fraction of
// a millisecond, so one that has run for a second is not about to finish.
const DefaultRunawayLimit = opahost.DefaultRunawayLimit

// Backend returns the policy.Backend that compiles a policy to WebAssembly and evaluates it on the
// project's wazero host. Use it with policy.WithBackend.
func Backend(cfg Config) policy.Backend {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cache := cfg.MachineCode
	if cache == nil {
		cache = machineCode
	}
	return &backend{cfg: cfg, cache: cache, degraded: map[string]*opahost.Degradation{}}
}

// machineCode keeps wazero's machine code for every backend of the process: a module compiled once (the
// same policy, or the glue) is not compiled again by another engine or a reload.
var machineCode = wazero.NewCompilationCache()

type backend struct {
	cfg Config
	// cache keeps wazero's machine code (Config.MachineCode, else machineCode), so that preparing
	// a module it has seen (a reload of an unchanged policy) does not compile it again.
	cache wazero.CompilationCache

	mu sync.Mutex
	// last is the last compiled policy, by its content (ContentDigest): OPA's compiler is the slow part of
	// a reload.
	last    *Module
	content string
	// degraded holds the revisions the watchdog switched to the interruptible code: the switch is for
	// good, so a new engine or a reload of the same revision starts on that code.
	degraded map[string]*opahost.Degradation
}

func (*backend) Name() string { return "wasm" }

func (b *backend) Prepare(ctx context.Context, p *policy.Policy) (policy.Evaluator, error) {
	wasm, machineCode, done, err := b.compile(ctx, p)
	if err != nil {
		return nil, err
	}
	rev := p.Revision()
	b.mu.Lock()
	inherited := b.degraded[rev]
	b.mu.Unlock()
	e := &evaluator{inherited: inherited}
	data := mustJSON(p.Data())
	cfg := opahost.Config{
		MemoryLimitPages:   b.cfg.MemoryLimitPages,
		MaxInstances:       b.cfg.MaxInstances,
		CompilationCache:   machineCode,
		Interruptible:      b.cfg.Interruptible || inherited != nil,
		RunawayLimit:       b.cfg.RunawayLimit,
		InterruptibleCache: b.cache,
		OnDegrade:          func(d opahost.Degradation) { b.degrade(rev, e, d) },
	}
	host, err := opahost.Load(ctx, wasm, data, cfg)
	if err != nil && machineCode != b.cache {
		// The on-disk cache's directory failed wazero (a full disk, its files removed by another process):
		// the cache is only a speed-up, so the load is made once more on an in-memory cache, and the entry
		// is not completed. (A load that fails for its own sake fails again, the same way.)
		_ = machineCode.Close(ctx)
		done(false)
		machineCode, done = wazero.NewCompilationCache(), func(bool) {}
		cfg.CompilationCache = machineCode
		host, err = opahost.Load(ctx, wasm, data, cfg)
	}
	if err != nil {
		if machineCode != b.cache {
			_ = machineCode.Close(ctx)
		}
		done(false)
		return nil, fmt.Errorf("wasm: loading policy %s: %w", p.Source(), err)
	}
	done(true) // wazero has written the machine code: a new cache entry is complete
	ep, ok := host.Entrypoints()[policy.Entrypoint]
	if !ok {
		host.Close(ctx)
		return nil, fmt.Errorf("wasm: the module has no entrypoint %s", policy.Entrypoint)
	}
	e.host, e.entrypoint = host, ep
	if machineCode != b.cache {
		e.ownCache = machineCode // the on-disk cache's, made for this load
	}
	return e, nil
}

// degrade records the watchdog's switch of revision rev and says so.
func (b *backend) degrade(rev string, e *evaluator, d opahost.Degradation) {
	b.mu.Lock()
	b.degraded[rev] = &d
	b.mu.Unlock()
	b.cfg.Logger.Warn("precheck: the wasm engine switched a policy to its interruptible code",
		"revision", rev, "entrypoint", d.Entrypoint, "runaway_limit", d.Limit, "reason", d.String())
	if b.cfg.OnDegrade != nil {
		s := e.State()
		s.Backend, s.Revision = b.Name(), rev
		b.cfg.OnDegrade(rev, s)
	}
}

// compile returns the policy's module and the compilation cache that holds (or is to hold) its machine
// code: from Config.Module, from the on-disk cache, or compiled now. done is to be called once the load is
// through, saying whether it succeeded (see Cache.module).
func (b *backend) compile(ctx context.Context, p *policy.Policy) (wasm []byte, machineCode wazero.CompilationCache, done func(loaded bool), err error) {
	none := func(bool) {}
	if b.cfg.Module != nil {
		return b.cfg.Module, b.cache, none, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last != nil && b.content == p.ContentDigest() { // not the revision: a manifest may keep it for new rules
		return b.last.wasm, b.cache, none, nil
	}
	if b.cfg.Cache != nil {
		wasm, machineCode, done, err := b.cfg.Cache.module(ctx, p)
		if err != nil {
			return nil, nil, nil, err
		}
		b.last, b.content = &Module{wasm: wasm}, p.ContentDigest()
		return wasm, machineCode, done, nil
	}
	m, err := compileForEngine(ctx, p)
	if err != nil {
		return nil, nil, nil, err
	}
	b.last, b.content = m, p.ContentDigest()
	return m.wasm, b.cache, none, nil
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // the data came from JSON
	}
	return data
}

type evaluator struct {
	host       *opahost.Policy
	entrypoint int32
	// inherited is the switch an earlier load of the same revision made, when this one started on the
	// interruptible code because of it.
	inherited *opahost.Degradation
	// ownCache is a compilation cache made for this load alone (the on-disk cache's), closed with it.
	ownCache wazero.CompilationCache
}

// Eval writes the document's JSON straight into an instance's memory and decodes the decision from the
// result set the module writes ([{"result": {...}}]).
func (e *evaluator) Eval(ctx context.Context, doc *policy.Document, now time.Time) (*policy.Decision, error) {
	out, err := e.host.Eval(ctx, e.entrypoint, doc.JSON(), opahost.EvalOptions{Time: now})
	if err != nil {
		return nil, fmt.Errorf("wasm: %w", err)
	}
	d, err := decodeResult(out)
	if err != nil {
		return nil, fmt.Errorf("wasm: decoding the decision: %w", err)
	}
	if d == nil {
		return nil, fmt.Errorf("wasm: %s is undefined", policy.Query)
	}
	return d, nil
}

// State reports the code the engine runs and what its watchdog did.
func (e *evaluator) State() policy.State {
	hs := e.host.State()
	s := policy.State{Code: "fast", Runaways: hs.Runaways, Abandoned: hs.Abandoned}
	if hs.Interruptible {
		s.Code = "interruptible"
	}
	d := hs.Degradation
	if d == nil {
		d = e.inherited
	}
	if d != nil {
		s.Degraded, s.DegradedAt, s.Reason = true, d.At, d.String()
	}
	return s
}

func (e *evaluator) Close(ctx context.Context) error {
	err := e.host.Close(ctx)
	if e.ownCache != nil {
		err = errors.Join(err, e.ownCache.Close(ctx))
	}
	return err
}
