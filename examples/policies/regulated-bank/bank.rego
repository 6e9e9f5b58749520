# METADATA
# title: Bank key policy
# description: |
#   The bank's own rule, on top of the default policy: SM4 encryption must use an SM4 key, so that the
#   whole chain is commercial cryptography the regulator accepts.
package precheck.rules.bank

import data.precheck.lib

# METADATA
# title: SM4 encryption without an SM4 key
# description: A conversion to SMcompatible must name a KMS key whose key_spec is SM4.
# custom:
#   code: BANK-KEY-001
#   severity: deny
#   status: 403
#   remediation: create or choose a KMS key with key_spec {expected} and convert with it
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": "key.key_spec",
	"message": msg,
	"expected": "SM4",
	"actual": lib.describe(spec),
} if {
	lib.encrypt.crypt_algorithm == "SMcompatible"
	spec := object.get(object.get(input, "key", {}), "key_spec", null)
	spec != "SM4"
	msg := concat(" ", ["SMcompatible needs an SM4 key, but the key's key_spec is", lib.quote(spec)])
}
