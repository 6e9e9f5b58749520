// Package dwsapi gathers precheck's facts from the Huawei Cloud DWS and KMS APIs through the official Go SDK
// (github.com/huaweicloud/huaweicloud-sdk-go-v3, services/dws/v2 and services/kms/v2).
//
// For one guarded call it asks, concurrently:
//
//	cluster                  DWS ListClusterDetails     GET  /v1.0/{project_id}/clusters/{cluster_id}
//	cluster.encrypted        DWS ShowClusterEncryptInfo GET  /v1/{project_id}/clusters/{cluster_id}/encrypt-info
//	cluster.dr_relationship  DWS ListDisasterRecover    GET  /v2/{project_id}/disaster-recoveries
//	key                      KMS DescribeKey            POST /v1.0/{project_id}/kms/describe-key (SDK: ListKeyDetail)
//	inventory                Config.Inventory           (guestAgent version, tenant class: what the API lacks)
//
// and maps the answers onto policy.Cluster and policy.Key faithfully: what the API answers empty stays empty
// (task_status "" is "present and idle"), what it does not answer stays nil (unknown). Any call failing fails
// the whole Facts (the gate then fails closed) with an *Error naming the fact; errors never contain the
// clients' credentials.
package dwsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	dws "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2"
	dwsmodel "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"
	kms "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/kms/v2"
	kmsmodel "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/kms/v2/model"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/redact"
	"github.com/precheck/precheck/policy"
)

// The facts an *Error names: the input document's member each call fills, or "inventory" or "request".
const (
	FactCluster        = "cluster"                 // DWS ListClusterDetails
	FactEncrypted      = "cluster.encrypted"       // DWS ShowClusterEncryptInfo
	FactDRRelationship = "cluster.dr_relationship" // DWS ListDisasterRecover
	FactKey            = "key"                     // KMS DescribeKey
	FactInventory      = "inventory"               // Config.Inventory
	FactRequest        = "request"                 // the facts.Request itself cannot be asked about
)

// Config configures a Provider.
type Config struct {
	// DWS is the DWS client (required). Its credential fixes the project every call is made in.
	DWS *dws.DwsClient
	// KMS is the KMS client. Nil: key facts are not gathered (the policy then skips the key checks with a
	// warning), unless Inventory supplies them.
	KMS *kms.KmsClient
	// Inventory supplies what the API cannot: the guestAgent version and the tenant class. Its non-empty
	// fields fill the gaps the API leaves; where both know a fact, the API wins. Optional.
	Inventory facts.Provider
	// InventorySource is how Provenance names the inventory, e.g. "inventory fleet.csv" (default "inventory").
	InventorySource string
	// Snapshot makes the Provider answer for one moment, as a fleet report does: the answers that are the
	// same for every cluster of the project (the DR relationships, a key's details) are asked once and
	// reused, failures included, for the Provider's lifetime. Off (the gate), every Facts asks afresh.
	Snapshot bool
}

// Provider is a facts.Provider over the DWS and KMS APIs. It is safe for concurrent use (the SDK clients are).
type Provider struct {
	dws        *dws.DwsClient
	kms        *kms.KmsClient
	inventory  facts.Provider
	invSource  string
	snapshot   *snapshot // nil unless Config.Snapshot
	dwsProject string
	kmsProject string
	secrets    []string
}

var _ facts.Provider = (*Provider)(nil)

