package precheck.rules.policy_data_test

import data.precheck.testing as t

# without_data decides doc as a host that never loaded the policy's data would: no config, no levels, no
# waivers (null stands in for absent, which a test cannot make; the Go tests evaluate with no data at all).
# It takes the waivers away around without_config, so that each function replaces at most two documents.
without_data(doc) := d if {
	d := without_config(doc) with data.precheck.waivers as null
}

# without_config decides doc without the policy's config and levels.
without_config(doc) := d if {
	d := t.decide(doc) with data.precheck.config as null
		with data.precheck.levels as null
}

# Every example, allowed or denied with its data, is refused without it, and PRECHECK-DATA-001 is the answer.
test_refused_without_data[note] if {
	some note, doc in {
		"allowed example": t.allowed_input,
		"guestAgent too old": t.set("/cluster/guest_agent_version", "8.3.0.199"),
		"regulated generalCipher": t.set("/tenant/class", "regulated"),
		"fact unknown": t.without("/cluster/version"),
		"already encrypted": t.set("/cluster/encrypted", true),
	}
	d := without_data(doc)
	d.allowed == false
	t.denied_by(d, "PRECHECK-DATA-001", "data.precheck.config")
	d.error == {
		"status": 403,
		"error_code": "PRECHECK-DATA-001",
		"error_msg": concat("; ", sort([concat(": ", [v.code, v.message]) | some v in d.violations])),
	}
	t.warned_by(d, "PRECHECK-OPS-001", "request")
}

# The decision without data is as well-formed as with it: sorted, every member a non-empty string.
test_decision_without_data_is_well_formed if {
	d := without_data(t.set("/cluster/encrypted", true))
	[v.code | some v in d.violations] == ["PRECHECK-CLU-003", "PRECHECK-DATA-001"]
	d.violations[1] == {
		"code": "PRECHECK-DATA-001",
		"field": "data.precheck.config",
		"severity": "deny",
		"message": "the policy's data is not loaded (data.precheck.config is null): no rule could judge the call",
		"expected": "the bundle's data.json",
		"actual": "null",
		"remediation": concat("", [
			"load the policy's data (the bundle's data.json) into the host before evaluating,",
			" e.g. setData in opa-wasm",
		]),
	}
	every v in array.concat(d.violations, d.warnings) {
		every value in v {
			is_string(value)
			value != ""
		}
	}
}

# A bad request is still answered 400 first, as the API would: the data refusal is among the reasons.
test_bad_request_without_data_is_400[note] if {
	some note, doc in {
		"encrypt missing": t.without("/request/body/encrypt"),
		"key facts about another key": t.set("/request/body/encrypt/master_key_id", "KMS-1abd-1016"),
	}
	d := without_data(doc)
	d.error.status == 400
	t.denied_by(d, "PRECHECK-DATA-001", "data.precheck.config")
	contains(d.error.error_msg, "PRECHECK-DATA-001: the policy's data is not loaded")
}

test_config_of_the_wrong_type_is_refused if {
	d := t.decide(t.allowed_input) with data.precheck.config as "data.json"
	t.denied_by(d, "PRECHECK-DATA-001", "data.precheck.config")
	contains(t.message_of(d, "PRECHECK-DATA-001", "data.precheck.config"), "data.precheck.config is string")
}

test_no_refusal_with_data if {
	d := t.decide(t.allowed_input)
	d.allowed
	not t.has_code(d, "PRECHECK-DATA-001")
}
