package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/policy"
)

// fromAPIFactFlags are the fact flags `check --from-api` takes: the intended call, and the two facts the API
// does not know. The others (--status, --encrypted, --key-state, ...) are what the API answers; setting
// one over the API's answer would decide on a cluster that does not exist, so they are refused.
var fromAPIFactFlags = []string{"project-id", "cluster-id", "algorithm", "key-id", "key-name", "agent-version", "tenant-class"}

// checkSourceFlags refuses the combinations of check's flags that cannot mean anything: the API's flags
// without --from-api, and with it another source of the facts the API answers.
func checkSourceFlags(cmd *cobra.Command, api *apiFlags, input, inventoryPath string) error {
	if !api.fromAPI {
		name := api.given(cmd)
		if name == "" && inventoryPath != "" {
			name = "inventory"
		}
		if name != "" {
			return usageError(fmt.Sprintf("--%s needs --from-api", name))
		}
		return nil
	}
	if input != "" {
		return usageError("--input and --from-api are two sources of the same facts: give one")
	}
	for _, f := range factFlags {
		if cmd.Flags().Changed(f.name) && !slices.Contains(fromAPIFactFlags, f.name) {
			return usageError(fmt.Sprintf("--%s with --from-api: the API answers %s; leave the flag out", f.name, f.path))
		}
	}
	return nil
}

// gatherCheck asks the APIs for the facts of the call the flags describe.
func gatherCheck(ctx context.Context, e *env, api *apiFlags, given []*optional, inventoryPath, inventoryFormat string) (*dwsapi.Gathered, error) {
	flag := func(name string) string {
		for i, f := range factFlags {
			if f.name == name {
				return given[i].raw
			}
		}
		return ""
	}
	target, err := api.target("--project-id", flag("project-id"), api.region)
	if err != nil {
		return nil, err
	}
	if flag("cluster-id") == "" {
		return nil, usageError("--from-api needs --cluster-id")
	}
	req := dwsapi.CheckRequest{
		Target:    target,
		ClusterID: flag("cluster-id"),
		Encrypt: policy.Encrypt{
			CryptAlgorithm: flag("algorithm"), MasterKeyID: flag("key-id"), MasterKeyName: flag("key-name"),
		},
		AgentVersion: flag("agent-version"),
	}
	if inventoryPath != "" {
		inv, err := readInventory(e, inventoryPath, inventoryFormat)
		if err != nil {
			return nil, usageError(err.Error())
		}
		req.Inventory, req.InventorySource = inv.Inventory, inventorySource(inventoryPath)
	}
	g, err := dwsapi.GatherCheck(ctx, req)
	if err != nil {
		return nil, apiFailure(err)
	}
	// The tenant class is the caller's to state, like the guestAgent version: the flag stands before the
	// inventory's.
	if class := flag("tenant-class"); class != "" {
		g.Input.Tenant = &policy.Tenant{Class: class}
		g.Provenance["tenant.class"] = "flag --tenant-class"
	}
	return g, nil
}

// inventorySource is how provenance names an inventory: "inventory clusters.csv", "inventory stdin".
func inventorySource(path string) string {
	if path == "-" {
		return "inventory stdin"
	}
	return "inventory " + path
}

// factSource is one fact of a decision made on gathered facts: the input's member, its value (JSON) and
// where it came from (facts.Provenance's names: "DWS ListClusterDetails", "flag --agent-version", ...).
type factSource struct {
	Field  string          `json:"field"`
	Value  json.RawMessage `json:"value"`
	Source string          `json:"source"`
}

// factSources lists the facts prov names, in its order (sorted by field), with their values in in.
func factSources(in *policy.Input, prov facts.Provenance) []factSource {
	out := make([]factSource, 0, len(prov))
	for _, field := range prov.Fields() {
		// Marshalling the input's types cannot fail.
		value, _ := json.Marshal(member(reflect.ValueOf(in), strings.Split(field, ".")))
		out = append(out, factSource{Field: field, Value: value, Source: prov[field]})
	}
	return out
}

// member is the value at a dotted path of the input's Go value, by the members' JSON names. It walks the
// struct rather than its JSON, where omitempty drops what the API answered empty (action_progress {}).
func member(v reflect.Value, path []string) any {
	for _, step := range path {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return nil
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return nil
		}
		found := false
		for i := range v.NumField() {
			if name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ","); name == step {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return v.Interface()
}

// writeWithSources writes a decision made on gathered facts (and its explanation, with --explain) with the
// facts' provenance: in text, a "facts" block after the decision; in JSON, a "provenance" member beside the
// decision's own, which stay at the top level as they do with --explain.
func writeWithSources(w io.Writer, format string, d *policy.Decision, x *policy.Explanation, sources []factSource, terminal bool) error {
	if format == "json" {
		return writeJSON(w, struct {
			*policy.Decision
			Explanation *policy.Explanation `json:"explanation,omitempty"`
			Provenance  []factSource        `json:"provenance"`
		}{d, x, sources})
	}
	var err error
	if x != nil {
		err = textFormat{}.writeExplained(w, d, x, terminal)
	} else {
		err = textFormat{}.writeDecision(w, d, terminal)
	}
	if err != nil {
		return err
	}
	p := &printer{w: w, color: terminal}
	p.printf("\n%s\n", p.paint(bold, "facts (field, value, source)"))
	fieldWidth, valueWidth := 0, 0
	for _, s := range sources {
		fieldWidth = max(fieldWidth, len(s.Field))
		valueWidth = max(valueWidth, min(len(s.Value), 40))
	}
	for _, s := range sources {
		p.printf("  %-*s  %-*s  %s\n", fieldWidth, s.Field, valueWidth, s.Value, s.Source)
	}
	return p.err
}