// New returns a Provider. It fails when cfg.DWS is missing or a client's credential names no project.
func New(cfg Config) (*Provider, error) {
	if cfg.DWS == nil || cfg.DWS.HcClient == nil {
		return nil, errors.New("dwsapi: Config.DWS is required")
	}
	p := &Provider{dws: cfg.DWS, inventory: cfg.Inventory, invSource: cfg.InventorySource}
	if p.invSource == "" {
		p.invSource = "inventory"
	}
	if cfg.Snapshot {
		p.snapshot = &snapshot{}
	}
	var err error
	if p.dwsProject, err = p.credential("DWS", cfg.DWS.HcClient.GetCredential()); err != nil {
		return nil, err
	}
	if cfg.KMS != nil {
		if cfg.KMS.HcClient == nil {
			return nil, errors.New("dwsapi: Config.KMS has no HcClient")
		}
		p.kms = cfg.KMS
		if p.kmsProject, err = p.credential("KMS", cfg.KMS.HcClient.GetCredential()); err != nil {
			return nil, err
		}
	}
	// Longest first, so that a secret containing another is redacted whole.
	slices.SortFunc(p.secrets, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	p.secrets = slices.Compact(p.secrets)
	return p, nil
}

// credential notes a client's secrets (for redaction) and returns the project its calls are made in ("" when
// the credential type does not say).
func (p *Provider) credential(service string, c auth.ICredential) (string, error) {
	var base *auth.BaseCredentials
	project := ""
	switch c := c.(type) {
	case *auth.BasicCredentials:
		base, project = &c.BaseCredentials, c.ProjectId
		if project == "" {
			return "", fmt.Errorf("dwsapi: the %s client's credential names no project (build it WithProjectId, or WithRegion)", service)
		}
	case *auth.GlobalCredentials:
		base = &c.BaseCredentials
	}
	if base != nil {
		for _, s := range []string{base.AK, base.SK, base.SecurityToken} {
			if len(s) >= minSecretLen {
				p.secrets = append(p.secrets, s)
			}
		}
	}
	return project, nil
}

// Error is a failure to gather one fact (or, when the context ended first, the facts still outstanding).
type Error struct {
	Fact string // one of the Fact* constants, or several joined by ", " when ctx ended
	Op   string // the call, e.g. "DWS ListClusterDetails"; empty for FactRequest
	Err  error  // the cause, credentials redacted; a *sdkerr.ServiceResponseError for an API error answer
}

func (e *Error) Error() string {
	cause := ""
	if se, ok := e.Err.(*sdkerr.ServiceResponseError); ok && se != nil {
		// The SDK's own Error() is a JSON dump with a trailing newline; say it plainly.
		cause = fmt.Sprintf("HTTP %d", se.StatusCode)
		if se.ErrorCode != "" {
			cause += " " + se.ErrorCode
		}
		if se.ErrorMessage != "" {
			cause += ": " + se.ErrorMessage
		}
		if se.RequestId != "" {
			cause += " (X-Request-Id " + se.RequestId + ")"
		}
	} else if e.Err != nil {
		cause = strings.TrimSpace(e.Err.Error())
	}
	if e.Op == "" {
		return fmt.Sprintf("dwsapi: %s: %s", e.Fact, cause)
	}
	return fmt.Sprintf("dwsapi: %s (%s): %s", e.Fact, e.Op, cause)
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status the API answered the failed call with; 0 when it did not answer (a timeout, a
// refused connection, an answer precheck could not read, a request it would not send).
func (e *Error) Status() int {
	var se *sdkerr.ServiceResponseError
	if errors.As(e.Err, &se) && se != nil {
		return se.StatusCode
	}
	return 0
}

// Is makes a failure the call itself causes a facts.ErrNotFound, so that a gate failing open does not
// forward it: a request the provider will not ask about (a cluster ID that is no plain path segment, another
// project's IDs), and the API refusing what the call names (any 4xx answer: 404, DWS.0015 "resource not
// found or permission denied", a 400 about an ID) but for 408 and 429, which say the API is slow or busy.
// What is left (no answer, a 5xx, an answer precheck cannot read) is precheck's dependency failing.
func (e *Error) Is(target error) bool {
	if target != facts.ErrNotFound {
		return false
	}
	if e.Fact == FactRequest {
		return !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded)
	}
	se, ok := e.Err.(*sdkerr.ServiceResponseError)
	if !ok || se == nil {
		return false
	}
	busy := se.StatusCode == http.StatusRequestTimeout || se.StatusCode == http.StatusTooManyRequests
	return se.StatusCode/100 == 4 && !busy || se.ErrorCode == "DWS.0015"
}

// otherCluster is an answer about another cluster than the one asked about (an API that matched the ID
// loosely, in another case or as a prefix): nothing is known of the cluster the call names, which the caller
// chose, so it counts as facts.ErrNotFound.
type otherCluster struct{ got, asked string }

func (e *otherCluster) Error() string {
	return fmt.Sprintf("the answer is about cluster %.80q, not %q", e.got, e.asked)
}

func (e *otherCluster) Is(target error) bool { return target == facts.ErrNotFound }

// task is one call; run fills its own result, read only after run returned.
type task struct {
	fact, op string
	run      func() error
}

type outcome struct {
	t   *task
	err error
}

// Facts gathers the facts about r.ClusterID (and r.KeyID, when a KMS client is configured and it is
// non-empty). The calls run concurrently. The SDK's calls take no context: when ctx ends before they all
// answer, Facts returns at once with an *Error wrapping ctx.Err() and naming the outstanding facts, and the
// abandoned calls finish in the background, bounded by the clients' HttpConfig timeout.
func (p *Provider) Facts(ctx context.Context, r facts.Request) (*facts.Facts, error) {
	f, _, err := p.Gather(ctx, r)
	return f, err
}

// Gather is Facts with the provenance of every fact it returns: which call, or the inventory, gave it.
func (p *Provider) Gather(ctx context.Context, r facts.Request) (*facts.Facts, facts.Provenance, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, &Error{Fact: FactRequest, Err: err}
	}
	if err := p.checkRequest(r); err != nil {
		return nil, nil, err
	}

	var (
		cluster   *policy.Cluster
		encrypted *bool
		dr        *bool
		key       *policy.Key
		inv       *facts.Facts
	)
	tasks := []*task{
		{fact: FactCluster, op: "DWS ListClusterDetails", run: func() (err error) {
			cluster, err = p.clusterDetails(r.ClusterID)
			return err
		}},
		{fact: FactEncrypted, op: "DWS ShowClusterEncryptInfo", run: func() (err error) {
			encrypted, err = p.encryptInfo(r.ClusterID)
			return err
		}},
		{fact: FactDRRelationship, op: "DWS ListDisasterRecover", run: func() (err error) {
			dr, err = p.snapshotDR(r.ClusterID)
			return err
		}},
	}
	if p.kms != nil && r.KeyID != "" {
		tasks = append(tasks, &task{fact: FactKey, op: "KMS DescribeKey", run: func() (err error) {
			key, err = p.snapshotKey(r.KeyID)
			return err
		}})
	}
	if p.inventory != nil {
		tasks = append(tasks, &task{fact: FactInventory, op: "inventory", run: func() (err error) {
			inv, err = p.inventory.Facts(ctx, r)
			return err
		}})
	}

	done := make(chan outcome, len(tasks)) // buffered: abandoned calls never block
	for _, t := range tasks {
		go func() {
			done <- outcome{t, protect(t.run)}
		}()
	}
	pending := map[*task]bool{}
	for _, t := range tasks {
		pending[t] = true
	}
	// The first failure that the call causes (facts.ErrNotFound) is the answer at once. Any other failure
	// waits for the calls still out: which failure a gate failing open hears must not depend on which call
	// answered first, so an outage elsewhere never hides that the call named another's key or a cluster
	// that does not exist.
	var failed *Error
	for range tasks {
		select {
		case o := <-done:
			delete(pending, o.t)
			if o.err == nil {
				continue
			}
			var e *Error // a snapshot's shared answer is already one
			if !errors.As(o.err, &e) {
				e = &Error{Fact: o.t.fact, Op: o.t.op, Err: p.sanitize(o.err)}
			}
			if errors.Is(e, facts.ErrNotFound) {
				return nil, nil, e
			}
			if failed == nil {
				failed = e
			}
		case <-ctx.Done():
			if failed != nil {
				return nil, nil, failed
			}
			var names, ops []string
			for _, t := range tasks {
				if pending[t] {
					names, ops = append(names, t.fact), append(ops, t.op)
				}
			}
			return nil, nil, &Error{Fact: strings.Join(names, ", "), Op: "still waiting for " + strings.Join(ops, ", "), Err: ctx.Err()}
		}
	}
	if failed != nil {
		return nil, nil, failed
	}

	cluster.Encrypted = encrypted
	cluster.DRRelationship = dr
	out := &facts.Facts{Cluster: cluster, Key: key}
	prov := apiProvenance(out)
	fill(out, inv, func(field string) { prov[field] = p.invSource })
	return out, prov, nil
}

// apiProvenance names the call behind every fact f holds, before the inventory fills any gap.
func apiProvenance(f *facts.Facts) facts.Provenance {
	prov := facts.Provenance{}
	given := func(field string, ok bool, source string) {
		if ok {
			prov[field] = source
		}
	}
	if c := f.Cluster; c != nil {
		given("cluster.version", c.Version != "", facts.SourceClusterDetails)
		given("cluster.status", c.Status != "", facts.SourceClusterDetails)
		given("cluster.sub_status", c.SubStatus != "", facts.SourceClusterDetails)
		given("cluster.task_status", c.TaskStatus != nil, facts.SourceClusterDetails)
		given("cluster.action_progress", c.ActionProgress != nil, facts.SourceClusterDetails)
		given("cluster.enterprise_project_id", c.EnterpriseProjectID != "", facts.SourceClusterDetails)
		given("cluster.tags", c.Tags != nil, facts.SourceClusterDetails)
		given("cluster.encrypted", c.Encrypted != nil, facts.SourceEncryptInfo)
		given("cluster.dr_relationship", c.DRRelationship != nil, facts.SourceDisasterRecover)
	}
	if k := f.Key; k != nil {
		given("key.key_id", k.KeyID != "", facts.SourceDescribeKey)
		given("key.key_state", k.KeyState != "", facts.SourceDescribeKey)
		given("key.key_spec", k.KeySpec != "", facts.SourceDescribeKey)
	}
	return prov
}

// protect runs f, turning a panic (the SDK asserts and reflects a lot) into an error.
func protect(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic in the SDK call: %v", v)
		}
	}()
	return f()
}

