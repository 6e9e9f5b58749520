package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/precheck/precheck/plugin/dwsfake"
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

// BenchmarkFleetFromAPI runs `fleet --from-api` as a person would, over a fake DWS and KMS of 1,000 clusters
// in two projects (plugin/dwsfake, on loopback): listing both projects, gathering every cluster's facts
// through the official SDK (details and encryption per cluster; DR relationships and the key once per
// project) with no rate limit and the default concurrency, overlaying the agents inventory, deciding on
// the wasm engine and writing the JSON report. It measures precheck's own cost: a real API's latency and
// its rate limit (--rate) bound a real run far more.
func BenchmarkFleetFromAPI(b *testing.B) {
	const clusters = 1000
	b.Setenv("HUAWEICLOUD_SDK_AK", dwsfake.TestAK)
	b.Setenv("HUAWEICLOUD_SDK_SK", dwsfake.TestSK)
	srv, agents := newFleetFake(b, clusters)
	args := slices.Concat([]string{"fleet", "--from-api", "--inventory", agents, "--rate", "0", "--format", "json"},
		fleetTargetArgs(srv), fleetAPIArgs)
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	runs := 0
	for b.Loop() {
		if code := run(context.Background(), e, args); code != exitAllowed {
			b.Fatalf("exit %d", code)
		}
		runs++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(runs*clusters), "ns/cluster")
	b.ReportMetric(float64(len(srv.Requests()))/float64(runs*clusters), "requests/cluster")
}
