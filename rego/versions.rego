# METADATA
# title: Versions
# description: |
#   The API converts only clusters of a minimum version whose guestAgent is recent enough. Versions have
#   four segments (8.3.0.200) and are compared by hashicorp/go-version through the dws.version_* builtins:
#   8.3.0.1999 is above 8.3.0.200, 8.3.0 is below it, and a pre-release is below its release. A missing or
#   non-string version is for rules.facts to report.
package precheck.rules.versions

import data.precheck.lib

# METADATA
# title: cluster version too old or unparseable
# description: The cluster must run the minimum data warehouse version the API states (8.0.0).
# custom:
#   code: PRECHECK-VER-001
#   severity: deny
#   status: 409
#   remediation: upgrade the cluster to a version {expected}, then retry
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "cluster.version",
	"message": concat(" ", ["cluster version", problem]),
	"expected": concat(" ", [">=", minimum]),
	"actual": lib.describe(v),
} if {
	v := input.cluster.version
	minimum := lib.config.min_cluster_version
	not cluster_version_ok
	problem := version_problem(v, minimum, cluster_version_cmp)
}

# METADATA
# title: guestAgent version too old or unparseable
# description: |
#   The cluster's guestAgent must be at least the version the API states (8.3.0.200). It is not in the
#   cluster details, so it comes from the caller or an inventory.
# custom:
#   code: PRECHECK-VER-002
#   severity: deny
#   status: 409
#   remediation: upgrade the cluster's guestAgent to a version {expected}, then retry
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "cluster.guest_agent_version",
	"message": concat(" ", ["guestAgent version", problem]),
	"expected": concat(" ", [">=", minimum]),
	"actual": lib.describe(v),
} if {
	v := input.cluster.guest_agent_version
	minimum := lib.config.min_guest_agent_version
	not guest_agent_version_ok
	problem := version_problem(v, minimum, guest_agent_version_cmp)
}

# Each version compared with its minimum by go-version: -1, 0 or 1, or null when either cannot be parsed
# (dws.version_compare is undefined then), so an unparseable version (or minimum) is never ok. The
# comparison is a rule of its own so that a refusal words its problem from it, without a second call.
default cluster_version_cmp := null

cluster_version_cmp := dws.version_compare(input.cluster.version, lib.config.min_cluster_version)

default guest_agent_version_cmp := null

guest_agent_version_cmp := dws.version_compare(input.cluster.guest_agent_version, lib.config.min_guest_agent_version)

cluster_version_ok if cluster_version_cmp in {0, 1}

guest_agent_version_ok if guest_agent_version_cmp in {0, 1}

# version_problem words why a string version that is not ok (cmp, its comparison) is not; undefined for
# non-strings (rules.facts).
version_problem(v, minimum, cmp) := concat(" ", [v, "is below the required", minimum]) if {
	is_string(v)
	cmp == -1
} else := concat(" ", [lib.quote(v), "is not a version"]) if {
	is_string(v)
	not dws.version_valid(v)
} else := concat(" ", ["cannot be compared with the minimum", lib.quote(minimum)]) if {
	is_string(v)
}
