package precheck.rules.bank_test

import data.precheck.testing as t

sm4 := json.patch(t.allowed_input, [
	{"op": "add", "path": "/request/body/encrypt/crypt_algorithm", "value": "SMcompatible"},
	{"op": "add", "path": "/key/key_spec", "value": "SM4"},
	{"op": "add", "path": "/cluster/guest_agent_version", "value": "8.3.0.210"},
	{"op": "add", "path": "/cluster/version", "value": "8.1.3.310"},
])

test_sm4_with_an_sm4_key_passes if {
	d := t.decide(sm4)
	d.allowed
	not t.has_code(d, "BANK-KEY-001")
}

test_sm4_with_another_key[spec] if {
	some spec in ["AES_256", "SM2", ""]
	d := t.decide(json.patch(sm4, [{"op": "add", "path": "/key/key_spec", "value": spec}]))
	t.denied_by(d, "BANK-KEY-001", "key.key_spec")
	d.error.status == 403
}

test_sm4_without_a_key_spec if {
	d := t.decide(json.remove(sm4, ["key/key_spec"]))
	contains(t.message_of(d, "BANK-KEY-001", "key.key_spec"), "key_spec is missing")
}

test_general_cipher_is_forbidden_everywhere[class] if {
	some class in ["default", "regulated"]
	doc := json.patch(sm4, [
		{"op": "add", "path": "/request/body/encrypt/crypt_algorithm", "value": "generalCipher"},
		{"op": "add", "path": "/tenant/class", "value": class},
	])
	d := t.decide(doc)
	t.denied_by(d, "PRECHECK-TEN-001", "request.body.encrypt.crypt_algorithm")
	not t.has_code(d, "BANK-KEY-001") # the bank's rule is about SM4 only
}

test_minimum_versions_are_raised if {
	d := t.decide(json.patch(sm4, [{"op": "add", "path": "/cluster/version", "value": "8.1.0"}]))
	contains(t.message_of(d, "PRECHECK-VER-001", "cluster.version"), "8.1.0 is below the required 8.1.1")
}

test_key_facts_are_mandatory if {
	d := t.decide(json.remove(sm4, ["key"]))
	t.denied_by(d, "PRECHECK-KEY-001", "key")
}

test_agent_waiver_until_february if {
	old := json.patch(sm4, [{"op": "add", "path": "/cluster/guest_agent_version", "value": "8.3.0.200"}])
	before := t.decide(old) with time.now_ns as time.parse_rfc3339_ns("2027-01-31T23:59:59Z")
	before.allowed
	after := t.decide(old) with time.now_ns as time.parse_rfc3339_ns("2027-02-01T00:00:00Z")
	t.denied_by(after, "PRECHECK-VER-002", "cluster.guest_agent_version")
}
