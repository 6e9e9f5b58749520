package policy

import "github.com/precheck/precheck/policy/policytest"

// WithoutRace are the tests of the package (internal and external: one binary) that decide the corpus or
// load the policy many ways on one goroutine: the race detector makes OPA some ten times slower and has
// nothing to find in them, so they run in a binary built without it.
var WithoutRace = policytest.WithoutRace{
	"TestRevisionHoweverPathIsSpelt", "TestRefusesWithoutData", "TestCheckJSONCorpus", "TestCapabilitiesCompile",
	"TestCheckCorpus", "FuzzCheckJSON", "TestLintFindsProblems",
}
