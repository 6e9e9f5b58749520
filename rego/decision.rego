# METADATA
# title: Decision
# description: |
#   Gathers the findings of every rule package under data.precheck.rules, applies each rule's level from
#   data, and answers allow or deny. The decision is data.precheck.decision (the wasm entrypoint
#   precheck/decision).
#
#   A rule reports {"rule": its METADATA's custom block, "field", "message", "expected", "actual"}; the
#   code, default severity, HTTP status and remediation come from that METADATA, their single source.
package precheck

import data.precheck.lib

# The levels data sets for the tenant's class and globally; a rule without one keeps its METADATA severity.
default class_levels := {}

class_levels := data.precheck.levels.tenant_classes[lib.tenant_class]

default global_levels := {}

global_levels := data.precheck.levels.global

# leveled holds every finding at its level, in the decision's shape, without those turned off. Every package
# under precheck.rules contributes: a compliance team adds a package, not a line here. A finding that leaves
# out a member counts all the same (the member is empty): a rule must never stop denying because its author
# left out "expected".
leveled contains {
	"code": rule.code,
	"severity": level,
	"status": rule.status,
	"field": object.get(f, "field", ""),
	"message": object.get(f, "message", ""),
	"expected": expected,
	"actual": object.get(f, "actual", ""),
	"remediation": replace(rule.remediation, "{expected}", expected),
} if {
	f := data.precheck.rules[_].findings[_]
	expected := object.get(f, "expected", "")
	rule := f.rule
	level := object.get(class_levels, rule.code, object.get(global_levels, rule.code, rule.severity))
	level != "off"
}

# effective is leveled with the waivers applied: a waived deny is a warning that names its waiver.
effective contains f if {
	some f in leveled
	f.severity == "warn"
}

effective contains f if {
	some f in leveled
	f.severity == "deny"
	not lib.waived[f.code]
}

effective contains object.union(f, {
	"severity": "warn",
	"message": concat("", [f.message, " (waived until ", w.expires, " for ", w.owner, ": ", w.reason, ")"]),
}) if {
	some f in leveled
	f.severity == "deny"
	w := lib.waived[f.code]
}

# violations and warnings are the decision's as any OPA host must print it: in the order of Go's
# policy.CompareViolations (code, field, message, actual; Rego compares arrays element by element and strings
# by their bytes, as Go does), and without the members a finding leaves empty. ranked is every finding after
# its sort key, severity first, so one sort serves both lists; the shown finding comes last and only breaks
# a tie. It leaves out the status (that is the error's) and an empty expected, actual or remediation.
ranked := sort([[f.severity, f.code, f.field, f.message, f.actual, shown] |
	some f in effective
	shown := object.remove(f, array.concat(["status"], [k | some k in optional_members; f[k] == ""]))
])

optional_members := ["expected", "actual", "remediation"]

violations := [r[5] | some r in ranked; r[0] == "deny"]

warnings := [r[5] | some r in ranked; r[0] == "warn"]

default allowed := false

allowed if count(violations) == 0

# A refused call is answered in the API's own error shape. A malformed request is reported first (the API
# validates its parameters first), then a policy refusal, then a conflict with the cluster's state.
error := {
	"status": status,
	"error_code": min({f.code | some f in effective; f.severity == "deny"; f.status == status}),
	"error_msg": concat("; ", sort([concat(": ", [f.code, f.message]) | some f in effective; f.severity == "deny"])),
} if {
	statuses := {f.status | some f in effective; f.severity == "deny"}
	status := first_status(statuses)
}

first_status(statuses) := s if {
	s := [s | some s in [400, 403, 409]; s in statuses][0]
} else := min(statuses)

# METADATA
# scope: document
# title: The decision
# description: What every host evaluates (wasm entrypoint precheck/decision) and precheck prints.
# entrypoint: true
decision := {"allowed": true, "violations": violations, "warnings": warnings} if allowed

decision := {"allowed": false, "violations": violations, "warnings": warnings, "error": error} if not allowed
