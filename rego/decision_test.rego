package precheck_test

import data.precheck.testing as t

test_allowed_decision_shape if {
	d := t.decide(t.allowed_input)
	d == {
		"allowed": true,
		"violations": [],
		"warnings": [{
			"code": "PRECHECK-OPS-001",
			"field": "request",
			"severity": "warn",
			"message": "the conversion is irreversible and restarts the cluster",
			"remediation": "run the conversion in a maintenance window and tell the cluster's users about the restart",
		}],
	}
}

# The decision is what any OPA host prints: findings in policy.CompareViolations order (code, field, message,
# actual) and no member a rule left empty, so that no host has to sort or drop anything.
test_findings_sorted_without_empty_members[note] if {
	some note, doc in {
		"no cluster facts": t.without("/cluster"),
		"no key facts, regulated, busy": json.patch(t.allowed_input, [
			{"op": "remove", "path": "/key"},
			{"op": "add", "path": "/tenant/class", "value": "regulated"},
			{"op": "add", "path": "/cluster/task_status", "value": "GROWING"},
			{"op": "add", "path": "/cluster/sub_status", "value": "DEGRADED"},
		]),
		"empty document": {},
		"request of wrong types": t.set("/request", {"project_id": 1, "cluster_id": [], "body": {"encrypt": {
			"master_key_id": true, "crypt_algorithm": 2, "master_key_name": {}, "x": 1,
		}}}),
	}
	d := t.decide(doc)
	every findings in [d.violations, d.warnings] {
		keys := [sort_key(f) | some f in findings]
		keys == sort(keys)
		every f in findings {
			every value in f {
				value != ""
			}
		}
	}
	count(d.violations) + count(d.warnings) > 2
}

sort_key(f) := [f.code, f.field, f.message, object.get(f, "actual", "")]

# Findings that share a code are ordered by field, then message, then actual, not by how OPA stored them.
test_findings_order_within_a_code if {
	d := t.decide(t.without("/cluster"))
	fields := [v.field | some v in d.violations; v.code == "PRECHECK-FACT-001"]
	fields == [
		"cluster.dr_relationship", "cluster.encrypted", "cluster.guest_agent_version",
		"cluster.status", "cluster.task_status", "cluster.version",
	]
}

# A rule that leaves expected or actual empty has no such member in the decision.
test_empty_members_are_left_out if {
	d := t.decide(json.patch(t.allowed_input, [{"op": "remove", "path": "/key"}]))
	some w in d.warnings
	w.code == "PRECHECK-KEY-001"
	not "expected" in object.keys(w)
	w.actual == "missing"
}

test_denied_decision_carries_an_error if {
	d := t.decide(t.set("/cluster/guest_agent_version", "8.3.0.199"))
	d.allowed == false
	d.error.status == 409
	d.error.error_code == "PRECHECK-VER-002"
	startswith(d.error.error_msg, "PRECHECK-VER-002: guestAgent version 8.3.0.199 is below")
	v := d.violations[0]
	v == {
		"code": "PRECHECK-VER-002",
		"field": "cluster.guest_agent_version",
		"severity": "deny",
		"message": "guestAgent version 8.3.0.199 is below the required 8.3.0.200",
		"expected": ">= 8.3.0.200",
		"actual": "8.3.0.199",
		"remediation": "upgrade the cluster's guestAgent to a version >= 8.3.0.200, then retry",
	}
}

# A bad request is answered 400 first, then a policy refusal 403, then a conflict 409.
test_error_status_order[note] if {
	some note, tc in {
		"bad request beats everything": {
			"patch": [
				{"op": "remove", "path": "/request/body/encrypt"},
				{"op": "add", "path": "/tenant/class", "value": "regulated"},
				{"op": "add", "path": "/cluster/encrypted", "value": true},
			],
			"status": 400, "code": "PRECHECK-REQ-001",
		},
		"refusal beats conflict": {
			"patch": [
				{"op": "add", "path": "/tenant/class", "value": "regulated"},
				{"op": "add", "path": "/cluster/encrypted", "value": true},
			],
			"status": 403, "code": "PRECHECK-TEN-001",
		},
		"conflict alone": {
			"patch": [{"op": "add", "path": "/cluster/task_status", "value": "GROWING"}],
			"status": 409,
			"code": "PRECHECK-CLU-002",
		},
		"the lowest code of the status": {
			"patch": [
				{"op": "add", "path": "/cluster/dr_relationship", "value": true},
				{"op": "add", "path": "/cluster/encrypted", "value": true},
				{"op": "add", "path": "/cluster/task_status", "value": "GROWING"},
			],
			"status": 409, "code": "PRECHECK-CLU-002",
		},
	}
	d := t.decide(json.patch(t.allowed_input, tc.patch))
	d.error.status == tc.status
	d.error.error_code == tc.code
}

