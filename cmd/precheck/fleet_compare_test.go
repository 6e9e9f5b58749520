package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/facts"
	fleetlib "github.com/precheck/precheck/plugin/fleet"
	"github.com/precheck/precheck/policy"
)

// compareAt is the instant of the compare tests: the bank's agent waiver is still active then.
const compareAt = "2026-06-01T00:00:00Z"

// compareCall is the intended call for the generated entries that give none.
var compareCall = facts.Encrypt{CryptAlgorithm: "SMcompatible", MasterKeyID: "0f3196c8-5c23-469f-84da-92ecd2499dce", MasterKeyName: "KMS-1abd-1016"}

var compareArgs = []string{"--at", compareAt, "--algorithm", compareCall.CryptAlgorithm, "--key-id", compareCall.MasterKeyID,
	"--key-name", compareCall.MasterKeyName, "--compare-policy", bankPolicy}

// generateFleet makes n clusters with varied facts (deterministic in n): versions and guestAgent versions
// around both policies' minimums, both algorithms and key specs, tenant classes given and not, busy,
// frozen and encrypted clusters, missing facts, and the cluster the bank's agent waiver names.
func generateFleet(n int) []facts.Entry {
	r := rand.New(rand.NewPCG(13, uint64(n)))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	out := make([]facts.Entry, n)
	for i := range out {
		e := facts.Entry{
			ProjectID: pick("89cd04f168b84af6be287f71730fdb4b", "0123456789abcdef0123456789abcdef"),
			ClusterID: fmt.Sprintf("c0ffee00-%04x-4000-8000-%012x", i, i),
			Cluster: &policy.Cluster{
				Version:             pick("8.1.3.310", "8.1.3.310", "8.1.1", "8.1.0", "8.0.0", "7.3.0.100"),
				GuestAgentVersion:   pick("8.3.0.200", "8.3.0.210", "8.3.0.210", "8.3.1.0", "8.3.0.199", ""),
				Status:              pick("AVAILABLE", "AVAILABLE", "AVAILABLE", "ACTIVE", "FROZEN"),
				SubStatus:           pick("NORMAL", "NORMAL", "NORMAL", "DEGRADED"),
				TaskStatus:          policy.String(pick("", "", "", "", "SNAPSHOTTING")),
				Encrypted:           policy.Bool(r.IntN(15) == 0),
				DRRelationship:      policy.Bool(r.IntN(12) == 0),
				EnterpriseProjectID: "0",
				Tags:                []policy.Tag{{Key: "env", Value: pick("prod", "test")}},
			},
		}
		if spec := pick("SM4", "SM4", "AES_256", ""); spec != "" {
			e.Key = &policy.Key{KeyID: compareCall.MasterKeyID, KeyState: pick("2", "2", "2", "3"), KeySpec: spec}
		}
		if class := pick("", "default", "regulated"); class != "" {
			e.Tenant = &policy.Tenant{Class: class}
		}
		if alg := pick("", "", "generalCipher", "SMcompatible"); alg != "" {
			e.Encrypt = &facts.Encrypt{CryptAlgorithm: alg}
		}
		out[i] = e
	}
	// The cluster of the bank's waiver of PRECHECK-VER-002, on an agent the default policy refuses and
	// otherwise ready under the bank's: the change unblocks it.
	if n > 3 {
		c := &out[3]
		c.ClusterID = "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"
		*c.Cluster = policy.Cluster{Version: "8.1.3.310", GuestAgentVersion: "8.3.0.199", Status: "AVAILABLE", SubStatus: "NORMAL",
			TaskStatus: policy.String(""), Encrypted: policy.Bool(false), DRRelationship: policy.Bool(false), EnterpriseProjectID: "0"}
		c.Key = &policy.Key{KeyID: compareCall.MasterKeyID, KeyState: "2", KeySpec: "SM4"}
		c.Tenant, c.Encrypt = &policy.Tenant{Class: "regulated"}, nil
	}
	return out
}

