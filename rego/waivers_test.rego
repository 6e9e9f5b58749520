package precheck.rules.waivers_test

import data.precheck.testing as t

old_agent := t.set("/cluster/guest_agent_version", "8.3.0.199")

waiver(scope, expires) := {
	"rule": "PRECHECK-VER-002",
	"scope": scope,
	"reason": "agent upgrade scheduled with the vendor",
	"owner": "dba-team",
	"expires": expires,
}

cluster_scope := {"cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"}

ns(rfc3339) := time.parse_rfc3339_ns(rfc3339)

decide_at(doc, waivers, now) := d if {
	d := t.decide(doc) with data.precheck.waivers as waivers with time.now_ns as now
}

test_waived_deny_becomes_a_warning if {
	d := decide_at(old_agent, [waiver(cluster_scope, "2027-01-01")], ns("2026-11-27T12:00:00Z"))
	d.allowed
	some w in d.warnings
	w.code == "PRECHECK-VER-002"
	w.severity == "warn"
	endswith(w.message, "(waived until 2027-01-01 for dba-team: agent upgrade scheduled with the vendor)")
}

# The waiver applies while now is before "expires"; a date means midnight UTC starting that day, and a time
# carries its own zone.
test_expiry_boundary[note] if {
	some note, tc in {
		"date, last nanosecond": {"expires": "2027-01-01", "now": "2026-12-31T23:59:59.999999999Z", "waived": true},
		"date, at midnight UTC": {"expires": "2027-01-01", "now": "2027-01-01T00:00:00Z", "waived": false},
		"+08:00, just before": {
			"expires": "2027-01-01T00:00:00+08:00",
			"now": "2026-12-31T15:59:59.999999999Z",
			"waived": true,
		},
		"+08:00, at the instant in UTC": {
			"expires": "2027-01-01T00:00:00+08:00",
			"now": "2026-12-31T16:00:00Z",
			"waived": false,
		},
		"-05:00, later than UTC midnight": {
			"expires": "2027-01-01T00:00:00-05:00",
			"now": "2027-01-01T04:00:00Z",
			"waived": true,
		},
	}
	d := decide_at(old_agent, [waiver(cluster_scope, tc.expires)], ns(tc.now))
	d.allowed == tc.waived
}

test_expired_waiver_is_reported if {
	d := decide_at(old_agent, [waiver(cluster_scope, "2026-11-01")], ns("2026-11-27T12:00:00Z"))
	t.denied_by(d, "PRECHECK-VER-002", "cluster.guest_agent_version")
	some w in d.warnings
	w.code == "PRECHECK-WAIVER-001"
	w.field == "data.precheck.waivers[0]"
	contains(w.message, concat("", [
		"the waiver of PRECHECK-VER-002 for dba-team (agent upgrade scheduled with the vendor)",
		" expired on 2026-11-01",
	]))
}

test_expired_waiver_of_another_cluster_is_quiet if {
	other_cluster := {"cluster_id": "00000000-0000-0000-0000-000000000000"}
	d := decide_at(old_agent, [waiver(other_cluster, "2026-11-01")], ns("2026-11-27T12:00:00Z"))
	not t.has_code(d, "PRECHECK-WAIVER-001")
}

test_scope[note] if {
	some note, tc in {
		"other cluster": {"scope": {"cluster_id": "00000000-0000-0000-0000-000000000000"}, "waived": false},
		"project": {"scope": {"project_id": "89cd04f168b84af6be287f71730fdb4b"}, "waived": true},
		"tenant class": {"scope": {"tenant_class": "default"}, "waived": true},
		"other tenant class": {"scope": {"tenant_class": "regulated"}, "waived": false},
		"all members must match": {
			"scope": {"project_id": "89cd04f168b84af6be287f71730fdb4b", "tenant_class": "regulated"},
			"waived": false,
		},
	}
	d := decide_at(old_agent, [waiver(tc.scope, "2027-01-01")], ns("2026-11-27T12:00:00Z"))
	d.allowed == tc.waived
}

test_waiver_leaves_other_rules_alone if {
	doc := json.patch(old_agent, [{"op": "add", "path": "/cluster/encrypted", "value": true}])
	d := decide_at(doc, [waiver(cluster_scope, "2027-01-01")], ns("2026-11-27T12:00:00Z"))
	not d.allowed
	[v.code | some v in d.violations] == ["PRECHECK-CLU-003"]
}

test_first_waiver_in_data_wins if {
	second := object.union(waiver(cluster_scope, "2027-06-01"), {"owner": "someone-else"})
	d := decide_at(old_agent, [waiver(cluster_scope, "2027-01-01"), second], ns("2026-11-27T12:00:00Z"))
	some w in d.warnings
	w.code == "PRECHECK-VER-002"
	contains(w.message, "for dba-team")
}

test_waiver_does_not_touch_a_warning if {
	w := object.union(waiver(cluster_scope, "2027-01-01"), {"rule": "PRECHECK-OPS-001"})
	d := decide_at(t.allowed_input, [w], ns("2026-11-27T12:00:00Z"))
	some warning in d.warnings
	warning.code == "PRECHECK-OPS-001"
	not contains(warning.message, "waived")
}
