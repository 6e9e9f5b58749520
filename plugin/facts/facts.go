// Package facts gathers the facts precheck decides on (cluster, key, tenant) for a guarded call: from an
// inventory, from a callback, or (package dwsapi) from the DWS and KMS APIs through the official SDK.
package facts

import (
	"context"
	"errors"
	"slices"

	"github.com/precheck/precheck/policy"
)

// Request names what the facts are about: the call's path parameters and the KMS key its body names (empty
// when the body names none).
type Request struct {
	ProjectID string
	ClusterID string
	KeyID     string
}

// Facts are the members of the input document beside "request". A nil member is unknown: the policy
// refuses what it needs and does not know.
type Facts struct {
	Cluster *policy.Cluster
	Key     *policy.Key
	Tenant  *policy.Tenant
}

// ErrNotFound marks a failure whose cause is the call itself: the API answered that the cluster or the key
// the call names does not exist (or is not the caller's, or refused it otherwise), or the provider will not
// ask about what the call names (another project's cluster). The caller can cause it at will, so a gate
// that fails open when its facts fail must not let such a call through. Providers wrap it (errors.Is).
var ErrNotFound = errors.New("facts: what the call names was not found")

// Provider gathers facts. An error means the facts could not be gathered at all; the gate then refuses the
// call (fails closed) unless told otherwise. A provider must be safe for concurrent use.
type Provider interface {
	Facts(ctx context.Context, r Request) (*Facts, error)
}

// Func is a Provider written as a function: the callback provider.
type Func func(ctx context.Context, r Request) (*Facts, error)

// Facts calls f.
func (f Func) Facts(ctx context.Context, r Request) (*Facts, error) { return f(ctx, r) }

// Provenance says where each fact came from: the dotted field of the input document (cluster.version,
// cluster.guest_agent_version, key.key_state, tenant.class, ...) to its source ("DWS ListClusterDetails",
// "KMS DescribeKey", "inventory fleet.csv", "flag --agent-version"). A fact absent from the facts is absent here.
type Provenance map[string]string

// Sources of facts that Provenance names, besides an inventory ("inventory FILE") or a flag ("flag --NAME").
const (
	SourceClusterDetails  = "DWS ListClusterDetails"
	SourceEncryptInfo     = "DWS ShowClusterEncryptInfo"
	SourceDisasterRecover = "DWS ListDisasterRecover"
	SourceDescribeKey     = "KMS DescribeKey"
)

// Fields returns the fields Provenance names, sorted: the order to show them in.
func (p Provenance) Fields() []string {
	fields := make([]string, 0, len(p))
	for f := range p {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	return fields
}
