package precheck.rules.tenant_test

import data.precheck.testing as t

test_regulated_needs_sm4 if {
	d := t.decide(t.set("/tenant/class", "regulated"))
	t.denied_by(d, "PRECHECK-TEN-001", "request.body.encrypt.crypt_algorithm")
	msg := t.message_of(d, "PRECHECK-TEN-001", "request.body.encrypt.crypt_algorithm")
	contains(msg, "generalCipher is not allowed for tenant class regulated")
	d.error.status == 403
	d.error.error_code == "PRECHECK-TEN-001"
}

test_regulated_with_sm4_passes if {
	doc := json.patch(t.allowed_input, [
		{"op": "add", "path": "/tenant/class", "value": "regulated"},
		{"op": "add", "path": "/request/body/encrypt/crypt_algorithm", "value": "SMcompatible"},
	])
	t.decide(doc).allowed
}

test_default_class_allows_both[alg] if {
	some alg in ["generalCipher", "SMcompatible"]
	t.decide(t.set("/request/body/encrypt/crypt_algorithm", alg)).allowed
}

# Without tenant.class the class comes from data: by project, by enterprise project, by cluster tag.
test_class_derived_from_data[how] if {
	some how, tc in {
		"project": {"doc": t.without("/tenant"), "data": {"by_project": {"89cd04f168b84af6be287f71730fdb4b": "regulated"}}},
		"enterprise project": {"doc": t.without("/tenant"), "data": {"by_enterprise_project": {"0": "regulated"}}},
		"tag": {"doc": t.set("/cluster/tags", [{"key": "compliance", "value": "regulated"}]), "data": {}},
	}
	doc := json.remove(tc.doc, ["tenant"])
	tenants := object.union(data.precheck.config.tenants, tc.data)
	d := t.decide(doc) with data.precheck.config.tenants as tenants
	t.denied_by(d, "PRECHECK-TEN-001", "request.body.encrypt.crypt_algorithm")
}

# The compliance team's mapping stands whatever the document says; the disagreement is reported.
test_data_class_wins_over_given[how] if {
	some how, tc in {
		"project": {"by_project": {"89cd04f168b84af6be287f71730fdb4b": "regulated"}, "by_enterprise_project": {}},
		"enterprise project": {"by_project": {}, "by_enterprise_project": {"0": "regulated"}},
	}
	tenants := object.union(data.precheck.config.tenants, tc)
	d := t.decide(t.allowed_input) with data.precheck.config.tenants as tenants
	t.denied_by(d, "PRECHECK-TEN-001", "request.body.encrypt.crypt_algorithm")
	t.warned_by(d, "PRECHECK-TEN-003", "tenant.class")
	some w in d.warnings
	w.code == "PRECHECK-TEN-003"
	w.expected == "regulated"
	w.actual == "default"
}

test_project_mapping_before_enterprise_project if {
	tenants := object.union(data.precheck.config.tenants, {
		"by_project": {"89cd04f168b84af6be287f71730fdb4b": "regulated"},
		"by_enterprise_project": {"0": "default"},
	})
	d := t.decide(t.without("/tenant")) with data.precheck.config.tenants as tenants
	t.denied_by(d, "PRECHECK-TEN-001", "request.body.encrypt.crypt_algorithm")
}

test_given_class_agreeing_with_data_is_quiet if {
	d := t.decide(t.allowed_input)
		with data.precheck.config.tenants.by_project as {"89cd04f168b84af6be287f71730fdb4b": "default"}
	d.allowed
	not t.has_code(d, "PRECHECK-TEN-003")
}

# A given class counts where data has no mapping for the project, and it beats a tag (which the tenant sets).
test_given_class_beats_tag if {
	d := t.decide(t.set("/cluster/tags", [{"key": "compliance", "value": "regulated"}]))
	d.allowed
	not t.has_code(d, "PRECHECK-TEN-003")
}

test_unclassified_tenant_gets_the_fallback if {
	d := t.decide(t.without("/tenant")) with data.precheck.config.tenants.fallback as "regulated"
	t.denied_by(d, "PRECHECK-TEN-001", "request.body.encrypt.crypt_algorithm")
}

test_first_tag_mapping_wins if {
	mappings := [
		{"key": "compliance", "value": "regulated", "class": "regulated"},
		{"key": "env", "value": "prod", "class": "default"},
	]
	tags := [{"key": "env", "value": "prod"}, {"key": "compliance", "value": "regulated"}]
	doc := json.remove(t.set("/cluster/tags", tags), ["tenant"])
	d := t.decide(doc) with data.precheck.config.tenants.by_tag as mappings
	t.has_code(d, "PRECHECK-TEN-001")
}

test_unknown_class[note] if {
	some note, tc in {
		"undefined class": {"value": "bank", "says": "tenant class \"bank\" is not defined in data"},
		"not a string": {"value": 7, "says": "tenant.class must be a string, got number"},
	}
	d := t.decide(t.set("/tenant/class", tc.value))
	contains(t.message_of(d, "PRECHECK-TEN-002", "tenant.class"), tc.says)
}

test_derived_class_undefined_in_data if {
	d := t.decide(t.set("/tenant", "not an object"))
		with data.precheck.config.tenants.by_project as {"89cd04f168b84af6be287f71730fdb4b": "bank"}
	contains(t.message_of(d, "PRECHECK-TEN-002", "tenant.class"), "tenant class \"bank\" is not defined in data")
}

test_tags_of_wrong_type_fall_back_to_default if {
	d := t.decide(json.remove(t.set("/cluster/tags", "compliance=regulated"), ["tenant"]))
	d.allowed
}
