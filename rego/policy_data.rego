# METADATA
# title: Policy data
# description: |
#   The rules judge the input against thresholds, algorithms and tenant classes in the policy's data
#   (data.json). Without that data they have nothing to compare with and most of them cannot fire, so a
#   host that evaluates the module without its data (no setData) would be answered "allowed". The policy
#   refuses instead: without its data it never allows.
package precheck.rules.policy_data

# METADATA
# title: policy data not loaded
# description: |
#   The policy was evaluated without its data (data.precheck.config is absent or not an object), so no
#   rule could judge the call; the gate refuses rather than allow what it could not check.
# custom:
#   code: PRECHECK-DATA-001
#   severity: deny
#   # 403, a refusal, as for a fact that was not given (PRECHECK-FACT-001): here the policy's own facts are
#   # missing. Not 400 or 409: neither the request nor the cluster is at fault. Not a 5xx: a rule's status
#   # is one of the refusals the contract names (400/403/409; the catalog admits only 4xx, and 5xx are the
#   # gate's "could not decide"), the module did decide, and no retry succeeds until the host loads the
#   # data. 403 outranks the 409s of the rules that still fire without data, and PRECHECK-DATA-001 sorts
#   # before every other 403 code, so it is the error_code a host sees unless the request itself is bad
#   # (400, which the API checks first; the data refusal is then among the error_msg's reasons).
#   status: 403
#   remediation: load the policy's data ({expected}) into the host before evaluating, e.g. setData in opa-wasm
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "data.precheck.config",
	"message": msg,
	"expected": "the bundle's data.json",
	"actual": config_type,
} if {
	config_type != "object"
	msg := concat("", [
		"the policy's data is not loaded (data.precheck.config is ", config_type,
		"): no rule could judge the call",
	])
}

# config_type is the JSON type of the data's config, "missing" without one. The rule compares it rather than
# negate is_object(data.precheck.config): OPA's WebAssembly build takes "not is_object(x)" with x undefined
# for false (topdown: true), so that rule would fail open in exactly the case it is for.
default config_type := "missing"

config_type := type_name(data.precheck.config)
