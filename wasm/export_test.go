package wasm

import "github.com/precheck/precheck/policy/policytest"

// WithoutRace are the tests of the package (internal and external: one binary) that compile or decide on
// one goroutine, thousands of documents or many builds: under the race detector they took the better part
// of a minute, so they run in a binary built without it.
var WithoutRace = policytest.WithoutRace{
	"TestDecisionsAsBefore", "TestDifferentialCorpus", "TestDifferentialWithLevelsAndWaivers",
	"TestModuleResultIsTheDecision", "TestModuleWithoutDataRefuses", "FuzzDifferential", "FuzzDifferentialFields",
	"TestBundleReadByOPA", "TestSignedBundleReadByOPA", "TestBuildIsReproducible",
	"TestCacheSkipsTheCompilerWhenWarm", "TestCacheRebuildsACorruptEntry",
}

// DefaultCompiled is the default policy compiled by Compile, once per test binary, for the external tests
// too (see bundle_test.go).
var DefaultCompiled = defaultCompiled

// The tests' backends keep wazero's machine code across test binaries and runs (see
// policytest.MachineCodeDir): compiling the policy modules under the race detector is most of the package's
// time otherwise. The cache's own tests use caches of their own.
func init() { machineCode = policytest.MachineCode() }
