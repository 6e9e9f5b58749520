package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/precheck/precheck/plugin/facts"
)

// BenchmarkFleet runs the whole command, as a person would, on an inventory of 10,000 clusters (the testdata
// mix: ready, blocked for every reason, calls from the flags): reading the inventory, loading and compiling the
// policy, deciding every cluster on a pool of GOMAXPROCS workers, and writing the report.
func BenchmarkFleet(b *testing.B) {
	const clusters = 10_000
	inv, err := facts.ReadInventory(fleetInventory)
	if err != nil {
		b.Fatal(err)
	}
	path := writeFleetInventory(b, fleetMix(inv.Entries, clusters))
	for _, format := range []string{"json", "text"} {
		b.Run("engine=wasm/format="+format, func(b *testing.B) {
			e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
			args := append([]string{"fleet", "--inventory", path, "--engine", "wasm", "--format", format}, fleetArgs...)
			runs := 0
			for b.Loop() {
				if code := run(context.Background(), e, args); code != exitAllowed {
					b.Fatalf("exit %d", code)
				}
				runs++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(runs*clusters), "ns/cluster")
		})
	}
}
