package precheck.rules.restart_test

import data.precheck.testing as t

test_restart_warning_on_allowed if {
	d := t.decide(t.allowed_input)
	d.allowed
	t.warned_by(d, "PRECHECK-OPS-001", "request")
}

test_restart_warning_on_denied if {
	d := t.decide(t.set("/cluster/encrypted", true))
	not d.allowed
	t.warned_by(d, "PRECHECK-OPS-001", "request")
}
