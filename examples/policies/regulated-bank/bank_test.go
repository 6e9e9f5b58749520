// Package bank_test checks the regulated-bank override against what its README says it does.
package bank_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/precheck/precheck/policy"
)

func load(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.LoadWithOverrides(".")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestREADMETable decides every row of the README's table and compares the outcome with the row.
func TestREADMETable(t *testing.T) {
	t.Parallel()
	p := load(t)
	// One engine decides every row, each at its own instant: the clock reads what the row sets before it
	// decides (the rows run one after another).
	var now atomic.Pointer[time.Time]
	e, err := policy.New(context.Background(), p, policy.WithClock(func() time.Time { return *now.Load() }))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		input, at, decision := strings.Trim(cells[0], "`"), cells[1], cells[2]
		rows++
		t.Run(input+"@"+at, func(t *testing.T) {
			at, err := time.Parse(time.RFC3339, at)
			if err != nil {
				t.Fatal(err)
			}
			now.Store(&at)
			doc, err := os.ReadFile(input)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.CheckJSON(context.Background(), doc)
			if err != nil {
				t.Fatal(err)
			}
			if got := map[bool]string{true: "allowed", false: "denied"}[d.Allowed]; got != decision {
				t.Errorf("decision %s, README says %s (%+v)", got, decision, d.Violations)
			}
			if got, want := codes(d.Violations), list(cells[3]); !slices.Equal(got, want) {
				t.Errorf("violations %q, README says %q", got, want)
			}
			if got, want := codes(d.Warnings), list(cells[4]); !slices.Equal(got, want) {
				t.Errorf("warnings %q, README says %q", got, want)
			}
		})
	}
	if rows < 8 {
		t.Fatalf("the README's table has %d rows", rows)
	}
}

func codes(vs []policy.Violation) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Code)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func list(cell string) []string {
	out := []string{}
	for _, c := range strings.Split(cell, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// TestRegoTestsAndLint: the override's own Rego tests pass over the default policy, and it lints clean.
func TestRegoTestsAndLint(t *testing.T) {
	t.Parallel()
	p := load(t)
	report, err := p.Test(context.Background(), policy.TestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bank := 0
	for _, r := range report.Results {
		if !r.Pass() {
			t.Errorf("%s.%s failed", r.Package, r.Name)
		}
		if strings.Contains(r.Package, "bank_test") {
			bank++
		}
	}
	if bank < 5 {
		t.Errorf("only %d of the bank's tests ran", bank)
	}
	for _, problem := range p.Lint() {
		t.Error(problem)
	}
}
