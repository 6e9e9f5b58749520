# METADATA
# title: Irreversible restart
# description: What the caller must know on every call, whatever else the decision says.
package precheck.rules.restart

# METADATA
# title: irreversible conversion restarts the cluster
# description: The conversion cannot be undone and restarts the cluster; it belongs in a maintenance window.
# custom:
#   code: PRECHECK-OPS-001
#   severity: warn
#   status: 409
#   remediation: run the conversion in a maintenance window and tell the cluster's users about the restart
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "request",
	"message": "the conversion is irreversible and restarts the cluster",
	"expected": "",
	"actual": "",
}
