package upstreamtest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/precheck/precheck/plugin"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/policy"
)

// Oracle says whether the policy allows the call an upstream executed. It asks the same checker the gate
// decides with, over the canonical document of the executed call, with facts from the same provider: so the
// test needs no expectations of its own, and passes only when every executed reading is one the policy
// allows.
type Oracle struct {
	Checker plugin.Checker
	Facts   facts.Provider // nil: no facts (the policy then refuses, as it does under the gate)

	cache sync.Map // canonical document JSON -> Verdict
}

// Verdict is the policy's answer about one executed call.
type Verdict struct {
	Allowed  bool
	Decision *policy.Decision // nil when no decision could be made
	// Err is why no decision could be made (the facts or the evaluation failed). A call the policy could not
	// be asked about is not an allowed one.
	Err error
}

func (v Verdict) String() string {
	switch {
	case v.Err != nil:
		return "no decision: " + v.Err.Error()
	case v.Allowed:
		return "allowed"
	}
	var codes []string
	for _, x := range v.Decision.Violations {
		codes = append(codes, x.Code+" ("+x.Message+")")
	}
	return "refused: " + strings.Join(codes, "; ")
}

// CanonicalInput is the input document of the call e executes: the path parameters the router took, the
// body {"encrypt": {...}} exactly as the reader read it, and the facts the provider gives for it.
func CanonicalInput(ctx context.Context, p facts.Provider, e Execution) (*policy.Input, error) {
	body, err := json.Marshal(canonicalBody(e.Encrypt))
	if err != nil {
		return nil, err
	}
	in := &policy.Input{Request: policy.Request{ProjectID: e.Route.ProjectID, ClusterID: e.Route.ClusterID, Body: body}}
	if p != nil {
		f, err := p.Facts(ctx, facts.Request{ProjectID: e.Route.ProjectID, ClusterID: e.Route.ClusterID, KeyID: e.Encrypt.MasterKeyID})
		if err != nil {
			return nil, fmt.Errorf("gathering facts: %w", err)
		}
		if f != nil {
			in.Cluster, in.Key, in.Tenant = f.Cluster, f.Key, f.Tenant
		}
	}
	return in, nil
}

type encryptMembers struct {
	CryptAlgorithm string  `json:"crypt_algorithm"`
	MasterKeyID    string  `json:"master_key_id"`
	MasterKeyName  *string `json:"master_key_name,omitempty"`
}

func canonicalBody(e Encrypt) any {
	return map[string]encryptMembers{"encrypt": {CryptAlgorithm: e.CryptAlgorithm, MasterKeyID: e.MasterKeyID, MasterKeyName: e.MasterKeyName}}
}

// Decide asks the policy about the call e executes. Verdicts are cached by canonical document, so asking
// about many readings of the same call costs one evaluation.
func (o *Oracle) Decide(ctx context.Context, e Execution) Verdict {
	in, err := CanonicalInput(ctx, o.Facts, e)
	if err != nil {
		return Verdict{Err: err}
	}
	data, err := json.Marshal(in)
	if err != nil {
		return Verdict{Err: err}
	}
	key := string(data)
	if v, ok := o.cache.Load(key); ok {
		return v.(Verdict)
	}
	doc, err := policy.ReadDocument(data, policy.DefaultLimits)
	if err != nil {
		return Verdict{Err: err}
	}
	d, err := o.Checker.CheckDocument(ctx, doc)
	v := Verdict{Decision: d, Err: err}
	if err == nil {
		v.Allowed = d.Allowed
		o.cache.Store(key, v) // errors are not cached: they may be the context's
	}
	return v
}

// Bypass is a call an upstream executed that the policy refuses.
type Bypass struct {
	Request   Request
	Execution Execution // the first (router, reader) pair with this reading
	// Pairs are all the "router/reader" pairs that read the request this way.
	Pairs   []string
	Verdict Verdict
}

func (b Bypass) String() string {
	return fmt.Sprintf("BYPASS: the upstream executed %s\n  read as: %s\n  (%d router/reader pairs read it so: %s)\n  policy on that call: %s",
		b.Request, b.Execution, len(b.Pairs), pairsSummary(b.Pairs), b.Verdict)
}

// pairsSummary names the routers and the readers among "router/reader" pairs.
func pairsSummary(pairs []string) string {
	var routers, readers []string
	for _, p := range pairs {
		router, reader, _ := strings.Cut(p, "/")
		if !slices.Contains(routers, router) {
			routers = append(routers, router)
		}
		if !slices.Contains(readers, reader) {
			readers = append(readers, reader)
		}
	}
	return "routers " + strings.Join(routers, ", ") + "; readers " + strings.Join(readers, ", ")
}

// Bypasses returns every executed reading, among reqs, of a call the policy does not allow; one Bypass per
// request and distinct reading.
func (o *Oracle) Bypasses(ctx context.Context, reqs []Request) []Bypass {
	var out []Bypass
	for _, r := range reqs {
		seen := map[string]int{}
		for _, e := range r.Executions {
			key := readingKey(e)
			if i, ok := seen[key]; ok {
				if i >= 0 {
					out[i].Pairs = append(out[i].Pairs, e.Router+"/"+e.Reader)
				}
				continue
			}
			v := o.Decide(ctx, e)
			if v.Allowed {
				seen[key] = -1
				continue
			}
			seen[key] = len(out)
			out = append(out, Bypass{Request: r, Execution: e, Pairs: []string{e.Router + "/" + e.Reader}, Verdict: v})
		}
	}
	return out
}

func readingKey(e Execution) string {
	name := "\x00"
	if e.Encrypt.MasterKeyName != nil {
		name = *e.Encrypt.MasterKeyName
	}
	return strings.Join([]string{e.Route.ProjectID, e.Route.ClusterID, e.Encrypt.CryptAlgorithm, e.Encrypt.MasterKeyID, name}, "\x00\x01")
}
