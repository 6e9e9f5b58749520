package hookmodule_test

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/precheck/precheck/plugin/hookmodule"
)

// growTable is table.grow of table 0 by n null entries, its result dropped.
func growTable(n int32) []byte {
	return append(append([]byte{0xd0, 0x70}, i32Const(n)...), 0xfc, 0x0f, 0x00, 0x1a)
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// A table costs the host 8 bytes an entry on every instance, outside the memory limit: a table declared
// without a maximum keeps the size it starts with (table.grow fails), and declarations over the bounds are
// refused before anything is compiled. Not parallel: it measures the process's heap.
func TestTablesAreBounded(t *testing.T) {
	grows := handWritten(append(growTable(1<<22), answering(32, 2)...), func(w *wasmModule) { w.tables = []wasmTable{{min: 0}} })
	m := load(t, grows, hookmodule.Config{MemoryLimitPages: 1, MaxInstances: 1})
	doc := document(t, `{"request": {}}`)
	before := heapInUse()
	for range 2 { // the instance is kept between the calls
		if d, err := m.Run(context.Background(), doc); err != nil || !d.Allowed {
			t.Fatalf("%+v, %v", d, err)
		}
	}
	if grew := heapInUse() - min(heapInUse(), before); grew > 16<<20 {
		t.Errorf("two calls growing a table by 4 Mi entries grew the host's heap by %d MiB", grew>>20)
	}

	for name, tables := range map[string][]wasmTable{
		"a minimum":       {{min: hookmodule.MaxTableEntries + 1}},
		"a maximum":       {{min: 1, max: 1 << 30, hasMax: true}},
		"several tables":  {{min: 1 << 19}, {min: 1 << 19}, {min: 1}},
		"the largest u32": {{min: 1<<32 - 1}},
	} {
		_, err := hookmodule.Load(context.Background(), handWritten(answering(32, 2), func(w *wasmModule) { w.tables = tables }), hookmodule.Config{})
		if err == nil || !strings.Contains(err.Error(), "hookmodule: the module is refused: its tables hold up to") {
			t.Errorf("%s over the bound: %v", name, err)
		}
	}
	m = load(t, handWritten(answering(32, 2), func(w *wasmModule) {
		w.tables = []wasmTable{{min: 6409}, {min: 2, max: 10, hasMax: true}} // a Go module's, and one that may grow
	}), hookmodule.Config{})
	if d, err := m.Run(context.Background(), doc); err != nil || !d.Allowed {
		t.Errorf("tables within the bound: %+v, %v", d, err)
	}
}

// Locals cost the host memory while the module compiles, called or not, and wazero's compiler does not
// stop for a context: a function's, and a module's, are bounded before compiling.
func TestLocalsAreBounded(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		funcs []uint32
		says  string
	}{
		"one function": {[]uint32{hookmodule.MaxFunctionLocals + 1}, "function body 4 declares 65537 or more locals, over the limit of 65536"},
		"the module":   {slices.Repeat([]uint32{60000}, 70), "its functions declare 4200000 or more locals, over the limit of 4194304"},
		"the largest":  {[]uint32{1<<32 - 1}, "over the limit of 65536"},
	} {
		wasm := handWritten(answering(32, 2), func(w *wasmModule) {
			for _, n := range c.funcs {
				w.funcs = append(w.funcs, wasmFunc{locals: n})
			}
		})
		_, err := hookmodule.Load(context.Background(), wasm, hookmodule.Config{Cache: wazero.NewCompilationCache()})
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v\nwant it to say %q", name, err, c.says)
		}
	}
	m := load(t, handWritten(answering(32, 2), func(w *wasmModule) { w.funcs = append(w.funcs, wasmFunc{locals: 20}) }), hookmodule.Config{})
	if d, err := m.Run(context.Background(), document(t, `{"request": {}}`)); err != nil || !d.Allowed {
		t.Errorf("a function of 20 locals: %+v, %v", d, err)
	}
}

// FuzzBounded: whatever the bytes, reading their bounds does not panic; a module it passes is passed
// again unchanged (every table's maximum explicit, within the bounds), and wazero compiles it exactly when
// it compiles the module as given: the rewrite changes no module's validity.
func FuzzBounded(f *testing.F) {
	f.Add(handWritten(answering(32, 2)))
	f.Add(handWritten(answering(32, 2), func(w *wasmModule) {
		w.tables = []wasmTable{{min: 3}, {min: 1, max: 4, hasMax: true}}
		w.funcs = append(w.funcs, wasmFunc{locals: 7, body: growTable(2)})
	}))
	f.Add(handWritten(answering(32, 2), func(w *wasmModule) { w.tables = []wasmTable{{min: 5, max: 2, hasMax: true}} })) // invalid
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x04\x04\x01\x70\x00\x00\x04\x04\x01\x70\x00\x00"))                             // two table sections
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x00\x03\x01a\x00"))                                                            // a custom section
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	compiles := func(b []byte) bool {
		m, err := rt.CompileModule(ctx, b)
		if err == nil {
			m.Close(ctx)
		}
		return err == nil
	}
	f.Fuzz(func(t *testing.T, module []byte) {
		out, err := hookmodule.Bounded(module)
		if err != nil {
			return
		}
		again, err := hookmodule.Bounded(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("passed, then %v on its own output", err)
		}
		if compiles(module) != compiles(out) {
			t.Fatalf("wazero compiles the module: %v, its bounded form: %v", compiles(module), compiles(out))
		}
	})
}
