// Command embed shows precheck embedded in a tool: the tool gathers its facts, asks the engine, and makes
// the conversion call only when it is allowed.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/precheck/precheck/policy"
)

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

// run checks a conversion of the example cluster with the algorithm named by args[0] (generalCipher when
// absent) for a regulated tenant.
func run(ctx context.Context, w io.Writer, args []string) error {
	algorithm := "generalCipher"
	if len(args) > 0 {
		algorithm = args[0]
	}
	p, err := policy.Default()
	if err != nil {
		return err
	}
	engine, err := policy.New(ctx, p) // once per process: prepares the policy
	if err != nil {
		return err
	}
	defer engine.Close(ctx)

	body, _ := json.Marshal(map[string]any{"encrypt": map[string]any{
		"crypt_algorithm": algorithm,
		"master_key_id":   "0f3196c8-5c23-469f-84da-92ecd2499dce",
		"master_key_name": "KMS-1abd-1016",
	}})
	d, err := engine.Check(ctx, &policy.Input{
		Request: policy.Request{
			ProjectID: "89cd04f168b84af6be287f71730fdb4b",
			ClusterID: "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
			Body:      body,
		},
		// In a real tool these come from ListClusterDetails, ShowClusterEncryptInfo and an inventory.
		Cluster: &policy.Cluster{
			Version: "8.1.3.310", GuestAgentVersion: "8.3.0.200", Status: "AVAILABLE", SubStatus: "NORMAL",
			TaskStatus: policy.String(""), Encrypted: policy.Bool(false), DRRelationship: policy.Bool(false),
		},
		Key:    &policy.Key{KeyID: "0f3196c8-5c23-469f-84da-92ecd2499dce", KeyState: "2", KeySpec: "SM4"},
		Tenant: &policy.Tenant{Class: "regulated"},
	})
	if err != nil {
		return err
	}
	for _, warning := range d.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning.Message)
	}
	if !d.Allowed {
		for _, v := range d.Violations {
			fmt.Fprintf(w, "refused: %s (%s)\n  fix: %s\n", v.Message, v.Field, v.Remediation)
		}
		return nil
	}
	fmt.Fprintln(w, "allowed: making the EncryptCluster call")
	return nil
}
