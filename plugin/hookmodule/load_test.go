package hookmodule_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/hookmodule"
)

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	abi := handWritten(answering(32, 2))
	for _, tc := range []struct {
		name   string
		module []byte
		cfg    hookmodule.Config
		says   []string
	}{
		{"not wasm", []byte("#!/bin/sh\necho allow\n"), hookmodule.Config{},
			[]string{"hookmodule: compiling the module: invalid magic number"}},
		{"no exports", wasmModule{}.bytes(), hookmodule.Config{},
			[]string{"not a precheck hook module (ABI 1): it does not export memory, precheck_abi_version, precheck_hook_name, precheck_alloc, precheck_hook"}},
		{"a WASI command", wasmModule{memPages: 1, funcs: []wasmFunc{{export: "_start"}}}.bytes(), hookmodule.Config{},
			[]string{"it does not export precheck_abi_version,", "it exports _start: it is a WASI command", "-buildmode=c-shared"}},
		{"a foreign import", handWritten(answering(32, 2), func(w *wasmModule) {
			w.imports = []wasmImport{
				{module: "env", name: "precheck_log", params: []byte{i32, i32}},
				{module: "wasi_snapshot_preview1", name: "fd_write", params: []byte{i32, i32, i32, i32}, results: []byte{i32}},
			}
		}), hookmodule.Config{},
			[]string{"the module imports function env.precheck_log; a hook module may import only wasi_snapshot_preview1 functions"}},
		{"a global and a table", handWritten(answering(32, 2), func(w *wasmModule) {
			w.imports = []wasmImport{{module: "env", name: "g", global: true}, {module: "env", name: "tbl", table: true}}
		}), hookmodule.Config{},
			[]string{"module[env] not instantiated"}},
		{"an unknown WASI function", handWritten(answering(32, 2), func(w *wasmModule) {
			w.imports = []wasmImport{{module: "wasi_snapshot_preview1", name: "sock_open", params: []byte{i32}, results: []byte{i32}}}
		}), hookmodule.Config{},
			[]string{"imports function wasi_snapshot_preview1.sock_open (not a WASI preview 1 function)"}},
		{"an imported memory", handWritten(answering(32, 2), func(w *wasmModule) {
			w.imports = []wasmImport{{module: "env", name: "memory", memory: true}}
			w.memPages, w.data = 0, nil
		}), hookmodule.Config{},
			[]string{"imports memory env.memory;", "defines its own memory"}},
		{"a wrong signature", handWritten(nil, func(w *wasmModule) {
			w.funcs[3] = wasmFunc{export: "precheck_hook", params: []byte{i32}, results: []byte{i32}, body: i32Const(0)}
		}), hookmodule.Config{},
			[]string{"precheck_hook is (i32) -> i32, not (i32, i32) -> i64"}},
		{"ABI version 2", handWritten(answering(32, 2), func(w *wasmModule) { w.funcs[0].body = i32Const(2) }), hookmodule.Config{},
			[]string{"written for hook ABI version 2; this host speaks version 1"}},
		{"a bad name", handWritten(answering(32, 2), func(w *wasmModule) { w.data[16] = "hand/writte" }), hookmodule.Config{},
			[]string{`the hook's name "hand/writte" is not 1 to 64 bytes`}},
		{"a name outside memory", handWritten(answering(32, 2), func(w *wasmModule) { w.funcs[1].body = i64Const(packed(65530, 11)) }), hookmodule.Config{},
			[]string{"precheck_hook_name", "outside its memory of 65536 bytes"}},
		{"a trapping _initialize", handWritten(answering(32, 2), func(w *wasmModule) {
			w.funcs = append(w.funcs, wasmFunc{export: "_initialize", body: unreachable})
		}), hookmodule.Config{},
			[]string{"hookmodule: creating an instance: ", "unreachable"}},
		{"a looping _initialize", handWritten(answering(32, 2), func(w *wasmModule) {
			w.funcs = append(w.funcs, wasmFunc{export: "_initialize", body: endlessLoop})
		}), hookmodule.Config{Timeout: 100 * time.Millisecond},
			[]string{"hookmodule: creating an instance: did not finish within its time limit of 100ms"}},
		{"memory over the limit", handWritten(answering(32, 2), func(w *wasmModule) { w.memPages = 20 }), hookmodule.Config{MemoryLimitPages: 16},
			[]string{"compiling the module: section memory: min 20 pages (1 Mi) over limit of 16 pages"}},
		{"a limit over 4 GiB", abi, hookmodule.Config{MemoryLimitPages: 65537},
			[]string{"memory limit of 65537 pages is over the 65536 pages"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := hookmodule.Load(context.Background(), tc.module, tc.cfg)
			if err == nil {
				m.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error = %q\nwant it to say %q", err, s)
				}
			}
		})
	}
}

// TestHandWritten runs a hook written in raw wasm: what a module in any language can do wrong.
func TestHandWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	doc := document(t, `{"request": {}}`)
	for _, tc := range []struct {
		name   string
		module []byte
		is     error
		says   string
	}{
		{"trap", handWritten(unreachable), hookmodule.ErrTrapped, "hook handwritten: trapped in precheck_hook: wasm error: unreachable"},
		{"loop", handWritten(endlessLoop), context.DeadlineExceeded, "hook handwritten: did not finish within its time limit of 200ms"},
		{"answer outside memory", handWritten(answering(65535, 2)), hookmodule.ErrMalformed, "answered 2 bytes at 0xffff, outside its memory of 65536 bytes"},
		{"empty answer", handWritten(answering(32, 0)), hookmodule.ErrMalformed, "answered nothing"},
		{"huge answer", handWritten(answering(0, 2<<20)), hookmodule.ErrMalformed, "answered 2097152 bytes, over the limit of 1048576"},
		{"alloc fails", handWritten(answering(32, 2), func(w *wasmModule) { w.funcs[2].body = i32Const(0) }),
			hookmodule.ErrMalformed, "precheck_alloc returned 0 for the 15 bytes of the document"},
		{"alloc outside memory", handWritten(answering(32, 2), func(w *wasmModule) { w.funcs[2].body = i32Const(65530) }),
			hookmodule.ErrMalformed, "precheck_alloc returned 0xfffa, and 15 bytes there are outside its memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := load(t, tc.module, hookmodule.Config{Timeout: 200 * time.Millisecond})
			if m.Name() != "handwritten" {
				t.Errorf("Name() = %q", m.Name())
			}
			_, err := m.Run(ctx, doc)
			if !errors.Is(err, tc.is) || err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error = %v (wrapping %v?), want %q", err, tc.is, tc.says)
			}
		})
	}

	m := load(t, handWritten(answering(32, 2)), hookmodule.Config{})
	for range 3 {
		d, err := m.Run(ctx, doc)
		if err != nil || !d.Allowed || d.Violations == nil || d.Warnings == nil || d.Error != nil {
			t.Errorf("a hook answering {}: %+v, %v; want allowed, empty lists", d, err)
		}
	}
}
