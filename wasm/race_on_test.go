//go:build race

package wasm_test

// raceDetector says the test binary runs under the race detector, which makes OPA's evaluator some ten
// times slower: the longest tables then decide a fixed sample of their cases (see variantSample).
const raceDetector = true
