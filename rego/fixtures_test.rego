# METADATA
# title: Test fixtures
# description: |
#   The API page's example request with a full set of facts, allowed by the default policy, and helpers
#   that change one member of it and look at the decision.
package precheck.testing

allowed_input := {
	"request": {
		"project_id": "89cd04f168b84af6be287f71730fdb4b",
		"cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		"body": {"encrypt": {
			"crypt_algorithm": "generalCipher",
			"master_key_id": "0f3196c8-5c23-469f-84da-92ecd2499dce",
			"master_key_name": "KMS-1abd-1016",
		}},
	},
	"cluster": {
		"version": "8.1.3.310",
		"guest_agent_version": "8.3.0.200",
		"status": "AVAILABLE",
		"sub_status": "NORMAL",
		"task_status": "",
		"action_progress": {},
		"encrypted": false,
		"dr_relationship": false,
		"enterprise_project_id": "0",
		"tags": [{"key": "env", "value": "prod"}],
	},
	"key": {"key_id": "0f3196c8-5c23-469f-84da-92ecd2499dce", "key_state": "2", "key_spec": "AES_256"},
	"tenant": {"class": "default"},
}

# set returns the allowed input with the member at path (a JSON pointer) set to value.
set(path, value) := json.patch(allowed_input, [{"op": "add", "path": path, "value": value}])

# without returns the allowed input without the member at path.
without(path) := json.patch(allowed_input, [{"op": "remove", "path": path}])

decide(doc) := d if {
	d := data.precheck.decision with input as doc
}

# denied_by holds when the decision refuses with code on field.
denied_by(decision, code, field) if {
	decision.allowed == false
	some v in decision.violations
	v.code == code
	v.field == field
}

# warned_by holds when the decision warns with code on field.
warned_by(decision, code, field) if {
	some w in decision.warnings
	w.code == code
	w.field == field
}

# has_code holds when any violation or warning of the decision has code.
has_code(decision, code) if {
	some v in array.concat(decision.violations, decision.warnings)
	v.code == code
}

# message_of is the message of the decision's violation with code on field.
message_of(decision, code, field) := v.message if {
	some v in decision.violations
	v.code == code
	v.field == field
}
