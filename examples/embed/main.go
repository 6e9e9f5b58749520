// Command embed shows precheck embedded in a tool: the tool gathers its facts, asks the engine, and makes
// the conversion call only when it is allowed.
//
//	go run ./examples/embed SMcompatible
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
	os.Exit(run(context.Background(), os.Stdout, os.Stderr, os.Args[1:]))
}

// run checks a conversion of the example cluster, for a regulated tenant, with the algorithm args[0]
// names, and returns the exit code: 0 allowed, 1 refused, 2 no algorithm given, 3 the policy failed. The
// algorithm is the caller's to choose: a tool never picks one for a conversion that cannot be undone.
func run(ctx context.Context, w, errOut io.Writer, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(errOut, "usage: embed ALGORITHM   (the crypt_algorithm to convert with: SMcompatible or generalCipher)")
		return 2
	}
	p, err := policy.Default()
	if err != nil {
		fmt.Fprintln(errOut, "embed:", err)
		return 3
	}
	engine, err := policy.New(ctx, p) // once per process: prepares the policy
	if err != nil {
		fmt.Fprintln(errOut, "embed:", err)
		return 3
	}
	defer engine.Close(ctx)

	body, _ := json.Marshal(map[string]any{"encrypt": map[string]any{
		"crypt_algorithm": args[0],
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
		fmt.Fprintln(errOut, "embed:", err)
		return 3
	}
	for _, warning := range d.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning.Message)
	}
	if !d.Allowed {
		for _, v := range d.Violations {
			fmt.Fprintf(w, "refused: %s (%s)\n  fix: %s\n", v.Message, v.Field, v.Remediation)
		}
		return 1
	}
	fmt.Fprintln(w, "allowed: making the EncryptCluster call")
	return 0
}
