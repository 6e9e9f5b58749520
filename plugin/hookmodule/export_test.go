package hookmodule

// Bounded is bounded, for the fuzz test of package hookmodule_test, which builds its seeds with the
// package's wasm writer.
var Bounded = bounded
