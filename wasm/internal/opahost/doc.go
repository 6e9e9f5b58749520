// Package opahost evaluates OPA policies compiled to WebAssembly
// (opa build -t wasm, or the compile package with target wasm) on wazero,
// in pure Go. It is the checker's fast path: an evaluation writes the input
// JSON bytes into an already-initialised instance, makes one call into the
// module (opa_eval, ABI 1.2+) and copies the result JSON out, so the cost is
// the policy itself plus a few hundred nanoseconds of host overhead.
//
// # Why there is a glue module
//
// An OPA policy module imports its linear memory and its host functions
// (opa_abort, opa_println, opa_builtin0..4) from one module called "env".
// wazero's Go host modules can export functions but not memories, so the
// Go functions live in a host module ("opahost") and each instance gets a
// tiny hand-assembled wasm module that owns the instance's memory and
// re-exports the host functions, standing in for "env". The memory's
// maximum is the configured memory limit. Every instance needs its own
// memory, so each pool instance instantiates its own glue and policy from
// the modules Load compiled.
//
// # The fast code, deadlines and the watchdog
//
// wazero can only stop running wasm code that was compiled with its
// termination checks (RuntimeConfig.WithCloseOnContextDone), and those
// checks leave native code for Go at every loop iteration: OPA's evaluator
// runs several times slower with them (BenchmarkEval). A trusted module
// (the default) is compiled without them only, and runs that fast code
// under any context. A context that can end is still honoured: the
// evaluation runs on the instance's own goroutine, and when the context
// ends first Eval returns at once with an error wrapping ctx.Err(); the
// evaluation it abandoned cannot be stopped, so it finishes in the
// background, keeping its place in the pool, and its instance is then
// discarded. A watchdog takes an evaluation that runs past
// Config.RunawayLimit out of the pool (another instance takes its place)
// and switches the Policy for good to code compiled with the checks, which
// is compiled then and not before. A module that is not trusted
// (Config.Interruptible) has only that code, and the end of a context
// stops it. Policy.State says which code runs and what the watchdog did.
//
// Go cannot preempt a goroutine that runs wasm code: a trusted Policy
// makes sure the process has a P more than the Policy has instances, so
// that timers, the watchdog and the rest of the process keep running while
// every instance is busy. Stop-the-world pauses (the garbage collector's)
// still wait for a running evaluation of the fast code.
//
// # Builtins
//
// Builtins the module does not implement natively (sprintf, time.now_ns,
// custom ones registered with rego.RegisterBuiltinN, ...) are imported by
// name and served from OPA's topdown registry. Load fails, naming them, if
// any is not registered in the process. An undefined builtin result keeps
// the expression undefined, as in topdown; a builtin error fails the
// evaluation (topdown's behaviour under rego.StrictBuiltinErrors).
//
// # Use
//
//	p, err := opahost.Load(ctx, wasmBytes, dataJSON, opahost.Config{})
//	if err != nil { ... }
//	defer p.Close(ctx)
//	ep := p.Entrypoints()["example/allow"]
//	res, err := p.Eval(ctx, ep, []byte(`{"user":"alice"}`), opahost.EvalOptions{})
//	// res is the result set, e.g. [{"result":true}]
//
// A Policy is safe for concurrent use; it keeps up to Config.MaxInstances
// instances and Eval waits (honouring ctx) when all are busy.
package opahost
