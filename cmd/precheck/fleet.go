package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/policy"
)

// fleetFormat writes a fleet report. Each format is its own type in its own file (fleet_format_*.go).
type fleetFormat interface {
	writeFleet(w io.Writer, r *fleetReport, colour bool) error
}

var fleetFormats = map[string]fleetFormat{
	"text":     fleetText{},
	"json":     fleetJSON{},
	"markdown": fleetMarkdown{},
	"junit":    fleetJUnit{},
	"sarif":    fleetSARIF{},
}

// fleetDefaultEngine is fleet's engine unless --engine says otherwise: a fleet is many decisions on one
// policy, which is what the wasm engine is fast at.
const fleetDefaultEngine = "wasm"

func newFleetCmd(e *env) *cobra.Command {
	var (
		pf              policyFlags
		inventoryPath   string
		inventoryFormat string
		format          string
		at              time.Time
		concurrency     int
		failOnBlocked   bool
		call            facts.Encrypt
	)
	cmd := &cobra.Command{
		Use:   "fleet --inventory FILE|- [flags]",
		Short: "Decide on every cluster of an inventory: a readiness report",
		Long: `Decide on the intended call for every cluster of the inventory (the entry's encrypt, its missing
members taken from --algorithm, --key-id and --key-name) and report which clusters are ready and what
blocks the rest.

The inventory is a JSON array of entries, a YAML sequence of them, or CSV with one column per fact, from
a file or stdin (-). Its format is --inventory-format's, else the file extension's (.json, .yaml, .yml,
.csv), else the content's (an array: JSON; a YAML sequence: YAML; anything else: CSV).

Every cluster is decided at one instant (--at), with the wasm engine by default. The SARIF report places
each finding at its entry's line in the inventory file, for code scanning.

Exit codes: 0 reported, 1 a cluster is blocked (with --fail-on-blocked), 2 bad usage or inventory, 3
policy or engine error.`,
		Example: `  precheck fleet --inventory clusters.json --algorithm SMcompatible --format markdown
  precheck fleet --inventory clusters.yaml --format sarif > fleet.sarif
  inventory-export | precheck fleet --inventory - --inventory-format csv --fail-on-blocked`,
		Args: noArgs("the clusters are --inventory FILE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := fleetFormats[format]
			if inventoryPath == "" {
				return usageError("no inventory: give --inventory FILE, or --inventory - for stdin")
			}
			if !cmd.Flags().Changed("concurrency") {
				concurrency = runtime.GOMAXPROCS(0)
			}
			if concurrency < 1 {
				return usageError(fmt.Sprintf("--concurrency %d: want at least 1", concurrency))
			}
			// Every cluster is judged at the same instant, which the report states.
			now := time.Now().UTC()
			if !at.IsZero() {
				now = at
			}
			// Reading a large inventory and preparing the policy each take a good part of a second: do both
			// at once. A bad inventory is reported before a bad policy, as a bad command line would be.
			var inv *inventory
			var invErr error
			read := make(chan struct{})
			go func() {
				defer close(read)
				inv, invErr = readInventory(e, inventoryPath, inventoryFormat)
			}()
			p, eng, err := fleetEngine(ctx, &pf, now)
			<-read
			if eng != nil {
				defer eng.Close(ctx)
			}
			if invErr != nil {
				return usageError(invErr.Error())
			}
			if err != nil {
				return err
			}

			progress := startFleetProgress(e, len(inv.Entries))
			decisions, err := decideFleet(ctx, eng, inv.Entries, call, concurrency, progress.add)
			progress.finish()
			if err != nil {
				return err
			}
			r := newFleetReport(p, now, inv, decisions)
			// A report of thousands of clusters is thousands of small writes: buffer them.
			w := bufio.NewWriterSize(e.stdout, 64<<10)
			if err := out.writeFleet(w, r, e.colour()); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if failOnBlocked && r.Summary.Blocked > 0 {
				return silentExit(exitDenied)
			}
			return nil
		},
	}
	pf.register(cmd, fleetDefaultEngine)
	cmd.Flags().StringVar(&inventoryPath, "inventory", "", "the clusters: a JSON array of entries, a YAML sequence, or CSV; - for stdin")
	choiceFlag(cmd, &inventoryFormat, "inventory-format", "inventory format", "", inventoryFormats,
		"the inventory's format (default: from the file's extension, else its content)")
	formatFlag(cmd, &format, fleetFormats)
	cmd.Flags().Var(timeValue{&at}, "at", "decide as if it were this time, RFC 3339 or a date (to preview a waiver's expiry); default now")
	// The default is not printed as a number: it is the machine's (GOMAXPROCS), not the command's.
	cmd.Flags().IntVar(&concurrency, "concurrency", 0, "clusters decided at once (default: GOMAXPROCS, one per CPU)")
	cmd.Flags().BoolVar(&failOnBlocked, "fail-on-blocked", false, "exit 1 when any cluster is blocked")
	cmd.Flags().StringVar(&call.CryptAlgorithm, "algorithm", "", "crypt_algorithm for entries whose encrypt does not give one")
	cmd.Flags().StringVar(&call.MasterKeyID, "key-id", "", "master_key_id for entries whose encrypt does not give one")
	cmd.Flags().StringVar(&call.MasterKeyName, "key-name", "", "master_key_name for entries whose encrypt does not give one")
	return cmd
}

