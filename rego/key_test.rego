package precheck.rules.key_test

import data.precheck.testing as t

test_no_key_facts_warns if {
	d := t.decide(t.without("/key"))
	t.warned_by(d, "PRECHECK-KEY-001", "key")
	d.allowed
}

test_null_key_is_no_key if {
	d := t.decide(t.set("/key", null))
	t.warned_by(d, "PRECHECK-KEY-001", "key")
	d.allowed
}

test_key_not_enabled[state] if {
	some state, says in {
		"1": "the KMS key is pending activation",
		"3": "the KMS key is disabled",
		"4": "the KMS key is pending deletion",
		"5": "the KMS key is pending import",
		"9": "the KMS key is in an unknown state",
	}
	d := t.decide(t.set("/key/key_state", state))
	contains(t.message_of(d, "PRECHECK-KEY-002", "key.key_state"), says)
	d.error.status == 400
}

test_key_of_another_key if {
	d := t.decide(t.set("/key/key_id", "11111111-2222-3333-4444-555555555555"))
	t.denied_by(d, "PRECHECK-KEY-003", "key.key_id")
}

test_enabled_matching_key_passes if {
	d := t.decide(t.allowed_input)
	not t.has_code(d, "PRECHECK-KEY-001")
	not t.has_code(d, "PRECHECK-KEY-002")
	not t.has_code(d, "PRECHECK-KEY-003")
}
