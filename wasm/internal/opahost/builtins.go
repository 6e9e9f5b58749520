package opahost

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
	"github.com/tetratelabs/wazero/api"
)

// builtinError is a builtin's error, carried out of the host function by a
// panic (the only way a wasm import can fail) and returned by Eval.
type builtinError struct {
	name string
	err  error
}

func (e *builtinError) Error() string {
	return fmt.Sprintf("opahost: builtin %q failed: %v", e.name, e.err)
}

func (e *builtinError) Unwrap() error { return e.err }

// callBuiltin serves opa_builtinN. Its result contract, from OPA's wasm
// compiler (compileExternalCall): the module stores the returned address and
// branches out of the enclosing block when it is 0, so 0 means "undefined".
// Errors cannot be returned and must abort the call instead.
func (in *instance) callBuiltin(ctx context.Context, id int32, argAddrs []uint64) uint32 {
	var b *boundBuiltin
	if id >= 0 && int(id) < len(in.p.builtins) {
		b = in.p.builtins[id]
	}
	if b == nil {
		panic(&builtinError{name: fmt.Sprintf("#%d", id), err: errors.New("the module called a builtin id it did not declare")})
	}
	if b.arity >= 0 && b.arity != len(argAddrs) {
		panic(&builtinError{name: b.name, err: fmt.Errorf("called with %d arguments, declared with %d", len(argAddrs), b.arity)})
	}

	// A fresh slice per call: builtins may keep their operands (memoisation
	// keys, cached results), so it must not be reused.
	args := make([]*ast.Term, len(argAddrs))
	for i, a := range argAddrs {
		args[i] = in.dumpValue(ctx, b.name, uint32(a))
	}

	out, err := in.invoke(b, args)
	if err != nil {
		panic(&builtinError{name: b.name, err: err})
	}
	if out == nil {
		return 0
	}
	return in.loadValue(ctx, b.name, out)
}

// invoke calls the Go implementation, turning a panic in it into an error
// that names the builtin rather than a wazero-recovered crash.
func (in *instance) invoke(b *boundBuiltin, args []*ast.Term) (out *ast.Term, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	in.out = nil
	err = b.fn(in.builtinContext(), args, in.iter)
	out, in.out = in.out, nil
	return out, err
}

// collect is the iterator handed to builtins; functions yield at most once,
// and the first value wins if one yields more.
func (in *instance) collect(t *ast.Term) error {
	if in.out == nil {
		in.out = t
	}
	return nil
}

// builtinContext builds the evaluation's BuiltinContext on the first builtin
// call, so evaluations that call no host builtin pay nothing for it.
func (in *instance) builtinContext() topdown.BuiltinContext {
	if in.bctxReady {
		return in.bctx
	}
	now := in.opts.Time
	if now.IsZero() {
		now = time.Now()
	}
	seed := in.opts.Seed
	if seed == nil {
		seed = rand.Reader
	}
	cancel := topdown.NewCancel()
	in.bctx = topdown.BuiltinContext{
		Context:   in.ctx,
		Metrics:   metrics.NoOp(),
		Seed:      seed,
		Time:      ast.NumberTerm(json.Number(strconv.FormatInt(now.UnixNano(), 10))),
		Cancel:    cancel,
		Cache:     make(builtins.Cache),
		Location:  in.p.location,
		PrintHook: in.p.printHook,
	}
	// wazero interrupts wasm code when ctx ends, but not a Go builtin that
	// is running; long ones (regex, strings, net.cidr_expand) poll Cancel.
	if in.ctx.Done() != nil {
		in.stopBridge = context.AfterFunc(in.ctx, cancel.Cancel)
	}
	in.bctxReady = true
	return in.bctx
}

// endEval drops the evaluation's references so a pooled instance does not
// keep a request's context, caches or results alive.
func (in *instance) endEval() {
	if in.stopBridge != nil {
		in.stopBridge()
		in.stopBridge = nil
	}
	if in.bctxReady {
		in.bctx = topdown.BuiltinContext{}
		in.bctxReady = false
	}
	in.ctx, in.opts, in.out = nil, EvalOptions{}, nil
}

// dumpValue reads the value at addr as an AST term via opa_value_dump,
// which, unlike opa_json_dump, keeps sets and non-string keys intact.
func (in *instance) dumpValue(ctx context.Context, name string, addr uint32) *ast.Term {
	str := in.hostCall(ctx, in.fnValueDump, addr, 0)
	text, ok := readCString(in.mem, str)
	if !ok || str == 0 {
		panic(&builtinError{name: name, err: fmt.Errorf("opa_value_dump of argument at %#x failed", addr)})
	}
	t, err := parseValue(text)
	if err != nil {
		panic(&builtinError{name: name, err: fmt.Errorf("argument: %w", err)})
	}
	// The dump buffer is at least 1 KiB; free it so builtins called in a
	// loop do not grow the heap.
	in.hostCall(ctx, in.fnFree, str, 0)
	return t
}

// loadValue writes t into the module as an opa_value and returns its
// address. opa_value_parse rather than opa_json_parse, because a result may
// be a set or have non-string keys.
func (in *instance) loadValue(ctx context.Context, name string, t *ast.Term) uint32 {
	var err error
	in.buf, err = appendValue(in.buf[:0], t.Value)
	if err != nil {
		panic(&builtinError{name: name, err: fmt.Errorf("result: %w", err)})
	}
	n := uint32(len(in.buf))
	p := in.hostCall(ctx, in.fnMalloc, n, 0)
	if !in.mem.Write(p, in.buf) {
		panic(&builtinError{name: name, err: fmt.Errorf("result: writing %d bytes at %#x: out of memory bounds", n, p)})
	}
	addr := in.hostCall(ctx, in.fnValueParse, p, n)
	in.hostCall(ctx, in.fnFree, p, 0)
	if addr == 0 {
		panic(&builtinError{name: name, err: errors.New("result: the module could not parse the value")})
	}
	return addr
}

// hostCall calls back into the module from inside a host function. Failures
// (an abort in opa_malloc, interruption) propagate as the panic value so
// Eval classifies them as if opa_eval itself had failed.
func (in *instance) hostCall(ctx context.Context, fn api.Function, a, b uint32) uint32 {
	s := in.hostStack[:]
	s[0], s[1] = uint64(a), uint64(b)
	if err := fn.CallWithStack(ctx, s); err != nil {
		panic(err)
	}
	return uint32(s[0])
}
