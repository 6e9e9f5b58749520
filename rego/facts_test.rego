package precheck.rules.facts_test

import data.precheck.testing as t

test_missing_fact[path] if {
	some path, field in {
		"/cluster/version": "cluster.version",
		"/cluster/guest_agent_version": "cluster.guest_agent_version",
		"/cluster/status": "cluster.status",
		"/cluster/task_status": "cluster.task_status",
		"/cluster/encrypted": "cluster.encrypted",
		"/cluster/dr_relationship": "cluster.dr_relationship",
		"/key/key_state": "key.key_state",
		"/key/key_id": "key.key_id",
	}
	d := t.decide(t.without(path))
	t.denied_by(d, "PRECHECK-FACT-001", field)
	contains(t.message_of(d, "PRECHECK-FACT-001", field), "is unknown")
}

test_null_fact_is_missing if {
	d := t.decide(t.set("/cluster/encrypted", null))
	t.denied_by(d, "PRECHECK-FACT-001", "cluster.encrypted")
}

test_no_cluster_facts_at_all if {
	d := t.decide(t.without("/cluster"))
	count([v | some v in d.violations; v.code == "PRECHECK-FACT-001"]) == 6
}

test_wrong_type[path] if {
	some path, tc in {
		"/cluster/version": {"value": 8.1, "field": "cluster.version", "says": "must be a string but is a number"},
		"/cluster/guest_agent_version": {
			"value": ["8.3.0.200"],
			"field": "cluster.guest_agent_version",
			"says": "must be a string but is a array",
		},
		"/cluster/status": {"value": true, "field": "cluster.status", "says": "must be a string"},
		"/cluster/task_status": {"value": 0, "field": "cluster.task_status", "says": "must be a string"},
		"/cluster/encrypted": {"value": "false", "field": "cluster.encrypted", "says": "must be a boolean but is a string"},
		"/cluster/dr_relationship": {
			"value": 0,
			"field": "cluster.dr_relationship",
			"says": "must be a boolean but is a number",
		},
		"/key/key_state": {"value": 2, "field": "key.key_state", "says": "must be a string but is a number"},
	}
	d := t.decide(t.set(path, tc.value))
	contains(t.message_of(d, "PRECHECK-FACT-002", tc.field), tc.says)
}

# Members of the wrong type are judged, never crash: each gives a violation on its own field.
test_members_of_wrong_type[note] if {
	some note, tc in {
		"cluster is a string": {"path": "/cluster", "value": "dws", "code": "PRECHECK-FACT-001", "field": "cluster.version"},
		"key is a list": {"path": "/key", "value": [1], "code": "PRECHECK-FACT-001", "field": "key.key_state"},
		"request is an array": {"path": "/request", "value": [], "code": "PRECHECK-REQ-005", "field": "request.project_id"},
	}
	d := t.decide(t.set(tc.path, tc.value))
	t.denied_by(d, tc.code, tc.field)
}
