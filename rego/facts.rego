# METADATA
# title: Facts
# description: |
#   The gate fails closed: a fact a rule needs but nobody gathered, or one of the wrong JSON type, is a
#   refusal on that fact's field, never a pass. The other rules judge the facts that are present and typed.
package precheck.rules.facts

import data.precheck.lib

# needed lists the facts the rules need: [the member holding it, its name, where it comes from, its JSON type].
needed := [
	[lib.cluster, "cluster", "version", "ListClusterDetails", "string"],
	[lib.cluster, "cluster", "status", "ListClusterDetails", "string"],
	[lib.cluster, "cluster", "task_status", "ListClusterDetails (empty when idle)", "string"],
	[lib.cluster, "cluster", "guest_agent_version", "the inventory (it is not in the cluster details)", "string"],
	[lib.cluster, "cluster", "encrypted", "ShowClusterEncryptInfo (false for an ordinary cluster)", "boolean"],
	[lib.cluster, "cluster", "dr_relationship", "the disaster-recovery list (false without DR)", "boolean"],
	# Key facts are needed only when some were given: without any, the key checks are skipped with a warning.
	[key, "key", "key_id", "the KMS key's details (DescribeKey)", "string"],
	[key, "key", "key_state", "the KMS key's details (DescribeKey)", "string"],
]

# key holds the key facts. Without any (no "key", or null) the key checks are skipped with a warning, so
# the default stands in for facts that are not needed; key facts that are not an object are all missing.
default key := {"key_id": "not needed", "key_state": "not needed"}

key := input.key if is_object(input.key)

key := {} if {
	input.key != null
	not is_object(input.key)
}

# METADATA
# title: fact unknown
# description: A fact a rule needs was not given, so the rule cannot tell; the gate refuses rather than guess.
# custom:
#   code: PRECHECK-FACT-001
#   severity: deny
#   status: 403
#   remediation: gather the fact from {expected} and pass it in the input document
findings contains {"rule": rego.metadata.rule().custom, "field": field, "message": concat(" ", [field, "is unknown: the fact was not given"]), "expected": source, "actual": "missing"} if {
	some [holder, prefix, name, source, _] in needed
	object.get(holder, name, null) == null
	field := concat(".", [prefix, name])
}

# METADATA
# title: fact of the wrong type
# description: A fact has a JSON type the rules cannot judge (a number for a version, a string for a flag).
# custom:
#   code: PRECHECK-FACT-002
#   severity: deny
#   status: 403
#   remediation: pass the fact as {expected}, as the DWS and KMS APIs return it
findings contains {"rule": rego.metadata.rule().custom, "field": field, "message": msg, "expected": concat(" ", ["a", type]), "actual": type_name(value)} if {
	some [holder, prefix, name, _, type] in needed
	value := object.get(holder, name, null)
	value != null
	type_name(value) != type
	field := concat(".", [prefix, name])
	msg := concat(" ", [field, "must be a", type, "but is a", type_name(value)])
}
