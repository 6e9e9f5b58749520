package precheck.rules.versions_test

import data.precheck.testing as t

# Versions compare by hashicorp/go-version: four segments, numerically, pre-releases below their release.
test_guest_agent_version_passes[v] if {
	some v in ["8.3.0.200", "8.3.0.1999", "8.3.1", "8.4.0.1", "9.0.0", "10.0.0.0", "8.3.0.200+build.7", "v8.3.0.200"]
	d := t.decide(t.set("/cluster/guest_agent_version", v))
	not t.has_code(d, "PRECHECK-VER-002")
}

test_guest_agent_version_refused[v] if {
	some v, says in {
		"8.3.0.199": "8.3.0.199 is below the required 8.3.0.200",
		"8.3.0": "8.3.0 is below the required 8.3.0.200",
		"8.3.0.20": "is below",
		"8.2.9.9999": "is below",
		"8.3.0.200-beta": "8.3.0.200-beta is below the required 8.3.0.200",
		"8.3.0.200-rc.1": "is below",
		"latest": "\"latest\" is not a version",
		"": "\"\" is not a version",
		"8.3.0.200 ": "is not a version",
		"8..3": "is not a version",
	}
	d := t.decide(t.set("/cluster/guest_agent_version", v))
	contains(t.message_of(d, "PRECHECK-VER-002", "cluster.guest_agent_version"), says)
	d.error.status == 409
}

test_cluster_version_passes[v] if {
	some v in ["8.0.0", "8.0.0.0", "8.1.3.310", "9.1.0", "10.0.0"]
	d := t.decide(t.set("/cluster/version", v))
	not t.has_code(d, "PRECHECK-VER-001")
}

test_cluster_version_refused[v] if {
	some v, says in {
		"7.9.9": "7.9.9 is below the required 8.0.0",
		"1.7.2": "is below",
		"8.0.0-rc1": "8.0.0-rc1 is below the required 8.0.0",
		"8.x": "\"8.x\" is not a version",
	}
	d := t.decide(t.set("/cluster/version", v))
	contains(t.message_of(d, "PRECHECK-VER-001", "cluster.version"), says)
}

# 10.0.0 against 8.0.0 is where string comparison goes wrong ("1" < "8"); go-version does not.
test_ten_is_above_eight if {
	d := t.decide(t.set("/cluster/version", "10.0.0"))
	d.allowed
}

test_threshold_is_data if {
	d := t.decide(t.allowed_input) with data.precheck.config.min_guest_agent_version as "8.3.1"
	contains(t.message_of(d, "PRECHECK-VER-002", "cluster.guest_agent_version"), "8.3.0.200 is below the required 8.3.1")
	some v in d.violations
	v.expected == ">= 8.3.1"
	contains(v.remediation, ">= 8.3.1")
}

test_unparseable_minimum_refuses if {
	d := t.decide(t.allowed_input) with data.precheck.config.min_cluster_version as "eight"
	contains(t.message_of(d, "PRECHECK-VER-001", "cluster.version"), "cannot be compared with the minimum \"eight\"")
}

# A missing or mistyped version is reported once, by rules.facts, not again here.
test_missing_version_is_a_fact_problem[path] if {
	some path in ["/cluster/version", "/cluster/guest_agent_version"]
	d := t.decide(t.without(path))
	not t.has_code(d, "PRECHECK-VER-001")
	not t.has_code(d, "PRECHECK-VER-002")
	t.has_code(d, "PRECHECK-FACT-001")
}

test_builtins if {
	dws.version_compare("8.3.0.1999", "8.3.0.200") == 1
	dws.version_compare("8.3.0", "8.3.0.200") == -1
	dws.version_compare("8.3.0.200", "8.3.0.200.0") == 0
	dws.version_compare("8.3.0.200-beta", "8.3.0.200") == -1
	dws.version_valid("8.3.0.200")
	not dws.version_valid("8.3.x")
	not dws.version_valid(8)
	not dws.version_compare("x", "8.0.0")
	not dws.version_compare("8.0.0", null)
}
