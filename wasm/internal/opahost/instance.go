package opahost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// instance is one glue+policy pair with its own memory, used by one
// goroutine at a time.
type instance struct {
	p    *Policy
	v    *variant
	glue api.Module
	mod  api.Module
	mem  api.Memory

	fnEval, fnMalloc, fnFree, fnJSONParse, fnJSONDump,
	fnValueParse, fnValueDump, fnHeapGet, fnHeapSet api.Function

	// evalStack is for the opa_eval call; hostStack for the calls the host
	// makes while opa_eval is running (builtin argument and result
	// conversion). wazero writes a call's results into its stack slice when
	// the call returns, after any nested calls, so the two must not be
	// shared.
	evalStack [7]uint64
	hostStack [2]uint64

	baseHeap uint32 // heap pointer right after initialisation
	dataAddr uint32 // parsed data document
	evalHeap uint32 // first free heap byte after the data; every eval starts here

	// broken marks an instance whose module state can no longer be trusted
	// (trap, abort, interruption); the pool drops it.
	broken bool

	// The fast code's evaluation state, shared with the watchdog (watch)
	// and with a caller that may abandon it. mu guards running, abandoned,
	// runaway and closed.
	mu        sync.Mutex
	running   bool // an evaluation of the fast code is under way
	abandoned bool // its caller left (its context ended)
	runaway   bool // the watchdog took the instance out of the pool
	closed    bool
	ep        int32     // the entrypoint being evaluated, for the watchdog
	started   time.Time // when it started
	watch     *time.Timer
	// jobs and results connect a caller to the instance's own goroutine,
	// which runs the evaluations a caller may abandon (started on first use).
	jobs    chan job
	results chan result

	// Per-evaluation state for builtins, valid while eval runs.
	ctx        context.Context
	opts       EvalOptions
	bctx       topdown.BuiltinContext
	bctxReady  bool
	stopBridge func() bool
	out        *ast.Term
	iter       func(*ast.Term) error
	buf        []byte // scratch for builtin results
}

// instantiate creates an instance of the compiled glue and policy modules;
// the module's start function initialises its heap.
func (p *Policy) instantiate(ctx context.Context, v *variant) (*instance, error) {
	glue, err := v.rt.InstantiateModule(ctx, v.glue, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		return nil, fmt.Errorf("opahost: instantiating glue module: %w", err)
	}
	// Anonymous modules are not resolvable by name, so point this policy
	// instance's "env" imports at this instance's glue.
	rctx := experimental.WithImportResolver(ctx, func(name string) api.Module {
		if name == "env" {
			return glue
		}
		return nil
	})
	mod, err := v.rt.InstantiateModule(rctx, v.module, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		_ = glue.Close(ctx)
		var ab *AbortError
		if errors.As(err, &ab) {
			return nil, ab
		}
		return nil, fmt.Errorf("opahost: instantiating policy module: %w", err)
	}
	in := &instance{p: p, v: v, glue: glue, mod: mod, mem: glue.Memory()}
	in.iter = in.collect
	in.fnEval = mod.ExportedFunction("opa_eval")
	in.fnMalloc = mod.ExportedFunction("opa_malloc")
	in.fnFree = mod.ExportedFunction("opa_free")
	in.fnJSONParse = mod.ExportedFunction("opa_json_parse")
	in.fnJSONDump = mod.ExportedFunction("opa_json_dump")
	in.fnValueParse = mod.ExportedFunction("opa_value_parse")
	in.fnValueDump = mod.ExportedFunction("opa_value_dump")
	in.fnHeapGet = mod.ExportedFunction("opa_heap_ptr_get")
	in.fnHeapSet = mod.ExportedFunction("opa_heap_ptr_set")
	p.instances.Store(mod, in)

	// opa_malloc(0) makes sure the allocator is initialised before its
	// pointer is read; the start function normally has done it already.
	if _, err := in.call(ctx, in.fnMalloc, 0); err != nil {
		in.close(ctx)
		return nil, err
	}
	if in.baseHeap, err = in.call(ctx, in.fnHeapGet); err != nil {
		in.close(ctx)
		return nil, err
	}
	return in, nil
}

func (in *instance) close(ctx context.Context) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.closed = true
	in.mu.Unlock()
	if in.watch != nil {
		in.watch.Stop()
	}
	if in.jobs != nil {
		close(in.jobs) // ends work, unless it is the caller
	}
	in.p.instances.Delete(in.mod)
	_ = in.mod.Close(ctx)
	_ = in.glue.Close(ctx)
}

