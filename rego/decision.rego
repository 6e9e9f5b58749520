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

# rule_levels are the levels data sets, the tenant class's over the global ones; a rule without one keeps the
# severity its METADATA gives.
default class_levels := {}

class_levels := data.precheck.levels.tenant_classes[lib.tenant_class]

default global_levels := {}

global_levels := data.precheck.levels.global

rule_levels := object.union(global_levels, class_levels)

# leveled holds every finding at its level, without those turned off, as a tuple: [severity, code, field,
# message, actual, shown, status], where shown is the finding as the decision prints it (without the
# status, which is the error's, and without an empty expected, actual or remediation). The tuple's order is
# the decision's sort key (Go's policy.CompareViolations: code, field, message, actual; Rego compares arrays
# element by element and strings by their bytes, as Go does), severity first so that one sort serves both
# lists; shown only breaks a tie. Every package under precheck.rules contributes: a compliance team adds a
# package, not a line here. A finding that leaves out a member counts all the same (the member is empty): a
# rule must never stop denying because its author left out "expected".
leveled contains [level, rule.code, field, message, actual, shown, rule.status] if {
	f := data.precheck.rules[_].findings[_]
	rule := f.rule
	level := object.get(rule_levels, rule.code, rule.severity)
	level != "off"
	field := object.get(f, "field", "")
	message := object.get(f, "message", "")
	actual := object.get(f, "actual", "")
	expected := object.get(f, "expected", "")
	remediation := replace(rule.remediation, "{expected}", expected)
	optional := {"expected": expected, "actual": actual, "remediation": remediation}
	shown := object.remove(
		{
			"code": rule.code, "severity": level, "field": field, "message": message,
			"expected": expected, "actual": actual, "remediation": remediation,
		},
		[k | some k, v in optional; v == ""],
	)
}

# effective is leveled with the waivers applied: a waived deny is a warning that names its waiver. Without
# waivers in data it is leveled itself, and the waivers' rules are not evaluated.
effective := leveled if not any_waiver

effective := waived if any_waiver

any_waiver if {
	some _ in lib.waivers
}

waived contains t if {
	some t in leveled
	t[0] == "warn"
}

waived contains t if {
	some t in leveled
	t[0] == "deny"
	not lib.waived[t[1]]
}

waived contains ["warn", t[1], t[2], message, t[4], object.union(t[5], {"severity": "warn", "message": message}), t[6]] if {
	some t in leveled
	t[0] == "deny"
	w := lib.waived[t[1]]
	message := concat("", [t[3], " (waived until ", w.expires, " for ", w.owner, ": ", w.reason, ")"])
}

# violations and warnings are the decision's as any OPA host must print it: sorted (see leveled), and
# without the members a finding leaves empty.
ranked := sort(effective)

# denials are the refusals in the decision's order (level, then code, field, message).
denials := [t | some t in ranked; t[0] == "deny"]

violations := [t[5] | some t in denials]

warnings := [t[5] | some t in ranked; t[0] == "warn"]

default allowed := false

allowed if count(violations) == 0

# A refused call is answered in the API's own error shape. A malformed request is reported first (the API
# validates its parameters first), then a policy refusal, then a conflict with the cluster's state. The
# error code is the least code with that status: the first such refusal, since denials are sorted by code.
error := {
	"status": status,
	"error_code": [t[1] | some t in denials; t[6] == status][0],
	"error_msg": concat("; ", sort([concat(": ", [t[1], t[3]]) | some t in denials])),
} if {
	status := first_status({t[6] | some t in denials})
}

first_status(statuses) := 400 if {
	400 in statuses
} else := 403 if {
	403 in statuses
} else := 409 if {
	409 in statuses
} else := min(statuses)

# METADATA
# scope: document
# title: The decision
# description: What every host evaluates (wasm entrypoint precheck/decision) and precheck prints.
# entrypoint: true
decision := {"allowed": true, "violations": violations, "warnings": warnings} if allowed

decision := {"allowed": false, "violations": violations, "warnings": warnings, "error": error} if not allowed
