package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/policy"
)

// Config says which clusters to gather and how.
type Config struct {
	// Targets are the projects and regions whose clusters are listed, each once.
	Targets []dwsapi.Target
	// Encrypt is the intended call for clusters whose inventory entry gives none (or only part of one);
	// its MasterKeyID (or the entry's) is the key KMS DescribeKey is asked about.
	Encrypt policy.Encrypt
	// Inventory fills what the API lacks: guestAgent versions, tenant classes, intended calls. Optional.
	// InventorySource names it in the provenance, e.g. "inventory fleet.csv" (default "inventory").
	Inventory       *facts.Inventory
	InventorySource string
	// Concurrency bounds the clusters gathered at once (default: 4 per CPU, at most 32).
	Concurrency int
	// Policy paces and retries every call of the run: RequestsPerSecond holds across all targets.
	Policy dwsapi.CallPolicy
	// Listed, when set, is called once the clusters are listed, with their number (for a progress bar).
	Listed func(total int)
	// Done, when set, is called after each cluster is gathered or has failed, from any goroutine.
	Done func()
}

// Result is one listed cluster.
type Result struct {
	// Target is the target whose listing named the cluster.
	Target dwsapi.Target
	// Entry holds the cluster's facts, and the inventory's intended call for it (Encrypt) if it has one.
	// When Err is set, only ProjectID, ClusterID and Encrypt are.
	Entry      facts.Entry
	Provenance facts.Provenance
	// Err is why the cluster's facts could not be gathered: "could not decide", never ready. An API
	// failure is a *dwsapi.Error naming the call and status.
	Err error
}

// Gathering is what Gather found.
type Gathering struct {
	// Results has one Result per listed cluster, ordered by target (as Config.Targets) then cluster ID.
	Results []Result
	// NotListed are the inventory's clusters that no target listed (in inventory order): they are not in
	// Results, since the API says they do not exist there.
	NotListed []string
	Stats     dwsapi.Stats
}

// Entries returns the entries of the clusters that were gathered, in Results' order.
func (g *Gathering) Entries() []facts.Entry {
	var out []facts.Entry
	for _, r := range g.Results {
		if r.Err == nil {
			out = append(out, r.Entry)
		}
	}
	return out
}

// Failed returns the results of the clusters that could not be gathered.
func (g *Gathering) Failed() []Result {
	var out []Result
	for _, r := range g.Results {
		if r.Err != nil {
			out = append(out, r)
		}
	}
	return out
}

// Gather lists every target's clusters and gathers their facts; see the package doc. It fails as a whole
// only when a target cannot be listed (an *dwsapi.Error, or dwsapi.ErrIncompleteList), when the
// configuration is wrong, or when ctx ends; a cluster whose facts fail is a Result with Err.
func Gather(ctx context.Context, cfg Config) (*Gathering, error) {
	if len(cfg.Targets) == 0 {
		return nil, errors.New("fleet: no targets (projects and regions) to list")
	}
	seenTarget := map[dwsapi.Target]bool{}
	for _, t := range cfg.Targets {
		if seenTarget[t] {
			return nil, fmt.Errorf("fleet: %s is given twice", t)
		}
		seenTarget[t] = true
	}
	workers := cfg.Concurrency
	if workers <= 0 {
		workers = min(32, 4*runtime.GOMAXPROCS(0))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := dwsapi.NewTransport(ctx, nil, cfg.Policy)

	type job struct {
		target   int
		provider *dwsapi.Provider
		cluster  dwsapi.ListedCluster
	}
	var jobs []job
	var results []Result
	listed := map[string]bool{}    // project + cluster: each cluster once, whichever target listed it first
	listedIDs := map[string]bool{} // for inventory entries that name no project
	for i, t := range cfg.Targets {
		clients, err := dwsapi.Connect(t, tr)
		if err != nil {
			return nil, err
		}
		list, err := dwsapi.ListClusters(clients)
		if err != nil {
			return nil, fmt.Errorf("fleet: listing the clusters of %s: %w", t, err)
		}
		pc := dwsapi.Config{DWS: clients.DWS, KMS: clients.KMS, InventorySource: cfg.InventorySource, Snapshot: true}
		if cfg.Inventory != nil {
			pc.Inventory = cfg.Inventory
		}
		p, err := dwsapi.New(pc)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(list, func(a, b dwsapi.ListedCluster) int { return cmp.Compare(a.ID, b.ID) })
		for _, c := range list {
			k := t.ProjectID + "\x00" + c.ID
			if listed[k] {
				continue
			}
			listed[k], listedIDs[c.ID] = true, true
			jobs = append(jobs, job{target: i, provider: p, cluster: c})
			results = append(results, Result{Target: t, Entry: facts.Entry{ProjectID: t.ProjectID, ClusterID: c.ID}})
		}
	}
	if cfg.Listed != nil {
		cfg.Listed(len(jobs))
	}

	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(jobs)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				j, res := jobs[i], &results[i]
				if e := cfg.Inventory.Entry(res.Entry.ProjectID, res.Entry.ClusterID); e != nil && e.Encrypt != nil {
					enc := *e.Encrypt
					res.Entry.Encrypt = &enc
				}
				keyID := cfg.Encrypt.MasterKeyID
				if res.Entry.Encrypt != nil && res.Entry.Encrypt.MasterKeyID != "" {
					keyID = res.Entry.Encrypt.MasterKeyID
				}
				f, prov, err := j.provider.Gather(ctx, facts.Request{ProjectID: res.Entry.ProjectID, ClusterID: res.Entry.ClusterID, KeyID: keyID})
				if err != nil {
					res.Err = err
				} else {
					res.Entry.Cluster, res.Entry.Key, res.Entry.Tenant = f.Cluster, f.Key, f.Tenant
					res.Provenance = prov
				}
				if cfg.Done != nil {
					cfg.Done()
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fleet: gathering stopped: %w", err)
	}

	g := &Gathering{Results: results, Stats: tr.Stats()}
	if cfg.Inventory != nil {
		for _, e := range cfg.Inventory.Entries {
			if !listed[e.ProjectID+"\x00"+e.ClusterID] && !(e.ProjectID == "" && listedIDs[e.ClusterID]) {
				g.NotListed = append(g.NotListed, e.ClusterID)
			}
		}
	}
	return g, nil
}