# A status outside the three the API answers (an override's own) comes after them, the least first.
test_first_status[note] if {
	some note, tc in {
		"400 first": {"statuses": {409, 403, 400, 422}, "want": 400},
		"then 403": {"statuses": {409, 403, 422}, "want": 403},
		"then 409": {"statuses": {500, 409, 422}, "want": 409},
		"else the least": {"statuses": {500, 422}, "want": 422},
	}
	data.precheck.first_status(tc.statuses) == tc.want
}

test_every_violation_is_in_the_error_message if {
	d := t.decide(json.patch(t.allowed_input, [
		{"op": "add", "path": "/cluster/encrypted", "value": true},
		{"op": "add", "path": "/cluster/dr_relationship", "value": true},
	]))
	contains(d.error.error_msg, "PRECHECK-CLU-003: the cluster is already encrypted")
	contains(d.error.error_msg, "PRECHECK-CLU-004: the cluster has a disaster-recovery relationship")
}

# Levels in data change a rule without editing Rego: globally, or for a tenant class.
test_level_off_globally if {
	d := t.decide(t.set("/cluster/dr_relationship", true)) with data.precheck.levels.global as {"PRECHECK-CLU-004": "off"}
	d.allowed
	not t.has_code(d, "PRECHECK-CLU-004")
}

test_level_warn_globally if {
	d := t.decide(t.set("/cluster/dr_relationship", true)) with data.precheck.levels.global as {"PRECHECK-CLU-004": "warn"}
	d.allowed
	t.warned_by(d, "PRECHECK-CLU-004", "cluster.dr_relationship")
}

test_level_deny_raises_a_warning if {
	d := t.decide(t.set("/cluster/sub_status", "DEGRADED"))
		with data.precheck.levels.global as {"PRECHECK-CLU-005": "deny"}
	t.denied_by(d, "PRECHECK-CLU-005", "cluster.sub_status")
	d.error.status == 409
}

test_level_for_tenant_class if {
	doc := json.patch(t.allowed_input, [
		{"op": "add", "path": "/tenant/class", "value": "regulated"},
		{"op": "add", "path": "/request/body/encrypt/crypt_algorithm", "value": "SMcompatible"},
		{"op": "add", "path": "/cluster/sub_status", "value": "DEGRADED"},
	])
	levels := {"tenant_classes": {"regulated": {"PRECHECK-CLU-005": "deny"}}, "global": {}}
	d := t.decide(doc) with data.precheck.levels as levels
	t.denied_by(d, "PRECHECK-CLU-005", "cluster.sub_status")
	d2 := t.decide(t.set("/cluster/sub_status", "DEGRADED")) with data.precheck.levels as levels
	d2.allowed
}

test_class_level_beats_global_level if {
	levels := {"tenant_classes": {"default": {"PRECHECK-CLU-004": "deny"}}, "global": {"PRECHECK-CLU-004": "off"}}
	d := t.decide(t.set("/cluster/dr_relationship", true)) with data.precheck.levels as levels
	t.denied_by(d, "PRECHECK-CLU-004", "cluster.dr_relationship")
}

# A rule whose finding leaves out members still denies: its author forgetting "expected" must not let the
# call through.
test_finding_without_optional_members_still_denies if {
	code := concat("-", ["EXTRA", "RULE", "001"]) # a rule of no policy: built, so lint takes it for no typo
	rule := {"code": code, "severity": "deny", "status": 403, "remediation": "fix it: {expected}"}
	findings := {{"rule": rule, "field": "request", "message": "refused by a terse rule"}}

	# the test adds a rule package that no policy has, so the reference resolves to nothing on purpose
	# regal ignore:unresolved-reference
	d := t.decide(t.allowed_input) with data.precheck.rules.extra.findings as findings
	t.denied_by(d, code, "request")
	some v in d.violations
	v.code == code
	v.remediation == "fix it: "
	not v.expected
	not v.actual
}
