package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	fleetlib "github.com/precheck/precheck/plugin/fleet"
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
		api             apiFlags
		targets         []string
		rate            float64
		inventoryPath   string
		inventoryFormat string
		format          string
		at              time.Time
		concurrency     int
		failOnBlocked   bool
		comparePath     string
		failOnNewBlocks bool
		call            facts.Encrypt
	)
	cmd := &cobra.Command{
		Use:   "fleet --inventory FILE|- | --from-api --target PROJECT[@REGION]... [flags]",
		Short: "Decide on every cluster of an inventory or of the API: a readiness report, or a policy change's impact",
		Long: `Decide on the intended call for every cluster of the inventory (the entry's encrypt, its missing
members taken from --algorithm, --key-id and --key-name) and report which clusters are ready and what
blocks the rest.

The inventory is a JSON array of entries, a YAML sequence of them, or CSV with one column per fact, from
a file or stdin (-). Its format is --inventory-format's, else the file extension's (.json, .yaml, .yml,
.csv), else the content's (an array: JSON; a YAML sequence: YAML; anything else: CSV).

--from-api lists the clusters of every --target (DWS ListClusters) and gathers each one's facts from the
DWS and KMS APIs, through the official SDK, --concurrency at once and at most --rate requests per second
in all, sending a throttled request again after the Retry-After it was answered with. A target is
PROJECT@REGION (a project ID is a region's, so each names its region), or PROJECT in --region, or at
--endpoint. Credentials come only from the SDK's providers (HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK,
the profile file, the metadata service). The API does not know guestAgent versions or tenant classes:
--inventory then fills what the API lacks (and may give an entry's intended call). A cluster whose facts
fail is reported as "could not decide" with the failed call and its status: never dropped, never ready.

--compare-policy PATH decides every cluster under the current policy (--policy, or the default) and under
the proposed one (PATH, a directory or bundle layered over the default as --policy is), at one instant,
and reports the clusters that become blocked or unblocked and the rules that make the difference (text,
json or markdown, for a pull request comment).

Every cluster is decided at one instant (--at), with the wasm engine by default. The SARIF report places
each finding at its entry's line in the inventory file, for code scanning.

Exit codes: 0 reported, 1 a cluster is blocked or could not be decided (with --fail-on-blocked), or the
proposed policy blocks a cluster that is ready now or a cluster could not be decided (with
--fail-on-new-blocks), 2 bad usage or inventory
(no target, a region the SDK does not know), 3 policy or engine error, or with --from-api a listing that
failed or no credentials.`,
		Example: `  precheck fleet --inventory clusters.json --algorithm SMcompatible --format markdown
  precheck fleet --inventory clusters.yaml --format sarif > fleet.sarif
  inventory-export | precheck fleet --inventory - --inventory-format csv --fail-on-blocked
  precheck fleet --from-api --target 89cd04f168b84af6be287f71730fdb4b@cn-north-4 \
    --target 0b2c53a6d7e84c9fa1b2c3d4e5f60718@cn-east-3 --inventory agents.csv --algorithm SMcompatible --rate 10
  precheck fleet --inventory clusters.json --compare-policy policies/next/ --format markdown --fail-on-new-blocks`,
		Args: noArgs("the clusters are --inventory FILE or --from-api"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := fleetFormats[format]
			if err := fleetSourceFlags(cmd, &api, targets, inventoryPath, comparePath, format, failOnBlocked, failOnNewBlocks); err != nil {
				return err
			}
			concurrencySet := cmd.Flags().Changed("concurrency")
			if !concurrencySet {
				concurrency = runtime.GOMAXPROCS(0)
			}
			if concurrency < 1 {
				return usageError(fmt.Sprintf("--concurrency %d: want at least 1", concurrency))
			}
			if rate < 0 {
				return usageError(fmt.Sprintf("--rate %g: want a number of requests per second, or 0 for no limit", rate))
			}
			var apiTargets []dwsapi.Target
			if api.fromAPI {
				var err error
				if apiTargets, err = fleetTargets(&api, targets); err != nil {
					return err
				}
			}
			var proposed policyFlags
			if comparePath != "" {
				// A path that is not there is a mistake in the command line; named as the flag it came from.
				if _, err := os.Stat(comparePath); err != nil {
					var pathErr *fs.PathError
					if errors.As(err, &pathErr) {
						err = pathErr.Err
					}
					return usageError(fmt.Sprintf("--compare-policy %s: %v", comparePath, err))
				}
				proposed = pf // the same engine, layering and cache; only the policy differs
				proposed.path = comparePath
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
				if inventoryPath != "" {
					inv, invErr = readInventory(e, inventoryPath, inventoryFormat)
				}
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
			var proposedPolicy *policy.Policy
			var proposedEng *policy.Engine
			if comparePath != "" {
				// The same instant for both: a waiver expiring between the two must not pass for the change.
				proposedPolicy, proposedEng, err = fleetEngine(ctx, &proposed, now)
				if proposedEng != nil {
					defer proposedEng.Close(ctx)
				}
				if err != nil {
					return fmt.Errorf("--compare-policy %s: %w", comparePath, err)
				}
			}

			// The clusters: the inventory's, or those the API lists (and then a nil decision for each one
			// whose facts failed, with the reason).
			var reasons []string
			if api.fromAPI {
				g, err := gatherFleet(ctx, e, apiTargets, inv, inventoryPath, call, concurrency, concurrencySet, rate)
				if err != nil {
					return err
				}
				inv, reasons = fleetFromGathering(g)
			}
			if comparePath != "" {
				return compareFleet(ctx, e, compareRun{
					current: p, proposed: proposedPolicy, currentEng: eng, proposedEng: proposedEng,
					at: now, inv: inv, reasons: reasons, call: call, workers: concurrency,
					format: format, failOnNewBlocks: failOnNewBlocks,
				})
			}

			decided, index := decidable(inv.Entries, reasons)
			var progress *fleetProgress
			if !api.fromAPI { // gathering had its own progress; deciding a fleet from the API is quick after it
				progress = startFleetProgress(e, len(decided))
			}
			ds, err := decideFleet(ctx, eng, decided, call, concurrency, progress.add)
			progress.finish()
			if err != nil {
				return err
			}
			decisions := make([]*policy.Decision, len(inv.Entries))
			for j, i := range index {
				decisions[i] = ds[j]
			}
			r := newFleetReport(p, now, inv, decisions, reasons)
			// A report of thousands of clusters is thousands of small writes: buffer them.
			w := bufio.NewWriterSize(e.stdout, 64<<10)
			if err := out.writeFleet(w, r, e.colour()); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if failOnBlocked && r.Summary.Blocked+r.Summary.CouldNotDecide > 0 {
				return silentExit(exitDenied)
			}
			return nil
		},
	}
	pf.register(cmd, fleetDefaultEngine)
	cmd.Flags().StringVar(&inventoryPath, "inventory", "", "the clusters: a JSON array of entries, a YAML sequence, or CSV; - for stdin "+
		"(with --from-api: what the API lacks, by cluster)")
	choiceFlag(cmd, &inventoryFormat, "inventory-format", "inventory format", "", inventoryFormats,
		"the inventory's format (default: from the file's extension, else its content)")
	api.register(cmd, "with --from-api: the region of the targets that name none, by its name in the SDK's region catalogue (cn-north-4)")
	cmd.Flags().StringArrayVar(&targets, "target", nil, "with --from-api: a project whose clusters to list, PROJECT@REGION or PROJECT (in --region or at --endpoint); repeatable")
	cmd.Flags().Float64Var(&rate, "rate", 20, "with --from-api: the most API requests per second, retries included, across all targets (0: no limit)")
	formatFlag(cmd, &format, fleetFormats)
	cmd.Flags().Var(timeValue{&at}, "at", "decide as if it were this time, RFC 3339 or a date (to preview a waiver's expiry); default now")
	// The default is not printed as a number: it is the machine's (GOMAXPROCS), not the command's.
	cmd.Flags().IntVar(&concurrency, "concurrency", 0, "clusters decided at once (default: GOMAXPROCS, one per CPU); "+
		"with --from-api also the clusters gathered at once (default: 4 per CPU, at most 32)")
	cmd.Flags().BoolVar(&failOnBlocked, "fail-on-blocked", false, "exit 1 when any cluster is blocked or could not be decided")
	cmd.Flags().StringVar(&comparePath, "compare-policy", "", "report what this policy (a directory or bundle, layered as --policy is) would block or unblock, "+
		"against the current one (text, json or markdown)")
	cmd.Flags().BoolVar(&failOnNewBlocks, "fail-on-new-blocks", false, "with --compare-policy: exit 1 when the proposed policy blocks a cluster that is ready now, or a cluster could not be decided")
	cmd.Flags().StringVar(&call.CryptAlgorithm, "algorithm", "", "crypt_algorithm for entries whose encrypt does not give one")
	cmd.Flags().StringVar(&call.MasterKeyID, "key-id", "", "master_key_id for entries whose encrypt does not give one (with --from-api, the key DescribeKey is asked about)")
	cmd.Flags().StringVar(&call.MasterKeyName, "key-name", "", "master_key_name for entries whose encrypt does not give one")
	return cmd
}

