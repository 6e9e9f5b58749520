package policy

// Decision is precheck's answer. Allowed is false exactly when Violations is non-empty; Error is then the
// answer a gate gives instead of making the call, in the API's own error shape.
type Decision struct {
	Allowed    bool        `json:"allowed"`
	Violations []Violation `json:"violations"`
	Warnings   []Violation `json:"warnings"`
	Error      *APIError   `json:"error,omitempty"`
}

// Violation is one finding of a rule. Field is the dotted path of the input member at fault
// (request.body.encrypt.crypt_algorithm, cluster.guest_agent_version, ...). Severity is "deny" in
// Decision.Violations and "warn" in Decision.Warnings.
type Violation struct {
	Code        string `json:"code"`
	Field       string `json:"field"`
	Severity    string `json:"severity"`
	Message     string `json:"message"`
	Expected    string `json:"expected,omitempty"`
	Actual      string `json:"actual,omitempty"`
	Remediation string `json:"remediation,omitempty"`
}

// APIError is what a gate answers instead of making a refused call: 400 for a bad request, 403 for a
// policy refusal, 409 for a cluster that is busy or already encrypted. ErrorCode is a precheck rule code,
// never a DWS.* code.
type APIError struct {
	Status    int    `json:"status"`
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

// Severities a rule can have, and the level that switches a rule off.
const (
	SeverityDeny = "deny"
	SeverityWarn = "warn"
	LevelOff     = "off"
)