// global returns an exported i32 global, or -1 if there is none.
func (in *instance) global(name string) int64 {
	g := in.mod.ExportedGlobal(name)
	if g == nil || g.Type() != api.ValueTypeI32 {
		return -1
	}
	return int64(int32(uint32(g.Get())))
}

// call runs fn outside of an evaluation (setup code), with at most two
// parameters, and returns its i32 result or 0.
func (in *instance) call(ctx context.Context, fn api.Function, params ...uint32) (uint32, error) {
	stack := in.hostStack[:]
	for i, v := range params {
		stack[i] = uint64(v)
	}
	if err := fn.CallWithStack(ctx, stack); err != nil {
		in.broken = true
		var ab *AbortError
		switch {
		case errors.As(err, &ab) && ab.Message == mallocFailed:
			return 0, fmt.Errorf("opahost: %s needs more memory than the limit of %d pages: %w",
				fn.Definition().Name(), in.p.memPages, ErrMemoryLimit)
		case ab != nil:
			return 0, ab
		}
		return 0, fmt.Errorf("opahost: calling %s: %w", fn.Definition().Name(), err)
	}
	return uint32(stack[0]), nil
}

// readJSONExport calls a metadata export (builtins, entrypoints) and
// decodes its JSON dump into v. The heap it uses is reclaimed by loadData.
func (in *instance) readJSONExport(ctx context.Context, name string, v any) error {
	addr, err := in.call(ctx, in.mod.ExportedFunction(name))
	if err != nil {
		return err
	}
	str, err := in.call(ctx, in.fnJSONDump, addr)
	if err != nil {
		return err
	}
	text, ok := readCString(in.mem, str)
	if !ok || str == 0 {
		return fmt.Errorf("opahost: reading the result of %s: bad string at %#x", name, str)
	}
	if err := json.Unmarshal(text, v); err != nil {
		return fmt.Errorf("opahost: decoding the result of %s: %w", name, err)
	}
	return nil
}

// loadData parses the policy's data document into this instance and
// records where evaluations start allocating.
//
// The heap is first reset to its post-initialisation state (dropping what
// metadata reads allocated), then the JSON text is copied in and parsed.
// The text itself stays allocated below the eval heap: opa_eval's heap
// reset discards freed blocks anyway, and the parsed strings are copies, so
// the only cost is len(data) bytes per instance.
func (in *instance) loadData(ctx context.Context) error {
	if _, err := in.call(ctx, in.fnHeapSet, in.baseHeap); err != nil {
		return err
	}
	data := in.p.data
	text, err := in.call(ctx, in.fnMalloc, uint32(len(data)))
	if err != nil {
		return fmt.Errorf("opahost: allocating %d bytes for data: %w", len(data), err)
	}
	if !in.mem.Write(text, data) {
		return fmt.Errorf("opahost: writing data at %#x: out of memory bounds", text)
	}
	addr, err := in.call(ctx, in.fnJSONParse, text, uint32(len(data)))
	if err != nil {
		return fmt.Errorf("opahost: parsing data: %w", err)
	}
	if addr == 0 {
		return errors.New("opahost: the policy module could not parse the data document")
	}
	heap, err := in.call(ctx, in.fnHeapGet)
	if err != nil {
		return err
	}
	in.dataAddr, in.evalHeap = addr, alignHeap(heap)
	return nil
}

func alignHeap(p uint32) uint32 { return (p + 7) &^ 7 }

// eval runs one evaluation. Input goes straight into memory at the eval heap
// start; opa_eval then allocates above it, so everything from the previous
// evaluation is simply overwritten. On the fast code the watchdog watches it.
func (in *instance) eval(ctx context.Context, ep int32, input []byte, opts EvalOptions) ([]byte, error) {
	addr, n, heap, err := in.writeInput(ctx, input)
	if err != nil {
		return nil, err
	}
	if in.v != in.p.fast {
		return in.run(ctx, ep, addr, n, heap, opts)
	}
	in.start(ep)
	out, err := in.run(ctx, ep, addr, n, heap, opts)
	in.stop()
	return out, err
}

