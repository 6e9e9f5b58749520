package precheck.lib_test

import data.precheck.lib

test_describe[note] if {
	some note, tc in {
		"null": {"value": null, "shown": "missing"},
		"string": {"value": "8.3.0.200", "shown": "8.3.0.200"},
		"true": {"value": true, "shown": "true"},
		"false": {"value": false, "shown": "false"},
		"number": {"value": 8, "shown": "number"},
		"object": {"value": {"a": 1}, "shown": "object"},
		"array": {"value": [1], "shown": "array"},
	}
	lib.describe(tc.value) == tc.shown
}

test_quote if {
	lib.quote("x") == "\"x\""
	lib.quote(1) == "number"
}

test_members_read_defensively if {
	lib.cluster == {} with input as {"cluster": "dws"}
	lib.request == {} with input as {}
	not lib.encrypt with input as {"request": {"body": {"encrypt": "x"}}}
	lib.encrypt == {"a": 1} with input as {"request": {"body": {"encrypt": {"a": 1}}}}
}