// fleetSourceFlags refuses the combinations of fleet's flags that cannot mean anything.
func fleetSourceFlags(cmd *cobra.Command, api *apiFlags, targets []string, inventoryPath, comparePath, format string, failOnBlocked, failOnNewBlocks bool) error {
	if !api.fromAPI {
		name := api.given(cmd)
		for _, other := range []string{"target", "rate"} {
			if name == "" && cmd.Flags().Changed(other) {
				name = other
			}
		}
		if name != "" {
			return usageError(fmt.Sprintf("--%s needs --from-api", name))
		}
		if inventoryPath == "" {
			return usageError("no inventory: give --inventory FILE, --inventory - for stdin, or --from-api")
		}
	}
	if api.fromAPI && len(targets) == 0 {
		return usageError("--from-api needs a --target PROJECT@REGION (or PROJECT with --region or --endpoint)")
	}
	if comparePath == "" {
		if failOnNewBlocks {
			return usageError("--fail-on-new-blocks needs --compare-policy")
		}
		return nil
	}
	if _, ok := compareFormats[format]; !ok {
		return usageError(fmt.Sprintf("--compare-policy writes text, json or markdown, not %s", format))
	}
	if failOnBlocked {
		return usageError("--fail-on-blocked is for a readiness report; with --compare-policy, --fail-on-new-blocks")
	}
	return nil
}

