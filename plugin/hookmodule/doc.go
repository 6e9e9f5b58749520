// Package hookmodule hosts third-party precheck hooks compiled to WebAssembly, in any language, on
// github.com/tetratelabs/wazero, in a sandbox. A loaded Module is a plugin.Hook:
//
//	m, err := hookmodule.Load(ctx, wasmBytes, hookmodule.Config{})
//	if err != nil { ... }          // not a hook module, or one that imports what the sandbox withholds
//	defer m.Close(ctx)
//	chain, err := plugin.NewChain(plugin.PolicyHook("policy", engine), m)
//	decision, err := chain.CheckDocument(ctx, doc)
//
// examples/hooks/freeze is a complete hook written in Go.
//
// # The hook module ABI, version 1
//
// A hook module is a WebAssembly 1.0 (MVP) module that reads the input document (policy.Input, as in
// examples/inputs: {"request": {...}, "cluster": {...}, "key": {...}, "tenant": {...}}) as JSON and answers
// findings as JSON. It may import WASI preview 1 (wasi_snapshot_preview1)
// and nothing else. All integers are little-endian, as everywhere in wasm; addresses and lengths are byte
// offsets into the module's memory, unsigned 32-bit.
//
// The module exports:
//
//	memory                                  its linear memory, defined by the module (not imported)
//	precheck_abi_version() -> i32           the ABI version it was written for: 1
//	precheck_hook_name() -> i64             its name, packed (see below): 1 to 64 bytes of A-Z a-z 0-9 . _ -
//	precheck_alloc(size i32) -> i32         the address of size bytes the host may write, or 0 if it cannot
//	precheck_hook(ptr i32, len i32) -> i64  judges the document at [ptr, ptr+len); returns the findings, packed
//	_initialize() (optional)                called once, before any other export
//
// A packed i64 carries an address in its high 32 bits and a length in its low 32 bits:
// (uint64(ptr) << 32) | uint64(len), both unsigned. The answer of precheck_hook must not be empty.
//
// The name and the version are functions, not a custom section, because every toolchain can export a
// function (Go's //go:wasmexport, Rust's #[no_mangle] extern "C", C's export_name attribute) while Go cannot
// write a custom section. The host reads both once, at Load, from the first instance; a version other than
// 1 is a load error. The name is the hook's name in every refusal and in the decision's field "hook.NAME"
// when the hook fails.
//
// _initialize follows the WASI reactor convention: Go's -buildmode=c-shared and wasi-libc's reactor
// startup (clang -mexec-model=reactor) export it to run the language's runtime and package initialisers. A
// module that exports _start instead is a WASI command, whose _start runs main and exits: it is refused at
// load with a hint to build a reactor.
//
// # One call
//
// For each document the host calls, on one instance and never concurrently:
//
//	ptr := precheck_alloc(len)       // len > 0: the document's size in bytes
//	                                 // the host writes the document (UTF-8 JSON, an object) at [ptr, ptr+len)
//	packed := precheck_hook(ptr, len)
//	                                 // the host copies [packed>>32, packed>>32 + uint32(packed)) out
//
// Memory ownership: the bytes precheck_alloc returns are the host's to write until it calls precheck_hook
// with them; from then on they are the module's, which may free or reuse them as it pleases (typically when
// precheck_hook returns). The bytes precheck_hook and precheck_hook_name answer are the module's: they must
// stay valid and unchanged until the host calls the module's next export, and the host copies them out
// before calling anything else. A module typically keeps its last answer in a global and frees it on the
// next call. The host never frees anything (there is no precheck_free) and never reads or writes the
// module's memory except as above. An instance serves many calls in its life, one at a time, and may be
// discarded at any point between calls: a hook must not keep per-call state, and must not leak memory from
// call to call (a leak ends at the memory limit, in a failed call).
//
// # The findings
//
// precheck_hook answers one JSON object (UTF-8, at most MaxFindingsBytes bytes):
//
//	{
//	  "violations": [{"code": "FREEZE-TAG-001", "field": "cluster.tags", "message": "...",
//	                  "expected": "...", "actual": "...", "remediation": "..."}],
//	  "warnings":   [{"code": "...", "field": "...", "message": "..."}],
//	  "status":     403
//	}
//
// in which:
//
//   - violations deny the call, warnings never do. Either may be absent, null or empty; a hook that finds
//     nothing answers {}.
//   - code, field and message are required, non-empty strings; expected, actual and remediation are optional
//     strings. field is the dotted path of the input member at fault (cluster.tags, request.body.encrypt);
//     for a finding no member is at fault for, name the nearest one (request).
//   - code is the hook's own: 1 to 64 bytes of A-Z a-z 0-9 . _ -, and never in a namespace that is not the
//     hook's: DWS.* (the cloud API's error codes) and PRECHECK-* (precheck's own rules) are refused,
//     whatever their case.
//   - severity may be left out; the host sets it from the list ("deny" in violations, "warn" in warnings).
//     If given, it must agree with the list.
//   - status is the HTTP status a gate answers when the hook denies: an integer from 400 to 499, 403 when
//     absent. The decision's status is that of the hook; its error_code is the first violation's code in
//     precheck's order (code, then field, message, actual).
//   - Any other member is malformed: a misspelt "violation" must not pass as "no violations". So is a
//     member given twice, or spelt in another case ("Violations"), which JSON readers read differently.
//   - Every text (field, message, expected, actual, remediation, error) is one line as written: control
//     characters, line separators and bidirectional controls are malformed.
//
// A hook that cannot judge (a document it cannot read, a configuration error) answers
//
//	{"error": "why, in words a person can act on"}
//
// with a non-empty string; the other members are then ignored. The host turns it into an error from Run,
// which plugin.Chain turns into a refusal: a hook that cannot judge never allows.
//
// # The sandbox
//
// A module may import functions of wasi_snapshot_preview1 (wazero's implementation) and nothing else; any
// other import (a function of another module, a memory, table or global) is a load error naming it. Each instance sees:
//
//   - no arguments, no environment variables, no preopened directories (opening a file fails: there is no
//     file system), no sockets, an empty stdin, a stdout that is discarded, and a stderr whose last bytes
//     the host quotes when a call fails (a Go panic's message, say);
//   - the host's wall clock (or Config.Clock) and monotonic clock, and random bytes from crypto/rand;
//   - no sleep: poll_oneoff returns at once without waiting for its clock, since a host sleep could not be
//     cut short by the time limit (a Go hook that calls time.Sleep spins on the clock until the time limit
//     stops it);
//   - proc_exit ends the instance: exiting during a call, with any code, is a failure.
//
// Each instance's memory is capped (Config.MemoryLimitPages; a module whose memory declares a larger
// maximum, or a larger minimum, is refused at load). So is what the host pays for outside that memory,
// before anything is compiled: a module over MaxModuleBytes, tables of more than MaxTableEntries entries
// (a table declared without a maximum cannot grow), more locals than MaxFunctionLocals in a function or
// MaxModuleLocals in all, a section claiming more items than it has bytes. Each call into the module — a Run, and the creation
// of an instance, _initialize included — has a time limit (Config.Timeout) and is also stopped when the
// caller's context ends.
//
// # Failures
//
// Run returns an error, whose text names the hook and says what happened, when the module traps (a wasm
// trap, a Go panic, proc_exit), overruns its time limit, reaches its memory limit, breaks the ABI, answers
// something that is not findings, or answers {"error": ...}. The errors wrap ErrTrapped,
// context.DeadlineExceeded, ErrMemoryLimit, ErrMalformed or ErrNoJudgement, or the caller's context error.
// The instance is discarded either way (it may be half-way through anything), and the next Run gets a
// sound one.
//
// # Instances
//
// Instances are pooled: Go's wasip1 runtime takes 10 ms or so to initialise, a call a fraction of that.
// Load compiles the module once (wazero's CompilationCache keeps the machine code, so loading the same
// bytes again, before the previous Module is closed or into a Config.Cache of one's own, compiles nothing)
// and creates the first instance; further instances are created on demand, up to Config.MaxInstances. A
// Module is safe for concurrent use.
//
// Being able to stop a call has a price: wazero stops compiled code only at the termination checks it
// compiles in (RuntimeConfig.WithCloseOnContextDone), which leave the code for Go at every loop iteration.
// They make a Go hook three to four times slower (the freeze example: about 0.4 ms a call instead of
// 0.15 ms; BenchmarkRunFreeze). Unlike the policy engine, whose code is the project's, a hook is untrusted,
// so every call runs checked.
package hookmodule
