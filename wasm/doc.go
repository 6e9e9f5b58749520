// Package wasm compiles a precheck policy to an OPA WebAssembly module and evaluates it on the project's
// own host, built on github.com/tetratelabs/wazero (pure Go, no cgo).
//
//	engine, err := policy.New(ctx, p, policy.WithBackend(wasm.Backend(wasm.Config{})))
//
// gives an Engine whose decisions are byte-identical to the rego backend's, several times faster.
//
// # The module
//
// Compile (and `precheck build`) produce precheck.wasm, an OPA wasm module (ABI 1.2+) with one entrypoint,
// precheck/decision, whose result is the decision document. Any OPA WebAssembly host can run it, given:
//
//   - env.memory, and the functions env.opa_abort, env.opa_println and env.opa_builtin0..4;
//   - the data document (the policy's data.json) parsed into the module, and the input document;
//   - the builtins the module imports by name (its "builtins" export): the project's dws.version_compare(a, b)
//     (-1, 0 or 1 by hashicorp/go-version; undefined, that is a 0 result address, unless both are version
//     strings) and dws.version_valid(a) (a boolean), and the standard time.now_ns and time.parse_rfc3339_ns,
//     which OPA does not compile into wasm (the waivers' expiry needs them).
//
// `precheck build --bundle` also writes an OPA bundle (.manifest with the revision and the wasm entrypoint,
// data.json, /policy.wasm) for hosts that load bundles.
//
// # The host
//
// The host (internal/opahost) uses the opa_eval fast path: the data document is parsed once per instance,
// each evaluation writes the input JSON straight into memory and resets the heap. Imported builtins are
// bound by name when the module loads, served by OPA's Go implementations (which include the project's,
// registered by package policy); a builtin the host cannot serve fails the load with its name. Instances
// are pooled (one per evaluation in flight, bounded), memory is capped, and an instance that trapped or
// aborted is discarded and replaced.
//
// precheck's own policies are trusted (Rego always terminates, and documents are bounded): they run the
// code compiled without wazero's termination checks, which make OPA's evaluator several times slower,
// under any context. A caller's deadline or cancellation is honoured all the same: it gets ctx.Err() at
// once, and the evaluation it abandoned finishes in the background on an instance that is then discarded.
// A watchdog takes an evaluation that runs past Config.RunawayLimit out of the pool and switches that
// policy to the interruptible code from then on, saying so in the log (Config.Logger), to
// Config.OnDegrade and in the engine's State; only then is that code compiled. Config.Interruptible runs
// it from the start. Third-party hook modules (package plugin/hookmodule) are not trusted and always run
// interruptible code.
//
// Config.Cache keeps the compiled module and wazero's machine code on disk across processes (OpenCache).
package wasm
