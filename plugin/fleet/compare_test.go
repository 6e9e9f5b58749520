package fleet_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/fleet"
	"github.com/precheck/precheck/policy"
)

var (
	enginesOnce               sync.Once
	currentEngine, bankEngine *policy.Engine
	enginesErr                error
)

// engines prepares the default policy and the regulated bank's override at one instant, once for the
// package's tests (preparing a policy is the slow part).
func engines(t testing.TB) (current, proposed *policy.Engine) {
	t.Helper()
	enginesOnce.Do(func() { currentEngine, bankEngine, enginesErr = prepareEngines() })
	if enginesErr != nil {
		t.Fatal(enginesErr)
	}
	return currentEngine, bankEngine
}

func prepareEngines() (current, proposed *policy.Engine, err error) {
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	clock := policy.WithClock(func() time.Time { return at })
	ctx := context.Background()
	def, err := policy.Default()
	if err != nil {
		return nil, nil, err
	}
	bank, err := policy.LoadWithOverrides("../../examples/policies/regulated-bank")
	if err != nil {
		return nil, nil, err
	}
	if current, err = policy.New(ctx, def, clock); err != nil {
		return nil, nil, err
	}
	proposed, err = policy.New(ctx, bank, clock)
	return current, proposed, err
}

// compareEntries are clusters that the bank's policy treats differently in each way it can: versions
// between the two minimums, key specs, algorithms, sub-statuses, missing key facts.
func compareEntries() []facts.Entry {
	var out []facts.Entry
	agents := []string{"8.3.0.200", "8.3.0.210"}
	versions := []string{"8.1.3.310", "8.1.0.100"}
	specs := []string{"AES_256", "SM4", ""}
	algorithms := []string{"SMcompatible", "generalCipher"}
	n := 0
	for _, ag := range agents {
		for _, v := range versions {
			for _, spec := range specs {
				for _, alg := range algorithms {
					n++
					sub := "NORMAL"
					if n%5 == 0 {
						sub = "DEGRADED"
					}
					e := facts.Entry{
						ProjectID: "89cd04f168b84af6be287f71730fdb4b",
						ClusterID: fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", n),
						Cluster: &policy.Cluster{Version: v, GuestAgentVersion: ag, Status: "AVAILABLE", SubStatus: sub,
							TaskStatus: policy.String(""), Encrypted: policy.Bool(false), DRRelationship: policy.Bool(false), EnterpriseProjectID: "0"},
						Encrypt: &facts.Encrypt{CryptAlgorithm: alg},
					}
					if spec != "" {
						e.Key = &policy.Key{KeyID: "0f3196c8-5c23-469f-84da-92ecd2499dce", KeyState: "2", KeySpec: spec}
					}
					out = append(out, e)
				}
			}
		}
	}
	// The API page's example cluster, below the default's guestAgent minimum: blocked now, and ready under
	// the bank's policy, whose waiver covers exactly that cluster.
	out = append(out, facts.Entry{
		ProjectID: "89cd04f168b84af6be287f71730fdb4b",
		ClusterID: "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		Cluster: &policy.Cluster{Version: "8.1.3.310", GuestAgentVersion: "8.3.0.100", Status: "AVAILABLE", SubStatus: "NORMAL",
			TaskStatus: policy.String(""), Encrypted: policy.Bool(false), DRRelationship: policy.Bool(false), EnterpriseProjectID: "0"},
		Key:     &policy.Key{KeyID: "0f3196c8-5c23-469f-84da-92ecd2499dce", KeyState: "2", KeySpec: "SM4"},
		Encrypt: &facts.Encrypt{CryptAlgorithm: "SMcompatible"},
	})
	return out
}