// fleetEngine loads the policy the flags name and prepares it with the fleet's clock.
func fleetEngine(ctx context.Context, pf *policyFlags, now time.Time) (*policy.Policy, *policy.Engine, error) {
	p, err := pf.load()
	if err != nil {
		return nil, nil, err
	}
	eng, err := pf.newEngine(ctx, p, policy.WithClock(func() time.Time { return now }))
	return p, eng, err
}

// decideFleet decides on every entry with a pool of workers and returns the decisions in inventory order.
// An error on any one cluster stops the run: a fleet report must not silently leave a cluster out.
func decideFleet(ctx context.Context, eng *policy.Engine, entries []facts.Entry, call facts.Encrypt, workers int, done func()) ([]*policy.Decision, error) {
	decisions := make([]*policy.Decision, len(entries))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Each decision runs under a context that cannot end. On the wasm engine that is the fast path, code
	// without wazero's termination checks and several times faster (see wasm/internal/opahost), and Rego
	// evaluation always terminates. An interrupt or another worker's error still stops the run between
	// clusters, that is within one decision's time.
	evalCtx := context.WithoutCancel(ctx)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(entries)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(entries) {
					return
				}
				d, err := decideEntry(evalCtx, eng, &entries[i], call)
				if err != nil {
					// Not wrapped: whatever the cause, failing to decide is the policy's or the engine's
					// error (exit 3), never the inventory's.
					cancel(fmt.Errorf("deciding entry %d (cluster %s): %v", i+1, entries[i].ClusterID, err))
					return
				}
				decisions[i] = d
				done()
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return decisions, nil
}

// decideEntry decides on the call intended for one cluster.
func decideEntry(ctx context.Context, eng *policy.Engine, entry *facts.Entry, call facts.Encrypt) (*policy.Decision, error) {
	doc, err := policy.NewDocument(fleetInput(entry, call), eng.Limits())
	if err != nil {
		return nil, err
	}
	return eng.CheckDocument(ctx, doc)
}

// fleetInput is the input document for an entry: the request names the entry's project and cluster, its body
// is the entry's encrypt with the members it lacks taken from call (the flags), and the facts are the entry's.
func fleetInput(entry *facts.Entry, call facts.Encrypt) *policy.Input {
	enc := call
	if given := entry.Encrypt; given != nil {
		if given.CryptAlgorithm != "" {
			enc.CryptAlgorithm = given.CryptAlgorithm
		}
		if given.MasterKeyID != "" {
			enc.MasterKeyID = given.MasterKeyID
		}
		if given.MasterKeyName != "" {
			enc.MasterKeyName = given.MasterKeyName
		}
	}
	// Marshalling a struct of strings cannot fail. Members neither gives are left out, so the policy names
	// each one missing.
	body, _ := json.Marshal(struct {
		Encrypt facts.Encrypt `json:"encrypt"`
	}{enc})
	return &policy.Input{
		Request: policy.Request{ProjectID: entry.ProjectID, ClusterID: entry.ClusterID, Body: body},
		Cluster: entry.Cluster,
		Key:     entry.Key,
		Tenant:  entry.Tenant,
	}
}
