package precheck.rules.request_test

import data.precheck.testing as t

test_example_request_passes if {
	d := t.decide(t.allowed_input)
	d.allowed
	not t.has_code(d, "PRECHECK-REQ-001")
	not t.has_code(d, "PRECHECK-REQ-002")
	not t.has_code(d, "PRECHECK-REQ-003")
	not t.has_code(d, "PRECHECK-REQ-004")
	not t.has_code(d, "PRECHECK-REQ-005")
	not t.has_code(d, "PRECHECK-REQ-006")
	not t.has_code(d, "PRECHECK-REQ-007")
}

test_encrypt_missing[note] if {
	some note, tc in {
		"no encrypt": {"doc": t.without("/request/body/encrypt"), "says": "no \"encrypt\" object"},
		"no body": {"doc": t.without("/request/body"), "says": "no body"},
		"body is a string": {"doc": t.set("/request/body", "encrypt=yes"), "says": "must be a JSON object"},
		"encrypt is an array": {"doc": t.set("/request/body/encrypt", []), "says": "must be an object, got array"},
		"encrypt is null": {"doc": t.set("/request/body/encrypt", null), "says": "no \"encrypt\" object"},
		"request is a number": {"doc": t.set("/request", 3), "says": "no body"},
	}
	d := t.decide(tc.doc)
	t.denied_by(d, "PRECHECK-REQ-001", "request.body.encrypt")
	contains(t.message_of(d, "PRECHECK-REQ-001", "request.body.encrypt"), tc.says)
	d.error.status == 400

	# Without an encrypt object its members are not reported again.
	not t.has_code(d, "PRECHECK-REQ-002")
	not t.has_code(d, "PRECHECK-REQ-003")
	not t.has_code(d, "PRECHECK-REQ-004")
}

test_master_key_id[note] if {
	some note, tc in {
		"missing": {"value": null, "says": "master_key_id is missing"},
		"number": {"value": 42, "says": "must be a string, got number"},
		"object": {"value": {"id": "x"}, "says": "must be a string, got object"},
		"not a key id": {"value": "KMS-1abd-1016", "says": "\"KMS-1abd-1016\" is not a KMS key ID"},
		"upper case": {"value": "0F3196C8-5C23-469F-84DA-92ECD2499DCE", "says": "is not a KMS key ID"},
		"too short": {"value": "0f3196c8-5c23-469f-84da-92ecd2499dc", "says": "is not a KMS key ID"},
		"empty": {"value": "", "says": "is not a KMS key ID"},
	}
	d := t.decide(t.set("/request/body/encrypt/master_key_id", tc.value))
	contains(t.message_of(d, "PRECHECK-REQ-002", "request.body.encrypt.master_key_id"), tc.says)
}

test_master_key_id_removed if {
	d := t.decide(t.without("/request/body/encrypt/master_key_id"))
	contains(t.message_of(d, "PRECHECK-REQ-002", "request.body.encrypt.master_key_id"), "missing")
}

test_crypt_algorithm[note] if {
	some note, tc in {
		"missing": {"value": null, "says": "crypt_algorithm is missing"},
		"number": {"value": 4, "says": "must be a string, got number"},
		"boolean": {"value": true, "says": "must be a string, got boolean"},
		"unknown": {"value": "AES-256", "says": "\"AES-256\" is not an algorithm the API knows"},
		"wrong case": {"value": "smcompatible", "says": "is not an algorithm the API knows"},
	}
	d := t.decide(t.set("/request/body/encrypt/crypt_algorithm", tc.value))
	contains(t.message_of(d, "PRECHECK-REQ-003", "request.body.encrypt.crypt_algorithm"), tc.says)
}

test_crypt_algorithm_known[alg] if {
	some alg in ["generalCipher", "SMcompatible"]
	d := t.decide(t.set("/request/body/encrypt/crypt_algorithm", alg))
	not t.has_code(d, "PRECHECK-REQ-003")
}