// writeInput copies input into memory at the eval heap start and returns
// where it is and where the evaluation's heap begins.
func (in *instance) writeInput(ctx context.Context, input []byte) (inAddr, inLen, heap uint32, err error) {
	heap = in.evalHeap
	if len(input) == 0 {
		return 0, 0, heap, nil
	}
	limit := uint64(in.p.memPages) * pageSize
	end := uint64(heap) + uint64(len(input))
	if end > limit {
		return 0, 0, 0, fmt.Errorf("opahost: input of %d bytes does not fit in the memory limit of %d pages (%d bytes, of which %d are taken by the policy and its data): %w",
			len(input), in.p.memPages, limit, heap, ErrMemoryLimit)
	}
	inLen = uint32(len(input))
	if end <= uint64(in.mem.Size()) {
		inAddr, heap = heap, alignHeap(uint32(end))
	} else if inAddr, heap, err = in.growForInput(ctx, inLen); err != nil {
		return 0, 0, 0, err
	}
	in.mem.Write(inAddr, input)
	return inAddr, inLen, heap, nil
}

// run calls opa_eval on the input writeInput placed.
func (in *instance) run(ctx context.Context, ep int32, inAddr, inLen, heap uint32, opts EvalOptions) ([]byte, error) {
	in.ctx, in.opts, in.bctxReady = ctx, opts, false
	s := in.evalStack[:]
	s[0] = 0 // reserved
	s[1] = uint64(uint32(ep))
	s[2] = uint64(in.dataAddr)
	s[3] = uint64(inAddr)
	s[4] = uint64(inLen)
	s[5] = uint64(heap)
	s[6] = 0 // JSON output
	err := in.fnEval.CallWithStack(ctx, s)
	in.endEval()
	if err != nil {
		in.broken = true
		return nil, in.evalError(ctx, ep, err)
	}
	res, ok := readCString(in.mem, uint32(s[0]))
	if !ok || s[0] == 0 {
		in.broken = true
		return nil, fmt.Errorf("opahost: evaluating %q: the module returned no result (address %#x)", in.p.epNames[ep], s[0])
	}
	return append([]byte(nil), res...), nil
}

// growForInput makes room for an input larger than the current memory by
// allocating it with the module's own allocator. Growing the memory from Go
// would work too, but OPA's allocator caches the memory size: it would not
// know about pages added from Go and would grow past them again, costing
// about the input's size in extra memory per instance (121 instead of 117
// pages for a 200 KB input).
func (in *instance) growForInput(ctx context.Context, n uint32) (addr, heap uint32, err error) {
	if _, err = in.call(ctx, in.fnHeapSet, in.evalHeap); err != nil {
		return 0, 0, err
	}
	if addr, err = in.call(ctx, in.fnMalloc, n); err != nil {
		if errors.Is(err, ErrMemoryLimit) {
			return 0, 0, fmt.Errorf("opahost: input of %d bytes does not fit in the memory limit of %d pages: %w", n, in.p.memPages, ErrMemoryLimit)
		}
		return 0, 0, err
	}
	if heap, err = in.call(ctx, in.fnHeapGet); err != nil {
		return 0, 0, err
	}
	return addr, alignHeap(heap), nil
}

// mallocFailed is the abort message of OPA's allocator when memory.grow
// fails, i.e. the instance reached its memory cap.
const mallocFailed = "opa_malloc: failed"

// evalError turns the error of an interrupted opa_eval into the package's
// vocabulary: context errors, *AbortError, ErrMemoryLimit, builtin errors.
func (in *instance) evalError(ctx context.Context, ep int32, err error) error {
	name := in.p.epNames[ep]
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("opahost: evaluating %q: interrupted: %w", name, cerr)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("opahost: evaluating %q: interrupted: %w", name, context.Canceled)
		case sys.ExitCodeDeadlineExceeded:
			return fmt.Errorf("opahost: evaluating %q: interrupted: %w", name, context.DeadlineExceeded)
		}
		in.p.mu.Lock()
		closed := in.p.closed
		in.p.mu.Unlock()
		if closed {
			return fmt.Errorf("opahost: evaluating %q: %w", name, ErrClosed)
		}
	}
	var ab *AbortError
	if errors.As(err, &ab) {
		if ab.Message == mallocFailed {
			return fmt.Errorf("opahost: evaluating %q: the policy needs more memory than the limit of %d pages (%d bytes): %w",
				name, in.p.memPages, uint64(in.p.memPages)*pageSize, ErrMemoryLimit)
		}
		return ab
	}
	var be *builtinError
	if errors.As(err, &be) {
		return be
	}
	return fmt.Errorf("opahost: evaluating %q: %w", name, err)
}