// checkRequest refuses what the SDK cannot ask about: the SDK puts the cluster ID into the URL path
// unescaped, and fills the project ID from the client's credential, not from the request.
func (p *Provider) checkRequest(r facts.Request) error {
	if !pathSegment(r.ClusterID) {
		return &Error{Fact: FactRequest, Err: fmt.Errorf("cluster_id %.80q cannot be asked about (empty, or not a plain path segment)", r.ClusterID)}
	}
	if r.ProjectID != "" && p.dwsProject != "" && r.ProjectID != p.dwsProject {
		return &Error{Fact: FactRequest, Err: fmt.Errorf("project_id %.80q is not the DWS client's project %q: its facts would be another project's", r.ProjectID, p.dwsProject)}
	}
	if p.kms != nil && r.KeyID != "" && r.ProjectID != "" && p.kmsProject != "" && r.ProjectID != p.kmsProject {
		return &Error{Fact: FactRequest, Err: fmt.Errorf("project_id %.80q is not the KMS client's project %q", r.ProjectID, p.kmsProject)}
	}
	return nil
}

// pathSegment reports whether s can go into a URL path as one segment unchanged: non-empty, RFC 3986
// unreserved characters only, and not a dot segment.
func pathSegment(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// clusterDetailsAnswer is ListClusterDetails' answer with "cluster" kept raw: the SDK's model decodes
// task_status into a plain string, which loses the difference between "" (idle) and absent (unknown).
type clusterDetailsAnswer struct {
	Cluster        json.RawMessage `json:"cluster,omitempty"`
	HttpStatusCode int             `json:"-"` // the SDK sets it by reflection; it must exist
}

// apiCluster is the part of the cluster details precheck uses, with presence kept.
type apiCluster struct {
	ID                  *string                    `json:"id"`
	Version             *string                    `json:"version"`
	Status              *string                    `json:"status"`
	SubStatus           *string                    `json:"sub_status"`
	TaskStatus          *string                    `json:"task_status"`
	ActionProgress      map[string]json.RawMessage `json:"action_progress"`
	EnterpriseProjectID *string                    `json:"enterprise_project_id"`
	Tags                []dwsmodel.Tags            `json:"tags"`
}

func (p *Provider) clusterDetails(clusterID string) (*policy.Cluster, error) {
	def := dws.GenReqDefForListClusterDetails() // the SDK's own path, method and signing ...
	def.Response = new(clusterDetailsAnswer)    // ... with an answer type that keeps presence
	resp, err := p.dws.HcClient.Sync(&dwsmodel.ListClusterDetailsRequest{ClusterId: clusterID}, def)
	if err != nil {
		return nil, err
	}
	ans, ok := resp.(*clusterDetailsAnswer)
	if !ok {
		return nil, fmt.Errorf("unexpected answer type %T", resp)
	}
	if len(ans.Cluster) == 0 || string(ans.Cluster) == "null" {
		return nil, errors.New(`the answer has no "cluster"`)
	}
	var c apiCluster
	if err := json.Unmarshal(ans.Cluster, &c); err != nil {
		return nil, fmt.Errorf("decoding the cluster details: %w", err)
	}
	if c.ID != nil && *c.ID != "" && *c.ID != clusterID {
		return nil, &otherCluster{got: *c.ID, asked: clusterID}
	}
	out := &policy.Cluster{
		Version:             deref(c.Version),
		Status:              deref(c.Status),
		SubStatus:           deref(c.SubStatus),
		TaskStatus:          c.TaskStatus, // "" stays "" (idle); absent or null stays nil (unknown)
		EnterpriseProjectID: deref(c.EnterpriseProjectID),
	}
	if c.ActionProgress != nil {
		out.ActionProgress = make(map[string]string, len(c.ActionProgress))
		for task, v := range c.ActionProgress {
			out.ActionProgress[task] = progressText(v)
		}
	}
	if c.Tags != nil {
		out.Tags = make([]policy.Tag, 0, len(c.Tags))
		for _, t := range c.Tags {
			out.Tags = append(out.Tags, policy.Tag{Key: t.Key, Value: t.Value})
		}
	}
	return out, nil
}

// progressText renders an action_progress value: a JSON string as its text, anything else (the SDK says
// string, the API may send a number) as its JSON text.
func progressText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

func (p *Provider) encryptInfo(clusterID string) (*bool, error) {
	resp, err := p.dws.ShowClusterEncryptInfo(&dwsmodel.ShowClusterEncryptInfoRequest{ClusterId: clusterID})
	if err != nil {
		return nil, err
	}
	// The answer is empty for an ordinary cluster; an encrypted one has its master key.
	encrypted := resp.MasterKeyId != nil && *resp.MasterKeyId != ""
	return &encrypted, nil
}

// drClusters is what ListDisasterRecover says: the clusters in a DR relationship, as primary or standby;
// nil when the answer has no list (unknown).
type drClusters map[string]bool

func (p *Provider) listDisasterRecoveries() (drClusters, error) {
	// Unfiltered: the cluster may be the primary or the standby of a relationship, whatever its status.
	resp, err := p.dws.ListDisasterRecover(&dwsmodel.ListDisasterRecoverRequest{})
	if err != nil {
		return nil, err
	}
	if resp.DisasterRecovery == nil {
		return nil, nil // the API did not say: unknown
	}
	in := drClusters{}
	for _, dr := range *resp.DisasterRecovery {
		in[deref(dr.PrimaryClusterId)] = true
		in[deref(dr.StandbyClusterId)] = true
	}
	delete(in, "")
	return in, nil
}

func (dr drClusters) has(clusterID string) *bool {
	if dr == nil {
		return nil
	}
	return policy.Bool(dr[clusterID])
}

func (p *Provider) describeKey(keyID string) (*policy.Key, error) {
	resp, err := p.kms.ListKeyDetail(&kmsmodel.ListKeyDetailRequest{Body: &kmsmodel.OperateKeyRequestBody{KeyId: keyID}})
	if err != nil {
		return nil, err
	}
	k := resp.KeyInfo
	if k == nil {
		return nil, errors.New(`the answer has no "key_info"`)
	}
	out := &policy.Key{KeyID: deref(k.KeyId), KeyState: deref(k.KeyState)}
	if k.KeySpec != nil {
		out.KeySpec = k.KeySpec.Value()
	}
	return out, nil
}

// fill fills the gaps in out (nil or empty facts) from the inventory's facts, copying them, and tells filled
// the field of each one it fills.
func fill(out *facts.Facts, inv *facts.Facts, filled func(field string)) {
	if inv == nil {
		return
	}
	fillString := func(field string, dst *string, src string) {
		if *dst == "" && src != "" {
			*dst = src
			filled(field)
		}
	}
	fillIf := func(field string, gap bool, set func()) {
		if gap {
			set()
			filled(field)
		}
	}
	if c := inv.Cluster; c != nil {
		o := out.Cluster
		fillString("cluster.version", &o.Version, c.Version)
		fillString("cluster.guest_agent_version", &o.GuestAgentVersion, c.GuestAgentVersion)
		fillString("cluster.status", &o.Status, c.Status)
		fillString("cluster.sub_status", &o.SubStatus, c.SubStatus)
		fillString("cluster.enterprise_project_id", &o.EnterpriseProjectID, c.EnterpriseProjectID)
		fillIf("cluster.task_status", o.TaskStatus == nil && c.TaskStatus != nil, func() { o.TaskStatus = policy.String(*c.TaskStatus) })
		fillIf("cluster.action_progress", o.ActionProgress == nil && c.ActionProgress != nil, func() { o.ActionProgress = maps.Clone(c.ActionProgress) })
		fillIf("cluster.encrypted", o.Encrypted == nil && c.Encrypted != nil, func() { o.Encrypted = policy.Bool(*c.Encrypted) })
		fillIf("cluster.dr_relationship", o.DRRelationship == nil && c.DRRelationship != nil, func() { o.DRRelationship = policy.Bool(*c.DRRelationship) })
		fillIf("cluster.tags", o.Tags == nil && c.Tags != nil, func() { o.Tags = slices.Clone(c.Tags) })
	}
	if k := inv.Key; k != nil {
		if out.Key == nil {
			out.Key = &policy.Key{}
		}
		fillString("key.key_id", &out.Key.KeyID, k.KeyID)
		fillString("key.key_state", &out.Key.KeyState, k.KeyState)
		fillString("key.key_spec", &out.Key.KeySpec, k.KeySpec)
	}
	if t := inv.Tenant; t != nil {
		if out.Tenant == nil {
			out.Tenant = &policy.Tenant{}
		}
		fillString("tenant.class", &out.Tenant.Class, t.Class)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Redaction. The SDK's own errors carry no credentials (a *url.Error names the method and URL, whose path
// holds project and cluster IDs only; a *sdkerr.ServiceResponseError carries the server's answer), but a
// server or proxy may echo request headers back. So every error is scrubbed of the clients' AK, SK and
// security token and of anything that looks like an Authorization, X-Auth-Token or X-Security-Token value.

const (
	redacted     = "[REDACTED]"
	minSecretLen = 4 // shorter "secrets" (test fixtures) would shred every message
)

var (
	signatureParts = regexp.MustCompile(`(?i)\b(Access|Signature|Credential)=[^\s,"';&]+`)
	secretHeaders  = regexp.MustCompile(`(?i)\b(Authorization|X-Auth-Token|X-Security-Token|X-Subject-Token)(\\?["']?\s*[:=]\s*\\?["']?)[^"'\\\r\n]+`)
)

// The texts of an error the API answered are bounded (a proxy's HTML page becomes the SDK's whole
// ErrorMessage, and every line of it would reach the gate's answer and log), and so are its details.
const (
	maxErrorText    = 512
	maxErrorDetails = 8
)

// redact returns s without credentials, as one line of at most maxErrorText bytes.
func (p *Provider) redact(s string) string {
	for _, secret := range p.secrets {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	s = secretHeaders.ReplaceAllString(s, "${1}${2}"+redacted)
	s = signatureParts.ReplaceAllString(s, "${1}="+redacted)
	return redact.Line(s, maxErrorText)
}

// sanitize returns err without credentials, its texts bounded to one line each (see redact). An API error
// answer stays a *sdkerr.ServiceResponseError (with its fields redacted), so that callers can read its
// status and code; another error whose text needed redaction is replaced by its redacted text; the rest
// (timeouts, context errors, ...) are kept as they are.
func (p *Provider) sanitize(err error) error {
	if se, ok := err.(*sdkerr.ServiceResponseError); ok && se != nil {
		cp := p.redactServiceError(*se)
		return &cp
	}
	msg := err.Error()
	if red := p.redact(msg); red != msg {
		return &redactedError{text: red, err: err}
	}
	return err
}

// redactedError stands for an error whose text needed redaction (or was too long): it says the redacted
// text, and answers errors.Is as the error it replaces does (a context error, an inventory's
// facts.ErrNotFound stay what they are), without handing that error, whose text holds what was redacted, to
// errors.As or Unwrap.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }

func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

func (p *Provider) redactServiceError(se sdkerr.ServiceResponseError) sdkerr.ServiceResponseError {
	se.RequestId = p.redact(se.RequestId)
	se.ErrorCode = p.redact(se.ErrorCode)
	se.ErrorMessage = p.redact(se.ErrorMessage)
	se.EncodedAuthorizationMessage = p.redact(se.EncodedAuthorizationMessage)
	if se.Details != nil {
		details := make([]sdkerr.ServiceResponseError, min(len(se.Details), maxErrorDetails))
		for i, d := range se.Details[:len(details)] {
			details[i] = p.redactServiceError(d)
		}
		se.Details = details
	}
	return se
}