func TestCompareAgainstDecidingTwiceByHand(t *testing.T) {
	current, proposed := engines(t)
	entries := compareEntries()
	call := policy.Encrypt{MasterKeyID: "0f3196c8-5c23-469f-84da-92ecd2499dce"}
	imp, err := fleet.Compare(context.Background(), current, proposed, entries, call, 4)
	if err != nil {
		t.Fatal(err)
	}

	// By hand: each entry decided under each engine, one at a time.
	ctx := context.Background()
	var want []fleet.Change
	for i := range entries {
		b, err := current.Check(ctx, fleet.Input(&entries[i], call))
		if err != nil {
			t.Fatal(err)
		}
		a, err := proposed.Check(ctx, fleet.Input(&entries[i], call))
		if err != nil {
			t.Fatal(err)
		}
		if a.Allowed == b.Allowed {
			continue
		}
		ch := fleet.Change{ProjectID: entries[i].ProjectID, ClusterID: entries[i].ClusterID, Blocked: !a.Allowed}
		newer, older := a, b
		if a.Allowed {
			newer, older = b, a
		}
		for _, v := range newer.Violations {
			if !slices.ContainsFunc(older.Violations, func(o policy.Violation) bool { return o.Code == v.Code }) && !slices.Contains(ch.Rules, v.Code) {
				ch.Rules = append(ch.Rules, v.Code)
			}
		}
		slices.Sort(ch.Rules)
		want = append(want, ch)
	}
	if len(want) == 0 || imp.Unblocked == 0 {
		t.Fatalf("the fixture changes %d clusters, unblocking %d: it must do both", len(want), imp.Unblocked)
	}
	if len(imp.Changes) != len(want) {
		t.Fatalf("%d changes, want %d", len(imp.Changes), len(want))
	}
	blocked := 0
	for i, ch := range imp.Changes {
		w := want[i]
		if ch.ClusterID != w.ClusterID || ch.Blocked != w.Blocked || !slices.Equal(ch.Rules, w.Rules) || ch.Before == nil || ch.After == nil {
			t.Errorf("change %d = %s blocked=%v %v, want %s blocked=%v %v", i, ch.ClusterID, ch.Blocked, ch.Rules, w.ClusterID, w.Blocked, w.Rules)
		}
		if len(ch.Rules) == 0 {
			t.Errorf("change %d names no deciding rule", i)
		}
		if ch.Blocked {
			blocked++
		}
	}
	if imp.Blocked != blocked || imp.Unblocked != len(want)-blocked || imp.Decided != len(entries) {
		t.Errorf("summary %d blocked, %d unblocked of %d; want %d, %d of %d", imp.Blocked, imp.Unblocked, imp.Decided, blocked, len(want)-blocked, len(entries))
	}
	// The per-rule summary counts the changes each rule is part of, most first.
	total := map[string]int{}
	for _, ch := range want {
		for _, r := range ch.Rules {
			total[r]++
		}
	}
	for i, ri := range imp.ByRule {
		if ri.Blocks+ri.Unblocks != total[ri.Code] {
			t.Errorf("%s: %d+%d, want %d", ri.Code, ri.Blocks, ri.Unblocks, total[ri.Code])
		}
		if i > 0 && imp.ByRule[i-1].Blocks+imp.ByRule[i-1].Unblocks < ri.Blocks+ri.Unblocks {
			t.Errorf("ByRule not sorted at %d", i)
		}
	}
	if len(imp.ByRule) != len(total) {
		t.Errorf("ByRule has %d rules, want %d", len(imp.ByRule), len(total))
	}
	t.Logf("the bank's policy blocks %d and unblocks %d of %d; by rule: %+v", imp.Blocked, imp.Unblocked, imp.Decided, imp.ByRule)
}

func TestCompareSamePolicyChangesNothing(t *testing.T) {
	current, _ := engines(t)
	imp, err := fleet.Compare(context.Background(), current, current, compareEntries()[:12], policy.Encrypt{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Changes) != 0 || imp.Blocked+imp.Unblocked != 0 || len(imp.ByRule) != 0 {
		t.Errorf("a policy compared with itself changed %d clusters", len(imp.Changes))
	}
}
