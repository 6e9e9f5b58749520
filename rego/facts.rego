# METADATA
# title: Facts
# description: |
#   The gate fails closed: a fact a rule needs but nobody gathered, or one of the wrong JSON type, is a
#   refusal on that fact's field, never a pass. The other rules judge the facts that are present and typed.
#   Which facts are required, their JSON type and where they come from are data (config.required_facts);
#   the key facts are required only when key facts were given at all.
package precheck.rules.facts

import data.precheck.lib

# holders are the members of the input the required facts (data.precheck.config.required_facts) live in.
holders := {"cluster": lib.cluster, "key": key}

# key holds the key facts. Without any (no "key", or null) the key checks are skipped with a warning, so
# the default stands in for facts that are not needed; key facts that are not an object are all missing.
default key := {"key_id": "not needed", "key_state": "not needed"}

key := input.key if is_object(input.key)

key := {} if {
	input.key != null
	not is_object(input.key)
}

# problems pairs every required fact that is missing (null) or not of its type with its value in the input:
# both rules below read it, so each fact is looked up and typed once, and a call whose facts are all there
# costs the rules nothing more.
problems := [[fact, value] |
	some fact in lib.config.required_facts
	value := object.get(holders[fact.member], fact.name, null)
	type_name(value) != fact.type
]

# METADATA
# title: fact unknown
# description: A fact a rule needs was not given, so the rule cannot tell; the gate refuses rather than guess.
# custom:
#   code: PRECHECK-FACT-001
#   severity: deny
#   status: 403
#   remediation: gather the fact from {expected} and pass it in the input document
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": field,
	"message": concat(" ", [field, "is unknown: the fact was not given"]),
	"expected": source,
	"actual": "missing",
} if {
	some [fact, null] in problems
	source := fact.source
	field := concat(".", [fact.member, fact.name])
}

# METADATA
# title: fact of the wrong type
# description: A fact has a JSON type the rules cannot judge (a number for a version, a string for a flag).
# custom:
#   code: PRECHECK-FACT-002
#   severity: deny
#   status: 403
#   remediation: pass the fact as {expected}, as the DWS and KMS APIs return it
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": field,
	"message": msg,
	"expected": concat(" ", ["a", type]),
	"actual": type_name(value),
} if {
	some [fact, value] in problems
	value != null
	type := fact.type
	field := concat(".", [fact.member, fact.name])
	msg := concat(" ", [field, "must be a", type, "but is a", type_name(value)])
}
