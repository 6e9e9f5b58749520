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
	problem := version_problem(v, minimum)
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
	problem := version_problem(v, minimum)
}

# The *_ok rules hold for a version at or above its minimum. dws.version_compare is undefined for anything
# go-version cannot parse, so an unparseable version (or minimum) is never ok. (They are rules, not an
# inline "not dws.version_compare(...) >= 0": Rego evaluates a nested call before the negation, and an
# undefined call would make the whole rule undefined instead of firing.)
cluster_version_ok if dws.version_compare(input.cluster.version, lib.config.min_cluster_version) >= 0

guest_agent_version_ok if dws.version_compare(input.cluster.guest_agent_version, lib.config.min_guest_agent_version) >= 0

# version_problem words why a string version is not ok; undefined for non-strings (rules.facts). The common
# refusal, a version below its minimum, is worded first, for one call of the builtin: a comparison that is
# defined means both are versions, and the rules call this only for a version that is not ok.
version_problem(v, minimum) := concat(" ", [v, "is below the required", minimum]) if {
	is_string(v)
	dws.version_compare(v, minimum)
} else := concat(" ", [lib.quote(v), "is not a version"]) if {
	is_string(v)
	not dws.version_valid(v)
} else := concat(" ", ["cannot be compared with the minimum", lib.quote(minimum)]) if {
	is_string(v)
}
