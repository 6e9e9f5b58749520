# METADATA
# title: Cluster state
# description: |
#   The conversion restarts the cluster and cannot be undone, so the cluster must be available, idle, not
#   yet encrypted and free of disaster-recovery relationships. The facts come from ListClusterDetails,
#   ShowClusterEncryptInfo and the DR list; a fact that is missing or mistyped is for rules.facts to refuse.
package precheck.rules.cluster

import data.precheck.lib

# METADATA
# title: cluster not available
# description: The cluster must be in the Available state (the API reports AVAILABLE or ACTIVE).
# custom:
#   code: PRECHECK-CLU-001
#   severity: deny
#   status: 409
#   remediation: wait until the cluster is {expected} (or repair it), then retry
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "cluster.status",
	"message": concat(" ", ["cluster is", lib.quote(status), "and not available"]),
	"expected": concat(" or ", lib.config.available_statuses),
	"actual": lib.describe(status),
} if {
	status := input.cluster.status
	is_string(status)
	not status in lib.config.available_statuses
}

# METADATA
# title: task running on the cluster
# description: No other management task may run on the cluster (task_status empty, no action in progress).
# custom:
#   code: PRECHECK-CLU-002
#   severity: deny
#   status: 409
#   remediation: wait for the running task to finish, then retry
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "cluster.task_status",
	"message": running,
	"expected": "no running task",
	"actual": lib.describe(input.cluster.task_status),
} if {
	running
}

# METADATA
# title: cluster already encrypted
# description: The conversion applies only to an ordinary cluster; an encrypted one is already converted.
# custom:
#   code: PRECHECK-CLU-003
#   severity: deny
#   status: 409
#   remediation: nothing to convert; the cluster is already encrypted (see ShowClusterEncryptInfo)
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "cluster.encrypted",
	"message": "the cluster is already encrypted",
	"expected": "false",
	"actual": "true",
} if {
	input.cluster.encrypted == true
}

# METADATA
# title: disaster-recovery relationship
# description: A cluster in a disaster-recovery (DR) relationship cannot be converted.
# custom:
#   code: PRECHECK-CLU-004
#   severity: deny
#   status: 409
#   remediation: remove the cluster's DR relationship first, convert, then set DR up again
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "cluster.dr_relationship",
	"message": "the cluster has a disaster-recovery relationship",
	"expected": "false",
	"actual": "true",
} if {
	input.cluster.dr_relationship == true
}

# METADATA
# title: cluster degraded or read-only
# description: A degraded, read-only or redistributing cluster may not survive the restart the conversion causes.
# custom:
#   code: PRECHECK-CLU-005
#   severity: warn
#   status: 409
#   remediation: restore the cluster to NORMAL before converting
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "cluster.sub_status",
	"message": concat(" ", ["cluster sub-status is", lib.quote(sub)]),
	"expected": "NORMAL",
	"actual": lib.describe(sub),
} if {
	sub := input.cluster.sub_status
	is_string(sub)
	some part in split(sub, "|")
	trim_space(part) in lib.config.warn_sub_statuses
}

# running words what is running: the task in task_status, else the actions in action_progress.
running := concat(" ", ["task", lib.quote(task), "is running on the cluster"]) if {
	task := input.cluster.task_status
	is_string(task)
	task != ""
} else := concat(" ", [
	"an action is in progress on the cluster:",
	concat(", ", sort(object.keys(progress))),
]) if {
	progress := input.cluster.action_progress
	is_object(progress)
	count(progress) > 0
}