test_master_key_name[note] if {
	some note, tc in {
		"number": {"value": 1016, "says": "must be a string, got number"},
		"empty": {"value": "", "says": "master_key_name is empty"},
	}
	d := t.decide(t.set("/request/body/encrypt/master_key_name", tc.value))
	contains(t.message_of(d, "PRECHECK-REQ-004", "request.body.encrypt.master_key_name"), tc.says)
}

test_master_key_name_optional if {
	d := t.decide(t.without("/request/body/encrypt/master_key_name"))
	d.allowed
	not t.has_code(d, "PRECHECK-REQ-004")
}

test_master_key_name_null_is_absent if {
	d := t.decide(t.set("/request/body/encrypt/master_key_name", null))
	not t.has_code(d, "PRECHECK-REQ-004")
}

test_project_id[note] if {
	some note, tc in {
		"missing": {"doc": t.without("/request/project_id"), "says": "project_id is missing"},
		"too short": {
			"doc": t.set("/request/project_id", "89cd04f168b84af6be287f71730fdb4"),
			"says": "is not 32 lowercase letters and digits",
		},
		"upper case": {"doc": t.set("/request/project_id", "89CD04F168B84AF6BE287F71730FDB4B"), "says": "is not 32"},
		"number": {"doc": t.set("/request/project_id", 89), "says": "must be a string, got number"},
	}
	d := t.decide(tc.doc)
	contains(t.message_of(d, "PRECHECK-REQ-005", "request.project_id"), tc.says)
}

test_cluster_id[note] if {
	some note, tc in {
		"missing": {"doc": t.without("/request/cluster_id"), "says": "cluster_id is missing"},
		"not a uuid": {
			"doc": t.set("/request/cluster_id", "dws-cluster-1"),
			"says": "\"dws-cluster-1\" is not a 36-character UUID",
		},
		"no dashes": {
			"doc": t.set("/request/cluster_id", "97cbaab3939e4dbc91870fe240f2b9fd"),
			"says": "is not a 36-character UUID",
		},
		"array": {
			"doc": t.set("/request/cluster_id", ["97cbaab3-939e-4dbc-9187-0fe240f2b9fd"]),
			"says": "must be a string, got array",
		},
	}
	d := t.decide(tc.doc)
	contains(t.message_of(d, "PRECHECK-REQ-006", "request.cluster_id"), tc.says)
}

# Members the API does not define are refused, in encrypt and beside it: a server may read them differently.
test_unknown_member_is_refused[note] if {
	some note, tc in {
		"misspelt in encrypt": {
			"doc": t.set("/request/body/encrypt/crypt_algorithim", "SMcompatible"),
			"field": "request.body.encrypt.crypt_algorithim",
			"says": "body.encrypt has a member the API does not define: \"crypt_algorithim\"",
		},
		"beside encrypt": {
			"doc": t.set("/request/body/dry_run", true),
			"field": "request.body.dry_run",
			"says": "body has a member the API does not define: \"dry_run\"",
		},
		"a second encrypt by case": {
			"doc": t.set("/request/body/ENCRYPT", {"crypt_algorithm": "generalCipher"}),
			"field": "request.body.ENCRYPT",
			"says": "\"ENCRYPT\"",
		},
	}
	d := t.decide(tc.doc)
	t.denied_by(d, "PRECHECK-REQ-007", tc.field)
	contains(t.message_of(d, "PRECHECK-REQ-007", tc.field), tc.says)
	d.error.status == 400
}

test_unknown_member_level_can_be_warn if {
	d := t.decide(t.set("/request/body/encrypt/crypt_algorithim", "SMcompatible"))
		with data.precheck.levels.global as {"PRECHECK-REQ-007": "warn"}
	t.warned_by(d, "PRECHECK-REQ-007", "request.body.encrypt.crypt_algorithim")
	d.allowed # a warning never denies
}

test_long_value_is_cut_short if {
	long := concat("", [x | some _ in numbers.range(1, 100); x := "a"])
	d := t.decide(t.set("/request/cluster_id", long))
	some v in d.violations
	v.code == "PRECHECK-REQ-006"
	endswith(v.actual, "...")
	count(v.actual) == 67
}
