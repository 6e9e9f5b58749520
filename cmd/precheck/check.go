package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/precheck/precheck/policy"
)

// factFlags are the flags for the common members of the input document. Each sets the member at its path,
// over what --input holds; members no flag or file gives stay unknown, and the policy refuses unknown facts.
var factFlags = []struct {
	name, path, usage string
	boolean           bool
}{
	{"project-id", "request.project_id", "project ID (path parameter)", false},
	{"cluster-id", "request.cluster_id", "cluster ID (path parameter)", false},
	{"algorithm", "request.body.encrypt.crypt_algorithm", "crypt_algorithm: generalCipher or SMcompatible", false},
	{"key-id", "request.body.encrypt.master_key_id", "master_key_id: the KMS key ID the call names", false},
	{"key-name", "request.body.encrypt.master_key_name", "master_key_name: the KMS key name", false},
	{"cluster-version", "cluster.version", "the cluster's version", false},
	{"agent-version", "cluster.guest_agent_version", "the cluster's guestAgent version", false},
	{"status", "cluster.status", "the cluster's status (AVAILABLE, ...)", false},
	{"sub-status", "cluster.sub_status", "the cluster's sub-status (NORMAL, ...)", false},
	{"task-status", "cluster.task_status", "the cluster's running task (empty when idle)", false},
	{"encrypted", "cluster.encrypted", "whether the cluster is already encrypted (--encrypted, --encrypted=false, --encrypted false)", true},
	{"dr", "cluster.dr_relationship", "whether the cluster has a disaster-recovery relationship (as --encrypted)", true},
	{"key-fact-id", "key.key_id", "key facts: the ID of the KMS key described (DescribeKey), which must be the one --key-id names", false},
	{"key-state", "key.key_state", "key facts: the KMS key's key_state (2 = enabled)", false},
	{"key-spec", "key.key_spec", "key facts: the KMS key's key_spec (AES_256, SM4)", false},
	{"tenant-class", "tenant.class", "the tenant's compliance class", false},
}

// boolFactFlags are the names of the boolean fact flags.
func boolFactFlags() []string {
	var names []string
	for _, f := range factFlags {
		if f.boolean {
			names = append(names, f.name)
		}
	}
	return names
}

