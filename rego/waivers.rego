# METADATA
# title: Waivers
# description: |
#   A waiver (data.precheck.waivers) turns a rule's deny into a warning for the calls its scope covers, until
#   it expires. An expired waiver stops working; so that nobody is surprised, it is reported where it used to
#   apply.
package precheck.rules.waivers

import data.precheck.lib

# METADATA
# title: waiver expired
# description: A waiver for this call has expired, so the rule it waived denies again.
# custom:
#   code: PRECHECK-WAIVER-001
#   severity: warn
#   status: 403
#   remediation: renew the waiver with a new expiry and reason, or fix what it waived
findings contains {
	"rule": rego.metadata.rule().custom,
	"field": concat("", ["data.precheck.waivers[", format_int(i, 10), "]"]),
	"message": msg,
	"expected": "an unexpired waiver",
	"actual": w.expires,
} if {
	some i in lib.waiver_expired
	w := lib.waivers[i]
	msg := concat("", ["the waiver of ", w.rule, " for ", w.owner, " (", w.reason, ") expired on ", w.expires])
}
