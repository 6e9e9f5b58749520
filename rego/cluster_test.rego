package precheck.rules.cluster_test

import data.precheck.testing as t

test_available_statuses[status] if {
	some status in ["AVAILABLE", "ACTIVE"]
	t.decide(t.set("/cluster/status", status)).allowed
}

test_unavailable_statuses[status] if {
	some status in ["CREATING", "FAILED", "FROZEN", "POLICE_FROZEN", "UNAVAILABLE", "DELETING", "available"]
	d := t.decide(t.set("/cluster/status", status))
	t.denied_by(d, "PRECHECK-CLU-001", "cluster.status")
	d.error.status == 409
}

test_running_task[note] if {
	some note, tc in {
		"task_status": {"doc": t.set("/cluster/task_status", "SNAPSHOTTING"), "says": "task \"SNAPSHOTTING\" is running"},
		"action_progress": {
			"doc": t.set("/cluster/action_progress", {"REDISTRIBUTING": "45%"}),
			"says": "an action is in progress on the cluster: REDISTRIBUTING",
		},
	}
	d := t.decide(tc.doc)
	contains(t.message_of(d, "PRECHECK-CLU-002", "cluster.task_status"), tc.says)
	d.error.status == 409
}

test_already_encrypted if {
	d := t.decide(t.set("/cluster/encrypted", true))
	t.denied_by(d, "PRECHECK-CLU-003", "cluster.encrypted")
	d.error == {
		"status": 409,
		"error_code": "PRECHECK-CLU-003",
		"error_msg": "PRECHECK-CLU-003: the cluster is already encrypted",
	}
}

test_dr_relationship if {
	d := t.decide(t.set("/cluster/dr_relationship", true))
	t.denied_by(d, "PRECHECK-CLU-004", "cluster.dr_relationship")
}

test_degraded_sub_status_warns[sub] if {
	some sub in ["DEGRADED", "READONLY", "NORMAL | READONLY", "UNBALANCED|DEGRADED"]
	d := t.decide(t.set("/cluster/sub_status", sub))
	t.warned_by(d, "PRECHECK-CLU-005", "cluster.sub_status")
	d.allowed
}

test_normal_sub_status_is_quiet if {
	not t.has_code(t.decide(t.allowed_input), "PRECHECK-CLU-005")
}
