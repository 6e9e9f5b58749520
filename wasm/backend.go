package wasm

import (
	"context"
	"encoding/json"
	"fmt"
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
	// MaxInstances bounds the instances, and so the evaluations in flight (0: GOMAXPROCS). An evaluation
	// beyond it waits for a free instance, honouring its context.
	MaxInstances int
	// Module, when set, is a module built earlier (precheck.wasm, from Compile or `precheck build`) to
	// evaluate instead of compiling the policy; the policy given to Prepare still supplies the data. It must
	// have been built from that policy.
	Module []byte
}

// Backend returns the policy.Backend that compiles a policy to WebAssembly and evaluates it on the
// project's wazero host. Use it with policy.WithBackend.
func Backend(cfg Config) policy.Backend {
	return &backend{cfg: cfg, cache: wazero.NewCompilationCache()}
}

type backend struct {
	cfg Config
	// cache keeps wazero's machine code, so that preparing a module it has seen (a reload of an unchanged
	// policy) does not compile it again.
	cache wazero.CompilationCache

	mu   sync.Mutex
	last *Module // the last compiled policy, by revision: OPA's compiler is the slow part of a reload
	rev  string
}

func (*backend) Name() string { return "wasm" }

func (b *backend) Prepare(ctx context.Context, p *policy.Policy) (policy.Evaluator, error) {
	m, err := b.compile(ctx, p)
	if err != nil {
		return nil, err
	}
	host, err := opahost.Load(ctx, m.wasm, mustJSON(p.Data()), opahost.Config{
		MemoryLimitPages: b.cfg.MemoryLimitPages,
		MaxInstances:     b.cfg.MaxInstances,
		CompilationCache: b.cache,
	})
	if err != nil {
		return nil, fmt.Errorf("wasm: loading policy %s: %w", p.Source(), err)
	}
	ep, ok := host.Entrypoints()[policy.Entrypoint]
	if !ok {
		host.Close(ctx)
		return nil, fmt.Errorf("wasm: the module has no entrypoint %s", policy.Entrypoint)
	}
	return &evaluator{host: host, entrypoint: ep}, nil
}

func (b *backend) compile(ctx context.Context, p *policy.Policy) (*Module, error) {
	if b.cfg.Module != nil {
		return &Module{wasm: b.cfg.Module}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last != nil && b.rev == p.Revision() {
		return b.last, nil
	}
	m, err := Compile(ctx, p)
	if err != nil {
		return nil, err
	}
	b.last, b.rev = m, p.Revision()
	return m, nil
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
}

// Eval writes the document's JSON straight into an instance's memory and decodes the decision from the
// result set the module writes ([{"result": {...}}]).
func (e *evaluator) Eval(ctx context.Context, doc *policy.Document, now time.Time) (*policy.Decision, error) {
	out, err := e.host.Eval(ctx, e.entrypoint, doc.JSON(), opahost.EvalOptions{Time: now})
	if err != nil {
		return nil, fmt.Errorf("wasm: %w", err)
	}
	var rs []struct {
		Result *policy.Decision `json:"result"`
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("wasm: decoding the decision: %w", err)
	}
	if len(rs) == 0 || rs[0].Result == nil {
		return nil, fmt.Errorf("wasm: %s is undefined", policy.Query)
	}
	return rs[0].Result, nil
}

func (e *evaluator) Close(ctx context.Context) error { return e.host.Close(ctx) }
