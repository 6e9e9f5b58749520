package dwsapi

import (
	"context"
	"encoding/json"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/policy"
)

// CheckRequest is what `precheck check --from-api` decides on: one intended call, and where to ask.
type CheckRequest struct {
	Target    Target
	ClusterID string
	// Encrypt is the intended call's "encrypt" object (algorithm, key ID, key name). Its MasterKeyID is the
	// key KMS DescribeKey is asked about; without one, no key facts are gathered.
	Encrypt policy.Encrypt
	// AgentVersion is the cluster's guestAgent version as the caller states it (the API does not know it);
	// it stands before the inventory's. AgentVersionSource names it in the provenance (default
	// "flag --agent-version").
	AgentVersion       string
	AgentVersionSource string
	// Inventory supplies what the API lacks (guestAgent version, tenant class); optional.
	// InventorySource names it in the provenance, e.g. "inventory clusters.csv" (default "inventory").
	Inventory       *facts.Inventory
	InventorySource string
	// Policy paces and retries the calls; its zero value retries throttled calls with the defaults.
	Policy CallPolicy
}

// Gathered is an input document built from the APIs, with where each fact came from.
type Gathered struct {
	Input      *policy.Input
	Provenance facts.Provenance
	Stats      Stats
}

// GatherCheck gathers the facts of one cluster and the key the call names (DWS ListClusterDetails,
// ShowClusterEncryptInfo, ListDisasterRecover; KMS DescribeKey), with the credentials of the SDK's standard
// providers, fills what the API lacks from the caller and the inventory, and returns the input document
// for the intended call. An API failure is an *Error (errors.As) naming the call and, in Status, the HTTP
// status; the command exits 3 on it (precheck could not decide). No error holds a credential.
func GatherCheck(ctx context.Context, req CheckRequest) (*Gathered, error) {
	tr := NewTransport(ctx, nil, req.Policy)
	clients, err := Connect(req.Target, tr)
	if err != nil {
		return nil, err
	}
	cfg := Config{DWS: clients.DWS, KMS: clients.KMS, InventorySource: req.InventorySource}
	if req.Inventory != nil {
		cfg.Inventory = req.Inventory
	}
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	f, prov, err := p.Gather(ctx, facts.Request{ProjectID: req.Target.ProjectID, ClusterID: req.ClusterID, KeyID: req.Encrypt.MasterKeyID})
	if err != nil {
		return nil, err
	}
	if req.AgentVersion != "" {
		src := req.AgentVersionSource
		if src == "" {
			src = "flag --agent-version"
		}
		f.Cluster.GuestAgentVersion = req.AgentVersion
		prov["cluster.guest_agent_version"] = src
	}
	return &Gathered{
		Input:      NewInput(req.Target.ProjectID, req.ClusterID, req.Encrypt, f),
		Provenance: prov,
		Stats:      tr.Stats(),
	}, nil
}

// NewInput is the input document of the intended call: the request names the project and cluster, its body
// is {"encrypt": enc} without the members enc leaves empty (so the policy names each one missing), and the
// facts are f's.
func NewInput(projectID, clusterID string, enc policy.Encrypt, f *facts.Facts) *policy.Input {
	// Marshalling a struct of strings cannot fail.
	body, _ := json.Marshal(policy.EncryptBody{Encrypt: &enc})
	in := &policy.Input{Request: policy.Request{ProjectID: projectID, ClusterID: clusterID, Body: body}}
	if f != nil {
		in.Cluster, in.Key, in.Tenant = f.Cluster, f.Key, f.Tenant
	}
	return in
}
