package server

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/precheck/precheck/plugin/redact"
	"github.com/precheck/precheck/policy"
)

// logEntry is one line of the decision log. It never holds the input document itself (only its digest),
// nor anything of the request but the identifiers of the cluster it is about; no header, no credential.
type logEntry struct {
	DecisionID     string    `json:"decision_id"`
	Time           time.Time `json:"time"`
	Endpoint       string    `json:"endpoint"` // api or gate
	PolicyRevision string    `json:"policy_revision"`
	Engine         string    `json:"engine"`
	InputDigest    string    `json:"input_digest,omitempty"`
	ProjectID      string    `json:"project_id,omitempty"`
	ClusterID      string    `json:"cluster_id,omitempty"`
	Result         string    `json:"result"` // allowed, denied or error
	Violations     []string  `json:"violations"`
	Warnings       []string  `json:"warnings"`
	Error          string    `json:"error,omitempty"`     // redacted (redact.Text): it may quote the facts API
	Forwarded      *bool     `json:"forwarded,omitempty"` // gate: whether the call went on to the API
	LatencyMS      float64   `json:"latency_ms"`
}

// decisionLog writes JSON lines; one writer at a time, so lines never interleave.
type decisionLog struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newDecisionLog(w io.Writer) *decisionLog {
	if w == nil {
		return nil
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &decisionLog{enc: enc}
}

// maxLoggedID bounds an identifier in the log: the caller chose it, and the policy refuses one that is not
// of the API's form (32 or 36 characters), but the log names the call whatever it said.
const maxLoggedID = 128

func (l *decisionLog) write(e *logEntry) {
	if l == nil {
		return
	}
	e.ProjectID, e.ClusterID = redact.Line(e.ProjectID, maxLoggedID), redact.Line(e.ClusterID, maxLoggedID)
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.enc.Encode(e)
}

func result(d *policy.Decision, err error) string {
	switch {
	case err != nil || d == nil:
		return "error"
	case d.Allowed:
		return "allowed"
	default:
		return "denied"
	}
}

func codesOf(vs []policy.Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Code
	}
	return out
}
