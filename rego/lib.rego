# METADATA
# title: Shared helpers
# description: |
#   What every rule needs: the input's members read defensively (a client may send anything), how a value
#   is shown to a person, and the tenant class.
#
#   Speed note: in OPA's evaluator a call to a user function costs far more than a builtin or a complete
#   rule (which is evaluated once per decision and cached). So the rules test their conditions with
#   builtins and references to the rules here, and call functions (describe, quote) only once a rule has
#   fired, to word its message.
package precheck.lib

config := data.precheck.config

# The input's members as objects ({} when absent or not an object), so that object.get can tell "missing".
# A rule that reads one member reads it from input itself (input.cluster.status, not cluster.status): the
# same value, undefined as well when the holder is not an object, and a reference OPA's rule index can use
# to skip a rule without evaluating it (input.cluster.encrypted == true).
default request := {}

request := input.request if is_object(input.request)

default cluster := {}

cluster := input.cluster if is_object(input.cluster)

# encrypt is the body's encrypt object; undefined when there is none (rules.request reports that).
encrypt := input.request.body.encrypt if is_object(input.request.body.encrypt)

# describe shows an input value in a finding's "actual": strings as themselves (cut short, they may be
# anything a client sent), booleans as true/false, anything else by its JSON type.
describe(x) := "missing" if {
	x == null
} else := x if {
	is_string(x)
	count(x) <= 64
} else := concat("", [substring(x, 0, 64), "..."]) if {
	is_string(x)
} else := "true" if {
	x == true
} else := "false" if {
	x == false
} else := type_name(x)

# quote puts a value in a message the way a person reads it.
quote(x) := concat("", ["\"", describe(x), "\""]) if {
	is_string(x)
} else := describe(x)

# tenant_class is the compliance team's: the class data maps the project or the enterprise project to,
# whatever the document says; else the class the document gives (under the gate, the facts provider's, never
# the request's); else the one a cluster tag maps to (the first matching mapping wins); else data's
# fallback. Tags come last: the tenant sets them, so a tag mapping is a hint, not a control. Each step's body
# names the rule to test that it is defined: a class is a string (data's are checked when the policy loads).
tenant_class := mapped_class if {
	mapped_class
} else := given_class if {
	given_class
} else := tagged_class if {
	tagged_class
} else := tenants.fallback

# tagged_class is the class of the first by_tag mapping that one of the cluster's tags matches.
tagged_class := class if {
	first := min({i |
		some i, mapping in tenants.by_tag
		some tag in cluster.tags
		tag.key == mapping.key
		tag.value == mapping.value
	})
	class := tenants.by_tag[first].class
}

tenants := config.tenants

# mapped_class is the class data gives the project, else its enterprise project; undefined when data
# classifies neither.
mapped_class := c if {
	c := tenants.by_project[input.request.project_id]
} else := c if {
	c := tenants.by_enterprise_project[input.cluster.enterprise_project_id]
}

# given_class is the class the document names, when it names one as a string.
given_class := c if {
	c := input.tenant.class
	is_string(c)
}

# Waivers (data.precheck.waivers, checked when the policy loads): each turns a rule's deny into a warning for
# the calls its scope covers (every member of the scope must match), until it expires. A waiver applies while
# the evaluation's time is before "expires", an RFC 3339 time or a date (midnight UTC starting that day).
default waivers := []

waivers := data.precheck.waivers

waiver_scope := {
	"project_id": object.get(request, "project_id", null),
	"cluster_id": object.get(request, "cluster_id", null),
	"tenant_class": tenant_class,
}

waiver_in_scope(w) if {
	every key, value in w.scope {
		waiver_scope[key] == value
	}
}

waiver_expires_ns(w) := time.parse_rfc3339_ns(w.expires) if {
	contains(w.expires, "T")
} else := time.parse_rfc3339_ns(concat("", [w.expires, "T00:00:00Z"]))

# waiver_active and waiver_expired hold the positions in data of the waivers that cover this call.
waiver_active contains i if {
	some i, w in waivers
	waiver_in_scope(w)
	time.now_ns() < waiver_expires_ns(w)
}

waiver_expired contains i if {
	some i, w in waivers
	waiver_in_scope(w)
	time.now_ns() >= waiver_expires_ns(w)
}

# waived maps a rule code to the active waiver for it, the first one in data when several are.
waived[code] := waivers[first] if {
	some code in {waivers[i].rule | some i in waiver_active}
	first := min({i | some i in waiver_active; waivers[i].rule == code})
}
