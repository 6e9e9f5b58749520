# METADATA
# title: KMS key
# description: |
#   When the caller gives the KMS key's details (DescribeKey), the key must be enabled and be the key the
#   request names: a disabled, pending or frozen key makes the restarted cluster unreadable. Without key
#   facts the checks are skipped with a warning; missing or mistyped key facts are for rules.facts.
package precheck.rules.key

import data.precheck.lib

# METADATA
# title: key facts not given
# description: Without the key's details its state cannot be checked; the conversion may still fail on it.
# custom:
#   code: PRECHECK-KEY-001
#   severity: warn
#   status: 400
#   remediation: pass the KMS key's details (DescribeKey) as "key" to check its state
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "key",
	"message": "the KMS key's state was not checked: no key facts were given",
	"expected": "",
	"actual": "missing",
} if {
	object.get(input, "key", null) == null
}

# METADATA
# title: key not enabled
# description: The KMS key must be enabled (key_state "2"); any other state fails the conversion or the cluster.
# custom:
#   code: PRECHECK-KEY-002
#   severity: deny
#   status: 400
#   remediation: enable the KMS key (or cancel its deletion), or convert with an enabled key
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "key.key_state",
	"message": msg,
	"expected": concat("", [enabled, " (enabled)"]),
	"actual": lib.describe(state),
} if {
	state := input.key.key_state
	is_string(state)
	enabled := lib.config.enabled_key_state
	state != enabled
	msg := concat("", [
		"the KMS key is ", object.get(lib.config.key_states, state, "in an unknown state"),
		" (key_state ", lib.quote(state), "), not enabled",
	])
}

# METADATA
# title: key facts about another key
# description: The key facts must describe the key the request names, or the state check proves nothing.
# custom:
#   code: PRECHECK-KEY-003
#   severity: deny
#   status: 400
#   remediation: gather the facts for the key in encrypt.master_key_id, or correct the request's key
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "key.key_id",
	"message": msg,
	"expected": wanted,
	"actual": lib.describe(got),
} if {
	got := input.key.key_id
	is_string(got)
	wanted := input.request.body.encrypt.master_key_id
	is_string(wanted)
	got != wanted
	msg := concat(" ", ["the key facts describe key", lib.quote(got), "but the request names", lib.quote(wanted)])
}
