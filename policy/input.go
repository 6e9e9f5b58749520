package policy

import "encoding/json"

// Input is the document precheck decides on, the same for the library, the wasm module, the command and
// the HTTP API. Request is the API call exactly as it would be sent; the other members are facts about it.
//
// A nil or empty fact means "unknown", and the default policy refuses what it cannot verify. That is why
// the facts whose zero value is a meaningful state (an idle task, an unencrypted cluster) are pointers.
type Input struct {
	Request Request  `json:"request"`
	Cluster *Cluster `json:"cluster,omitempty"`
	Key     *Key     `json:"key,omitempty"`
	Tenant  *Tenant  `json:"tenant,omitempty"`
}

// Request is the guarded call: POST /v2/{project_id}/clusters/{cluster_id}/encrypt with its body.
type Request struct {
	ProjectID string `json:"project_id,omitempty"`
	ClusterID string `json:"cluster_id,omitempty"`
	// Body is the raw JSON body, an EncryptBody when well formed. It is kept raw because the policy judges
	// whatever a client would send, wrong types and extra members included.
	Body json.RawMessage `json:"body,omitempty"`
}

// EncryptBody is the call's body as the API defines it (the official SDK's model.EncryptClusterReq). Its
// member names are the ones servers read: a member that differs from one of them only by letter case is
// refused (see ReadDocument).
type EncryptBody struct {
	Encrypt *Encrypt `json:"encrypt"`
}

// Encrypt is the body's "encrypt" object (the SDK's model.EncryptCluster). The members are all optional
// here, since the policy, not the type, says which ones a call needs.
type Encrypt struct {
	CryptAlgorithm string `json:"crypt_algorithm,omitempty"`
	MasterKeyID    string `json:"master_key_id,omitempty"`
	MasterKeyName  string `json:"master_key_name,omitempty"`
}

// Cluster holds the facts about the cluster: from ListClusterDetails, ShowClusterEncryptInfo and an
// inventory (the guestAgent version is not in the cluster details).
type Cluster struct {
	Version             string            `json:"version,omitempty"`
	GuestAgentVersion   string            `json:"guest_agent_version,omitempty"`
	Status              string            `json:"status,omitempty"`
	SubStatus           string            `json:"sub_status,omitempty"`
	TaskStatus          *string           `json:"task_status,omitempty"`
	ActionProgress      map[string]string `json:"action_progress,omitempty"`
	Encrypted           *bool             `json:"encrypted,omitempty"`
	DRRelationship      *bool             `json:"dr_relationship,omitempty"`
	EnterpriseProjectID string            `json:"enterprise_project_id,omitempty"`
	Tags                []Tag             `json:"tags,omitempty"`
}

// Tag is a cluster tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Key holds the facts about the KMS key (DescribeKey). Without them the key checks are skipped with a warning.
type Key struct {
	KeyID    string `json:"key_id,omitempty"`
	KeyState string `json:"key_state,omitempty"`
	KeySpec  string `json:"key_spec,omitempty"`
}

// Tenant says which compliance class the caller belongs to. When absent, the policy derives the class
// from data (by project, enterprise project or cluster tag), falling back to "default".
type Tenant struct {
	Class string `json:"class,omitempty"`
}

// String returns a pointer to s, for the facts that are pointers.
func String(s string) *string { return &s }

// Bool returns a pointer to b, for the facts that are pointers.
func Bool(b bool) *bool { return &b }
