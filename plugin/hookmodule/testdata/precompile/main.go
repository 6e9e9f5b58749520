// Command precompile compiles hook modules into a wazero compilation cache directory, for the tests of
// package hookmodule: built without -race, it compiles a Go module in a second or two, where the test
// binary, whose compiler (wazero's) runs under the race detector, takes the better part of a minute. The
// tests then load the modules with Config.Cache reading that directory, and find the machine code there.
//
// Usage: precompile CACHEDIR MODULE.wasm...
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/precheck/precheck/plugin/hookmodule"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: precompile CACHEDIR MODULE.wasm...")
		os.Exit(2)
	}
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var (
		wg     sync.WaitGroup
		failed atomic.Bool
	)
	for _, path := range os.Args[2:] {
		wg.Go(func() {
			if err := compile(ctx, cache, path); err != nil {
				fmt.Fprintf(os.Stderr, "precompile %s: %v\n", path, err)
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	if err := cache.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		failed.Store(true)
	}
	if failed.Load() {
		os.Exit(1)
	}
}

// compile loads the module with hookmodule.Load, so that it is compiled exactly as the tests' Loads
// compile it (with the termination checks, which are part of the cache key), and closes it: its code
// stays in the cache.
func compile(ctx context.Context, cache wazero.CompilationCache, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	m, err := hookmodule.Load(ctx, data, hookmodule.Config{Cache: cache, Timeout: time.Minute})
	if err != nil {
		return err
	}
	return m.Close(ctx)
}
