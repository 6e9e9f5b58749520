package fleet

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/policy"
)

// Input is the input document of the call intended for entry: the entry's encrypt, its missing members taken
// from call (what `precheck fleet` takes from its flags), and the entry's facts.
func Input(entry *facts.Entry, call policy.Encrypt) *policy.Input {
	enc := call
	if given := entry.Encrypt; given != nil {
		enc.CryptAlgorithm = cmp.Or(given.CryptAlgorithm, enc.CryptAlgorithm)
		enc.MasterKeyID = cmp.Or(given.MasterKeyID, enc.MasterKeyID)
		enc.MasterKeyName = cmp.Or(given.MasterKeyName, enc.MasterKeyName)
	}
	return dwsapi.NewInput(entry.ProjectID, entry.ClusterID, enc, &facts.Facts{Cluster: entry.Cluster, Key: entry.Key, Tenant: entry.Tenant})
}

// Decide decides the call intended for every entry with workers goroutines and returns the decisions in
// entry order. An error on any entry stops the run: a report must not silently leave a cluster out. done,
// if not nil, is called after each decision, from any of the goroutines (for a progress bar).
func Decide(ctx context.Context, eng *policy.Engine, entries []facts.Entry, call policy.Encrypt, workers int, done func()) ([]*policy.Decision, error) {
	out := make([]*policy.Decision, len(entries))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(workers, len(entries))) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(entries) {
					return
				}
				d, err := eng.Check(ctx, Input(&entries[i], call))
				if err != nil {
					cancel(fmt.Errorf("fleet: deciding entry %d (cluster %s): %w", i+1, entries[i].ClusterID, err))
					return
				}
				out[i] = d
				if done != nil {
					done()
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// Change is a cluster whose verdict differs between two policies.
type Change struct {
	ProjectID string
	ClusterID string
	// Blocked is true when the cluster was ready under the current policy and is blocked under the
	// proposed one; false when it was blocked and becomes ready.
	Blocked bool
	// Rules are the codes that make the difference, sorted: those denying under the proposed policy and
	// not the current one (Blocked), or under the current and not the proposed (unblocked).
	Rules         []string
	Before, After *policy.Decision
}

// RuleImpact counts, for one rule, the clusters whose verdict change it is part of.
type RuleImpact struct {
	Code     string
	Blocks   int // clusters it newly blocks
	Unblocks int // clusters it no longer blocks
}

// Impact is what a policy change does to a fleet.
type Impact struct {
	Decided   int      // entries decided under both policies
	Changes   []Change // in entry order
	Blocked   int      // clusters ready now and blocked under the proposed policy
	Unblocked int      // clusters blocked now and ready under the proposed policy
	// ByRule has one member per rule in any Change, most clusters first (then by code).
	ByRule []RuleImpact
}

// Compare decides every entry under the current and the proposed policy and reports the clusters whose
// verdict differs. Both engines must judge the same instant: give them the same clock (policy.WithClock), so
// that a waiver expiring between two decisions cannot pass for a policy change.
func Compare(ctx context.Context, current, proposed *policy.Engine, entries []facts.Entry, call policy.Encrypt, workers int) (*Impact, error) {
	before, err := Decide(ctx, current, entries, call, workers, nil)
	if err != nil {
		return nil, fmt.Errorf("fleet: under the current policy: %w", err)
	}
	after, err := Decide(ctx, proposed, entries, call, workers, nil)
	if err != nil {
		return nil, fmt.Errorf("fleet: under the proposed policy: %w", err)
	}
	imp := &Impact{Decided: len(entries)}
	counts := map[string]*RuleImpact{}
	for i := range entries {
		b, a := before[i], after[i]
		if b.Allowed == a.Allowed {
			continue
		}
		ch := Change{ProjectID: entries[i].ProjectID, ClusterID: entries[i].ClusterID, Blocked: !a.Allowed, Before: b, After: a}
		if ch.Blocked {
			ch.Rules = denyingOnly(a, b)
			imp.Blocked++
		} else {
			ch.Rules = denyingOnly(b, a)
			imp.Unblocked++
		}
		for _, code := range ch.Rules {
			ri := counts[code]
			if ri == nil {
				ri = &RuleImpact{Code: code}
				counts[code] = ri
			}
			if ch.Blocked {
				ri.Blocks++
			} else {
				ri.Unblocks++
			}
		}
		imp.Changes = append(imp.Changes, ch)
	}
	for _, ri := range counts {
		imp.ByRule = append(imp.ByRule, *ri)
	}
	slices.SortFunc(imp.ByRule, func(x, y RuleImpact) int {
		return cmp.Or(cmp.Compare(y.Blocks+y.Unblocks, x.Blocks+x.Unblocks), cmp.Compare(x.Code, y.Code))
	})
	return imp, nil
}

// denyingOnly returns the codes of x's violations that y has not, sorted and once each.
func denyingOnly(x, y *policy.Decision) []string {
	in := map[string]bool{}
	for _, v := range y.Violations {
		in[v.Code] = true
	}
	var out []string
	for _, v := range x.Violations {
		if !in[v.Code] {
			out = append(out, v.Code)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
