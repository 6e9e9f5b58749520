package hookmodule_test

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/precheck/precheck/plugin/hookmodule"
)

// BenchmarkRunFreeze is one Run of the freeze hook on a warm instance: copying the document in, the
// hook's own JSON decoding and encoding, and reading its findings.
func BenchmarkRunFreeze(b *testing.B) {
	m := load(b, module(b, freezeModule), hookmodule.Config{})
	ctx := context.Background()
	doc := document(b, `{"request": {"project_id": "89cd04f168b84af6be287f71730fdb4b"},
		"cluster": {"version": "8.1.3.310", "tags": [{"key": "env", "value": "prod"}, {"key": "change-freeze", "value": "true"}]}}`)
	b.ReportAllocs()
	for b.Loop() {
		d, err := m.Run(ctx, doc)
		if err != nil || d.Allowed {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkRunFreezeParallel is Run from GOMAXPROCS goroutines, one instance each.
func BenchmarkRunFreezeParallel(b *testing.B) {
	m := load(b, module(b, freezeModule), hookmodule.Config{})
	ctx := context.Background()
	doc := document(b, `{"cluster": {"tags": [{"key": "change-freeze", "value": "true"}]}}`)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Run(ctx, doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLoadCompile is Load of the freeze hook into an empty cache: compiling a Go module.
func BenchmarkLoadCompile(b *testing.B) {
	wasm := module(b, freezeModule)
	ctx := context.Background()
	for b.Loop() {
		cache := wazero.NewCompilationCache()
		m, err := hookmodule.Load(ctx, wasm, hookmodule.Config{Cache: cache})
		if err != nil {
			b.Fatal(err)
		}
		m.Close(ctx)
		cache.Close(ctx)
	}
}

// BenchmarkLoadCached is Load of the freeze hook whose code is in the cache: checking the module and
// creating its first instance (Go's runtime initialisation).
func BenchmarkLoadCached(b *testing.B) {
	wasm := module(b, freezeModule)
	load(b, wasm, hookmodule.Config{}) // open while the benchmark runs: its code stays in the package's cache
	ctx := context.Background()
	for b.Loop() {
		m, err := hookmodule.Load(ctx, wasm, hookmodule.Config{})
		if err != nil {
			b.Fatal(err)
		}
		m.Close(ctx)
	}
}

// BenchmarkRunOverhead is one Run of a hand-written module that answers {} at once: the host's share of a
// call (the pool, the deadline, copying the document in and the findings out, decoding them).
func BenchmarkRunOverhead(b *testing.B) {
	m := load(b, handWritten(answering(32, 2)), hookmodule.Config{})
	ctx := context.Background()
	doc := document(b, `{"cluster": {"tags": [{"key": "change-freeze", "value": "true"}]}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Run(ctx, doc); err != nil {
			b.Fatal(err)
		}
	}
}
