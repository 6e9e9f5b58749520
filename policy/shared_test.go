package policy_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/precheck/precheck/policy"
)

// One Policy (Default's is shared by every caller in the process) serves evaluations, explanations, its
// Rego tests, lint and the bundle at the same time: none of them may change what the others read. Run
// with -race, which is what this test is for.
func TestSharedPolicyIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	raw, err := os.ReadFile("../examples/inputs/denied-guest-agent-too-old.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := policy.ReadDocument(raw, policy.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	jobs := map[string]func() error{
		"check": func() error {
			_, err := eng.CheckDocument(ctx, doc)
			return err
		},
		"explain": func() error {
			d, err := eng.CheckDocument(ctx, doc)
			if err == nil {
				_, err = p.Explain(doc, d)
			}
			return err
		},
		"test": func() error {
			_, err := p.Test(ctx, policy.TestOptions{Run: "test_available_statuses"})
			return err
		},
		"lint": func() error { p.Lint(); return nil },
		"bundle": func() error {
			p.Bundle()
			for _, m := range p.Modules() {
				m.Rules = nil // the caller's copy: changing it changes nothing of p's
			}
			return nil
		},
	}
	var wg sync.WaitGroup
	for name, job := range jobs {
		for range 2 {
			wg.Go(func() {
				if err := job(); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			})
		}
	}
	wg.Wait()
	if d, err := eng.CheckDocument(ctx, doc); err != nil || d.Allowed || len(d.Violations) != 1 {
		t.Errorf("after: %+v, %v", d, err)
	}
	for path, m := range p.Modules() {
		if len(m.Rules) == 0 {
			t.Errorf("%s lost its rules to a caller's change of its copy", path)
		}
	}
}