func newCheckCmd(e *env) *cobra.Command {
	var (
		pf              policyFlags
		api             apiFlags
		input           string
		inventoryPath   string
		inventoryFormat string
		format          string
		at              time.Time
		explain         bool
	)
	facts := make([]*optional, len(factFlags))
	cmd := &cobra.Command{
		Use:   "check [--input FILE|- | --from-api] [fact flags]",
		Short: "Decide on one input document (a file, stdin, flags, or the DWS and KMS APIs)",
		Long: `Decide on one input document: a JSON or YAML file, stdin (--input -), or flags for the common
members. Flags set members over what the file holds; a member neither gives stays unknown, and the
policy refuses unknown facts (the gate fails closed).

--from-api gathers the facts where they live instead: the cluster's details, encryption state and DR
relationships from DWS, the key the call names from KMS (DescribeKey), through the official SDK, for the
call --project-id, --cluster-id, --algorithm, --key-id and --key-name describe, asked in --region (the
SDK's region catalogue) or at --endpoint. Credentials come only from the SDK's own providers: the
environment (HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK, HUAWEICLOUD_SDK_SECURITY_TOKEN), the profile file
(~/.huaweicloud/credentials), the metadata service of a cloud host; never from a flag. The API does not
know the guestAgent version or the tenant class: --agent-version and --tenant-class give them, or an
--inventory entry does (the flag stands before the inventory). The output says where each fact came
from (a "facts" block; a "provenance" member with --format json). An API failure names the call and
the HTTP status, and exits 3: precheck could not decide.

Text output shows the verdict, each violation with its field, actual against expected, and the fix;
--format json prints the decision. --explain adds, for each finding, the rule (file:line), the members
of the input and data it read and their values, and the rules that were checked and passed.

The boolean fact flags (--encrypted, --dr) take their value after "=" or as the next argument:
--encrypted, --encrypted=false and --encrypted false all work.

Exit codes: 0 allowed (warnings printed), 1 denied, 2 bad usage or unreadable input (with --from-api:
no --region or --endpoint, a region the SDK does not know), 3 policy or engine error, or with --from-api
an API call that failed or no credentials (precheck could not decide).`,
		Example: `  precheck check --input examples/inputs/allowed-api-example.json
  precheck check --input doc.yaml --explain
  cat doc.json | precheck check --input - --format json
  precheck check --project-id 89cd04f168b84af6be287f71730fdb4b --cluster-id 97cbaab3-939e-4dbc-9187-0fe240f2b9fd \
    --algorithm generalCipher --key-id 0f3196c8-5c23-469f-84da-92ecd2499dce --cluster-version 8.1.3.310 \
    --agent-version 8.3.0.200 --status AVAILABLE --task-status "" --encrypted false --dr false \
    --key-fact-id 0f3196c8-5c23-469f-84da-92ecd2499dce --key-state 2 --tenant-class default
  HUAWEICLOUD_SDK_AK=... HUAWEICLOUD_SDK_SK=... precheck check --from-api --region cn-north-4 \
    --project-id 89cd04f168b84af6be287f71730fdb4b --cluster-id 97cbaab3-939e-4dbc-9187-0fe240f2b9fd \
    --algorithm SMcompatible --key-id 0f3196c8-5c23-469f-84da-92ecd2499dce --agent-version 8.3.0.200`,
		Args: noArgs("the input is --input FILE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := decisionFormats[format]
			if err := checkSourceFlags(cmd, &api, input, inventoryPath); err != nil {
				return err
			}
			var opts []policy.Option
			if !at.IsZero() {
				opts = append(opts, policy.WithClock(func() time.Time { return at }))
			}
			p, err := pf.load()
			if err != nil {
				return err
			}
			eng, err := pf.newEngine(cmd.Context(), p, opts...)
			if err != nil {
				return err
			}
			defer eng.Close(cmd.Context())
			var doc *policy.Document
			var sources []factSource
			if api.fromAPI {
				// The policy is loaded and prepared first: a broken policy costs no API call.
				g, err := gatherCheck(cmd.Context(), e, &api, facts, inventoryPath, inventoryFormat)
				if err != nil {
					return err
				}
				if doc, err = policy.NewDocument(g.Input, eng.Limits()); err != nil {
					return err
				}
				sources = factSources(g.Input, g.Provenance)
			} else if doc, err = readInput(e, input, facts, eng.Limits()); err != nil {
				return err
			}
			d, err := eng.CheckDocument(cmd.Context(), doc)
			if err != nil {
				return err
			}
			if api.fromAPI {
				var x *policy.Explanation
				if explain {
					var err error
					if x, err = p.Explain(doc, d); err != nil {
						return err
					}
				}
				if err := writeWithSources(e.stdout, format, d, x, sources, e.colour()); err != nil {
					return err
				}
			} else if explain {
				x, err := p.Explain(doc, d)
				if err != nil {
					return err
				}
				err = out.writeExplained(e.stdout, d, x, e.colour())
				if err != nil {
					return err
				}
			} else if err := out.writeDecision(e.stdout, d, e.colour()); err != nil {
				return err
			}
			if !d.Allowed {
				return silentExit(exitDenied)
			}
			return nil
		},
	}
	pf.register(cmd, "rego")
	cmd.Flags().StringVar(&input, "input", "", "the input document: a JSON or YAML file, or - for stdin")
	api.register(cmd, "with --from-api: the region to ask, by its name in the SDK's region catalogue (cn-north-4)")
	cmd.Flags().StringVar(&inventoryPath, "inventory", "", "with --from-api: an inventory (JSON, YAML or CSV; - for stdin) for what the API lacks: the guestAgent version, the tenant class")
	choiceFlag(cmd, &inventoryFormat, "inventory-format", "inventory format", "", inventoryFormats,
		"the inventory's format (default: from the file's extension, else its content)")
	formatFlag(cmd, &format, decisionFormats)
	cmd.Flags().Var(timeValue{&at}, "at", "decide as if it were this time, an RFC 3339 time or a date (to preview a waiver's expiry)")
	cmd.Flags().BoolVar(&explain, "explain", false, "also say, for each finding, the rule (file:line), the members it read and their values, and which rules passed")
	for i, f := range factFlags {
		facts[i] = &optional{path: f.path, boolean: f.boolean}
		flag := cmd.Flags().VarPF(facts[i], f.name, "", f.usage)
		if f.boolean {
			flag.NoOptDefVal = "true"
		}
	}
	return cmd
}

// readInput builds the input document from --input (JSON or YAML) and the fact flags.
func readInput(e *env, path string, facts []*optional, limits policy.Limits) (*policy.Document, error) {
	var given []*optional
	for _, f := range facts {
		if f.set {
			given = append(given, f)
		}
	}
	if path == "" && len(given) == 0 {
		return nil, usageError("no input: give --input FILE, --input - for stdin, or fact flags")
	}
	data := []byte("{}")
	name := "flags"
	if path != "" {
		var err error
		if data, name, err = readLimited(e, path, limits.MaxBytes); err != nil {
			return nil, err
		}
	}
	doc, text, err := readDocumentText(data, name, limits)
	if err != nil || len(given) == 0 {
		return doc, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, &policy.InputError{Msg: err.Error()}
	}
	for _, f := range given {
		setPath(m, strings.Split(f.path, "."), f.value())
	}
	text, err = json.Marshal(m)
	if err != nil {
		return nil, &policy.InputError{Msg: err.Error()}
	}
	return policy.ReadDocument(text, limits)
}

// setPath sets m[path...] = v, making (or replacing) objects on the way: a flag wins over the file.
func setPath(m map[string]any, path []string, v any) {
	for _, key := range path[:len(path)-1] {
		next, ok := m[key].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[key] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// optional is a flag that remembers whether it was given, so that an absent flag leaves the member unknown
// rather than setting it to "" or false.
type optional struct {
	path    string
	boolean bool
	set     bool
	raw     string
}

func (o *optional) String() string { return o.raw }

func (o *optional) Set(s string) error {
	if o.boolean {
		if _, err := strconv.ParseBool(s); err != nil {
			return errors.New("want true or false")
		}
	}
	o.set, o.raw = true, s
	return nil
}

func (o *optional) Type() string {
	if o.boolean {
		return "bool"
	}
	return "string"
}

func (o *optional) value() any {
	if o.boolean {
		b, _ := strconv.ParseBool(o.raw)
		return b
	}
	return o.raw
}
