package policytest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/precheck/precheck/policy/policytest"
)

// TestSyncBufferConcurrentWrites: writers on many goroutines and a reader race on nothing (this test runs
// under -race) and lose no write.
func TestSyncBufferConcurrentWrites(t *testing.T) {
	t.Parallel()
	var b policytest.SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				fmt.Fprintf(&b, "w%d-%d\n", i, j)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "\n"); got != 800 {
		t.Fatalf("%d lines written, want 800", got)
	}
}

func ExampleSyncBuffer() {
	var logs policytest.SyncBuffer // hand &logs to a logger that writes from other goroutines
	done := make(chan struct{})
	go func() {
		fmt.Fprintln(&logs, "level=WARN msg=degraded")
		close(done)
	}()
	<-done
	fmt.Print(logs.String())
	// Output: level=WARN msg=degraded
}
