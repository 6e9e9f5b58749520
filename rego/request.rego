# METADATA
# title: Request shape
# description: |
#   The call exactly as a client would send it: the path parameters and the body. The API marks the
#   "encrypt" object itself as optional, but without it there is nothing to convert with.
package precheck.rules.request

import data.precheck.lib

body := object.get(lib.request, "body", null)

default encrypt := null

encrypt := object.get(body, "encrypt", null) if is_object(body)

default encrypt_members := {}

encrypt_members := lib.encrypt

master_key_id := object.get(encrypt_members, "master_key_id", null)

master_key_name := object.get(encrypt_members, "master_key_name", null)

crypt_algorithm := object.get(encrypt_members, "crypt_algorithm", null)

project_id := object.get(lib.request, "project_id", null)

cluster_id := object.get(lib.request, "cluster_id", null)

ids := {"project_id": project_id, "cluster_id": cluster_id, "master_key_id": master_key_id}

forms := lib.config.id_forms

# well_formed holds the names of the identifiers that have their form (data's id_forms): their
# dash-separated groups have the listed lengths and every character is in the alphabet. A rule fires on
# "not in well_formed", which also covers a missing identifier or one of the wrong type. (Not regex.match:
# OPA's WebAssembly build compiles the pattern on every call, about 0.2 ms each.)
well_formed contains name if {
	some name, form in forms
	value := ids[name]
	is_string(value)
	[count(group) | some group in split(value, "-")] == form.groups
	trim(replace(value, "-", ""), form.alphabet) == ""
}

valid_master_key_name if {
	is_string(master_key_name)
	master_key_name != ""
}

# METADATA
# title: encrypt object missing
# description: The body must be a JSON object with an "encrypt" object that names the key and the algorithm.
# custom:
#   code: PRECHECK-REQ-001
#   severity: deny
#   status: 400
#   remediation: 'send the body {"encrypt": {"master_key_id": "<KMS key id>", "crypt_algorithm": "<algorithm>"}}'
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "request.body.encrypt",
	"message": encrypt_problem,
	"expected": "an object",
	"actual": lib.describe(encrypt),
} if {
	not lib.encrypt
}

# METADATA
# title: master_key_id missing or malformed
# description: master_key_id is mandatory and must be a KMS key ID (the form KMS documents for key IDs).
# custom:
#   code: PRECHECK-REQ-002
#   severity: deny
#   status: 400
#   remediation: set encrypt.master_key_id to the ID of the KMS key, e.g. 0f3196c8-5c23-469f-84da-92ecd2499dce
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "request.body.encrypt.master_key_id",
	"message": id_problem("master_key_id", master_key_id, forms.master_key_id.description),
	"expected": forms.master_key_id.description,
	"actual": lib.describe(master_key_id),
} if {
	lib.encrypt
	not "master_key_id" in well_formed
}

# METADATA
# title: project_id malformed
# description: The project ID in the path is 32 lowercase letters and digits.
# custom:
#   code: PRECHECK-REQ-005
#   severity: deny
#   status: 400
#   remediation: call the API with the project's ID (32 lowercase letters and digits) in the path
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "request.project_id",
	"message": id_problem("project_id", project_id, forms.project_id.description),
	"expected": forms.project_id.description,
	"actual": lib.describe(project_id),
} if {
	not "project_id" in well_formed
}

# METADATA
# title: cluster_id malformed
# description: The cluster ID in the path is a 36-character UUID.
# custom:
#   code: PRECHECK-REQ-006
#   severity: deny
#   status: 400
#   remediation: call the API with the cluster's ID, a 36-character UUID, in the path
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "request.cluster_id",
	"message": id_problem("cluster_id", cluster_id, forms.cluster_id.description),
	"expected": forms.cluster_id.description,
	"actual": lib.describe(cluster_id),
} if {
	not "cluster_id" in well_formed
}

# METADATA
# title: crypt_algorithm missing or unknown
# description: crypt_algorithm is mandatory and has no documented default; it must be one the API knows.
# custom:
#   code: PRECHECK-REQ-003
#   severity: deny
#   status: 400
#   remediation: set encrypt.crypt_algorithm to {expected}
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "request.body.encrypt.crypt_algorithm",
	"message": algorithm_problem(crypt_algorithm),
	"expected": concat(" or ", lib.config.algorithms),
	"actual": lib.describe(crypt_algorithm),
} if {
	lib.encrypt
	not crypt_algorithm in lib.config.algorithms
}

# METADATA
# title: master_key_name not a string
# description: master_key_name is optional, but when present it must be a non-empty string.
# custom:
#   code: PRECHECK-REQ-004
#   severity: deny
#   status: 400
#   remediation: remove encrypt.master_key_name or set it to the KMS key's name, e.g. KMS-1abd-1016
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "request.body.encrypt.master_key_name",
	"message": name_problem(master_key_name),
	"expected": "a non-empty string",
	"actual": lib.describe(master_key_name),
} if {
	master_key_name != null
	not valid_master_key_name
}

# METADATA
# title: unknown member in the body
# description: |
#   A member of the body, or of its "encrypt" object, that the API does not define is refused: the API
#   ignores it, so a misspelt member's setting would silently not apply, and a server that reads member
#   names differently might not ignore it. A compliance team may lower the level to warn.
# custom:
#   code: PRECHECK-REQ-007
#   severity: deny
#   status: 400
#   remediation: remove the member or correct its name to one of {expected}
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": concat(".", [where, name]),
	"message": concat("", [trim_prefix(where, "request."), " has a member the API does not define: ", lib.quote(name)]),
	"expected": expected,
	"actual": name,
} if {
	some where, names in unknown_members
	some name in names
	expected := concat(", ", known_members[where])
}

# The wording of the findings above, and the members the API does not define.

# encrypt_problem words why the body has no encrypt object.
encrypt_problem := "the request has no body" if {
	body == null
} else := concat(" ", ["the request body must be a JSON object, got", lib.describe(body)]) if {
	not is_object(body)
} else := "the request body has no \"encrypt\" object" if {
	encrypt == null
} else := concat(" ", ["\"encrypt\" must be an object, got", lib.describe(encrypt)])

# id_problem words what is wrong with an identifier that did not match its pattern.
id_problem(name, id, form) := concat(" ", [name, "is missing"]) if {
	id == null
} else := concat(" ", [name, "must be a string, got", type_name(id)]) if {
	not is_string(id)
} else := concat(" ", [name, lib.quote(id), "is not", form])

# algorithm_problem words what is wrong with a crypt_algorithm the API does not know.
algorithm_problem(alg) := "crypt_algorithm is missing" if {
	alg == null
} else := concat(" ", ["crypt_algorithm must be a string, got", type_name(alg)]) if {
	not is_string(alg)
} else := concat(" ", ["crypt_algorithm", lib.quote(alg), "is not an algorithm the API knows"])

# name_problem words what is wrong with a master_key_name that is present but not a non-empty string.
name_problem(name) := "master_key_name is empty" if {
	name == ""
} else := concat(" ", ["master_key_name must be a string, got", type_name(name)])

# unknown_members maps "request.body" and "request.body.encrypt" to the names of their members the API
# does not define (data's body_fields and encrypt_fields). The API would ignore them; often one is a
# misspelt member, whose intended setting would silently not apply.
unknown_members["request.body"] contains name if {
	some name, _ in body
	not name in lib.config.body_fields
}

unknown_members["request.body.encrypt"] contains name if {
	some name, _ in lib.encrypt
	not name in lib.config.encrypt_fields
}

known_members := {"request.body": lib.config.body_fields, "request.body.encrypt": lib.config.encrypt_fields}