// TestFleetCompare: --compare-policy reports exactly the clusters whose verdict differs between the default
// policy and the regulated bank's, with the rules that make the difference, as deciding each cluster twice
// by hand says. The Rego engine, by hand and in the command: compiling the bank's policy to WebAssembly
// costs more than deciding this fleet (TestFleetEnginesAgree holds the engines to the same decisions).
func TestFleetCompare(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	const n = 64
	entries := generateFleet(n)
	path := writeFleetInventory(t, entries)
	code, out, errOut := precheck(t, "", slices.Concat([]string{"fleet", "--inventory", path, "--format", "json", "--engine", "rego"}, compareArgs)...)
	if code != exitAllowed {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var got impactReport
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}

	// By hand: both policies' engines at the same instant, every cluster decided under each.
	ctx := context.Background()
	at, _ := time.Parse(time.RFC3339, compareAt)
	clock := policy.WithClock(func() time.Time { return at })
	// The default's evaluator is the one prepared once for the process (as the command's is).
	def := must(defaultPolicy())
	current := must(policy.New(ctx, def, clock, policy.WithBackend(must((&policyFlags{engine: "rego"}).backendFor(ctx, def)))))
	proposed := must(policy.New(ctx, must(policy.LoadWithOverrides(bankPolicy)), clock))
	var want []impactChange
	blocks, unblocks := 0, 0
	for i := range entries {
		in := fleetlib.Input(&entries[i], compareCall)
		before, after := must(current.Check(ctx, in)), must(proposed.Check(ctx, in))
		if before.Allowed == after.Allowed {
			continue
		}
		c := impactChange{ProjectID: entries[i].ProjectID, ClusterID: entries[i].ClusterID, Change: changeBlocks}
		deciding, other := after, before
		if before.Allowed {
			blocks++
		} else {
			c.Change, deciding, other = changeUnblocks, before, after
			unblocks++
		}
		for _, v := range deciding.Violations {
			if !slices.ContainsFunc(other.Violations, func(o policy.Violation) bool { return o.Code == v.Code }) {
				c.Rules = append(c.Rules, v.Code)
				c.Findings = append(c.Findings, v)
			}
		}
		slices.Sort(c.Rules)
		c.Rules = slices.Compact(c.Rules)
		want = append(want, c)
	}
	if blocks == 0 || unblocks == 0 {
		t.Fatalf("a generated fleet the bank's policy blocks %d and unblocks %d of: make it more varied", blocks, unblocks)
	}
	if len(got.Changes) != len(want) {
		t.Errorf("%d changes, want %d", len(got.Changes), len(want))
	}
	for i := range min(len(got.Changes), len(want)) {
		g, w := got.Changes[i], want[i]
		if g.ClusterID != w.ClusterID || g.Change != w.Change || !reflect.DeepEqual(g.Rules, w.Rules) || len(g.Findings) != len(w.Findings) {
			t.Errorf("change %d: %s %s by %v (%d findings), want %s %s by %v (%d findings)", i,
				g.ClusterID, g.Change, g.Rules, len(g.Findings), w.ClusterID, w.Change, w.Rules, len(w.Findings))
		}
	}
	s := got.Summary
	if s.Clusters != n || s.Decided != n || s.Blocks != blocks || s.Unblocks != unblocks || s.CouldNotDecide != 0 {
		t.Errorf("summary %+v, want %d blocks and %d unblocks of %d", s, blocks, unblocks, n)
	}
	top := got.Rules[0]
	wantSentence := fmt.Sprintf("this change blocks %d clusters and unblocks %d; %s accounts for %d", blocks, unblocks, top.Code, top.Blocks+top.Unblocks)
	if s.Sentence != wantSentence {
		t.Errorf("sentence %q, want %q", s.Sentence, wantSentence)
	}
	for _, r := range got.Rules {
		counted := 0
		for _, c := range want {
			if slices.Contains(c.Rules, r.Code) {
				counted++
			}
		}
		if r.Blocks+r.Unblocks != counted || r.Title == "" {
			t.Errorf("rule %+v: in %d changes", r, counted)
		}
	}

}

func TestImpactSentence(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		imp  fleetlib.Impact
		want string
	}{
		{fleetlib.Impact{}, "this change blocks no cluster and unblocks none"},
		{fleetlib.Impact{Blocked: 1, ByRule: []fleetlib.RuleImpact{{Code: "BANK-KEY-001", Blocks: 1}}}, "this change blocks 1 cluster and unblocks none; BANK-KEY-001 accounts for 1"},
		{fleetlib.Impact{Blocked: 37, Unblocked: 2, ByRule: []fleetlib.RuleImpact{{Code: "PRECHECK-VER-002", Blocks: 34, Unblocks: 1}, {Code: "X", Blocks: 3}}},
			"this change blocks 37 clusters and unblocks 2; PRECHECK-VER-002 accounts for 35"},
		{fleetlib.Impact{Unblocked: 2, ByRule: []fleetlib.RuleImpact{{Code: "PRECHECK-VER-002", Unblocks: 2}}}, "this change blocks no cluster and unblocks 2; PRECHECK-VER-002 accounts for 2"},
	} {
		if got := impactSentence(&tt.imp); got != tt.want {
			t.Errorf("%q, want %q", got, tt.want)
		}
	}
}

// TestFleetCompareGolden compares the three formats with golden files (go test -run FleetCompareGolden
// -update). The Rego engine: for 30 clusters, preparing it is cheaper than compiling the bank's policy to
// WebAssembly three times.
func TestFleetCompareGolden(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	path := writeFleetInventory(t, generateFleet(30))
	for format, file := range map[string]string{"text": "impact.txt", "json": "impact.json", "markdown": "impact.md"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			args := slices.Concat([]string{"fleet", "--inventory", path, "--format", format, "--engine", "rego"}, compareArgs)
			want := exitAllowed
			if format == "text" {
				// --fail-on-new-blocks fails on it, and changes nothing else.
				args, want = append(args, "--fail-on-new-blocks"), exitDenied
			}
			code, out, errOut := precheck(t, "", args...)
			if code != want || errOut != "" {
				t.Fatalf("exit %d, want %d\n%s", code, want, errOut)
			}
			golden(t, filepath.Join("fleet", file), out)
		})
	}
}

func TestFleetCompareUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"sarif", []string{"--format", "sarif"}, "--compare-policy writes text, json or markdown, not sarif"},
		{"missing", []string{"--compare-policy", "nosuchdir"}, "--compare-policy nosuchdir: no such file or directory"},
		{"fail-on-blocked", []string{"--fail-on-blocked"}, "--fail-on-blocked is for a readiness report"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := slices.Concat([]string{"fleet", "--inventory", fleetInventory}, compareArgs, tt.args)
			code, _, errOut := precheck(t, "", args...)
			if code != exitUsage || !strings.Contains(errOut, tt.want) || !strings.HasSuffix(errOut, "; see 'precheck fleet --help'\n") {
				t.Errorf("exit %d, stderr %q; want exit 2 saying %q", code, errOut, tt.want)
			}
		})
	}
	code, _, errOut := precheck(t, "", "fleet", "--inventory", fleetInventory, "--fail-on-new-blocks")
	if code != exitUsage || !strings.Contains(errOut, "--fail-on-new-blocks needs --compare-policy") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