// fleetTargets reads the --target flags: PROJECT@REGION, or PROJECT in --region or at --endpoint.
func fleetTargets(api *apiFlags, targets []string) ([]dwsapi.Target, error) {
	out := make([]dwsapi.Target, 0, len(targets))
	seen := map[dwsapi.Target]bool{}
	for _, s := range targets {
		project, region, named := strings.Cut(s, "@")
		if !named {
			region = api.region
		} else if region == "" {
			return nil, usageError(fmt.Sprintf("--target %q: want PROJECT@REGION, or PROJECT with --region", s))
		}
		t, err := api.target(fmt.Sprintf("a project ID in --target %q", s), project, region)
		if err != nil {
			return nil, err
		}
		if seen[t] {
			return nil, usageError(fmt.Sprintf("--target %s is given twice", s))
		}
		seen[t] = true
		out = append(out, t)
	}
	return out, nil
}

// gatherFleet lists and gathers the targets' clusters, with the progress bar once their number is known.
func gatherFleet(ctx context.Context, e *env, targets []dwsapi.Target, inv *inventory, inventoryPath string, call facts.Encrypt,
	concurrency int, concurrencySet bool, rate float64) (*fleetlib.Gathering, error) {
	cfg := fleetlib.Config{
		Targets: targets,
		Encrypt: call,
		Policy:  dwsapi.CallPolicy{RequestsPerSecond: rate},
	}
	if concurrencySet {
		cfg.Concurrency = concurrency
	}
	if inv != nil {
		cfg.Inventory, cfg.InventorySource = inv.Inventory, inventorySource(inventoryPath)
	}
	progress := newFleetProgress(e)
	cfg.Listed, cfg.Done = progress.setTotal, progress.add
	g, err := fleetlib.Gather(ctx, cfg)
	progress.finish()
	if err != nil {
		return nil, apiFailure(err)
	}
	if n := len(g.NotListed); n > 0 {
		// Not in the report (the API says they do not exist where they were asked about), but not
		// silently left out either.
		shown := g.NotListed[:min(n, 5)]
		more := ""
		if n > len(shown) {
			more = fmt.Sprintf(" and %d more", n-len(shown))
		}
		fmt.Fprintf(e.stderr, "precheck: %s of the inventory listed by no target, not in the report: %s%s\n",
			count(n, "cluster"), strings.Join(shown, ", "), more)
	}
	return g, nil
}

// fleetFromGathering is the gathered clusters as an inventory, in the gathering's order, and for each one
// that could not be gathered the reason (empty for the others).
func fleetFromGathering(g *fleetlib.Gathering) (*inventory, []string) {
	entries := make([]facts.Entry, len(g.Results))
	reasons := make([]string, len(g.Results))
	for i, r := range g.Results {
		entries[i] = r.Entry
		if r.Err != nil {
			// dwsapi's errors name the call and its status, credentials redacted. Never empty: an empty
			// reason is a cluster to decide.
			reasons[i] = cmp.Or(r.Err.Error(), "its facts could not be gathered")
		}
	}
	return &inventory{Inventory: &facts.Inventory{Entries: entries}}, reasons
}

// decidable returns the entries that can be decided (all but those with a reason) and the index of each in
// entries.
func decidable(entries []facts.Entry, reasons []string) ([]facts.Entry, []int) {
	if reasons == nil {
		index := make([]int, len(entries))
		for i := range index {
			index[i] = i
		}
		return entries, index
	}
	var out []facts.Entry
	var index []int
	for i := range entries {
		if reasons[i] == "" {
			out = append(out, entries[i])
			index = append(index, i)
		}
	}
	return out, index
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

// decideFleet decides every entry (fleet.Decide). Failing to decide is the policy's or the engine's error
// (exit 3), whatever its cause: the inventory was read and checked already.
func decideFleet(ctx context.Context, eng *policy.Engine, entries []facts.Entry, call facts.Encrypt, workers int, done func()) ([]*policy.Decision, error) {
	ds, err := fleetlib.Decide(ctx, eng, entries, call, workers, done)
	if err != nil {
		return nil, engineFailure{err}
	}
	return ds, nil
}
