# METADATA
# title: Tenant algorithm
# description: |
#   Which algorithms a tenant may convert with is the compliance team's data: tenant classes and their
#   allowed algorithms, and the mapping of projects, enterprise projects and cluster tags to a class.
#   Regulated tenants (those the Cryptography Law binds to commercial cryptography) may use only SM4,
#   the "SMcompatible" algorithm.
package precheck.rules.tenant

import data.precheck.lib

classes := lib.config.tenants.classes

# METADATA
# title: algorithm not allowed for the tenant
# description: The request's crypt_algorithm must be one the tenant's class allows.
# custom:
#   code: PRECHECK-TEN-001
#   severity: deny
#   status: 403
#   remediation: convert with crypt_algorithm {expected}, the algorithm this tenant's class allows
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "request.body.encrypt.crypt_algorithm",
	"message": concat("", [
		"crypt_algorithm ", alg, " is not allowed for tenant class ", lib.tenant_class,
		"; it allows only ", expected,
	]),
	"expected": expected,
	"actual": alg,
} if {
	alg := input.request.body.encrypt.crypt_algorithm
	alg in lib.config.algorithms # an unknown algorithm is rules.request's to report
	allowed := classes[lib.tenant_class].algorithms
	not alg in allowed
	expected := concat(" or ", allowed)
}

# METADATA
# title: tenant class unknown
# description: A tenant class that data does not define has no allowed algorithms, so nothing can be checked.
# custom:
#   code: PRECHECK-TEN-002
#   severity: deny
#   status: 403
#   remediation: give tenant.class as one of {expected}, or define the class in data
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "tenant.class",
	"message": class_problem,
	"expected": concat(", ", sort(object.keys(classes))),
	"actual": lib.describe(given),
} if {
	class_problem
}

# METADATA
# title: tenant class given differs from data
# description: |
#   The document names a tenant class, but data classifies the project (or its enterprise project) as
#   another. The data's class is the one applied; the disagreement is reported so that the inventory or tool
#   that gave the class can be corrected.
# custom:
#   code: PRECHECK-TEN-003
#   severity: warn
#   status: 403
#   remediation: correct the tenant class where the input document comes from to {expected}, the class data gives
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "tenant.class",
	"message": concat("", [
		"tenant.class ", lib.quote(lib.given_class), " was given, but data classifies this tenant as ",
		lib.quote(lib.mapped_class), "; the data's class applies",
	]),
	"expected": lib.mapped_class,
	"actual": lib.given_class,
} if {
	lib.given_class != lib.mapped_class
}

default given := null

given := input.tenant.class

# class_problem words what is wrong with the tenant class; a given class that is not a string is ignored
# when deriving the class, but must not pass unnoticed.
class_problem := concat(" ", ["tenant.class must be a string, got", type_name(given)]) if {
	given != null
	not is_string(given)
} else := concat(" ", ["tenant class", lib.quote(lib.tenant_class), "is not defined in data"]) if {
	not classes[lib.tenant_class]
}
