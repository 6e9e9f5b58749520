package opahost

// The glue module. An OPA policy imports its linear memory *and* its host
// functions from the single module "env". A wazero host module can only
// export functions, never a memory, so "env" cannot be the Go host module.
// Instead every pool instance gets its own tiny glue module that
//
//   - imports opa_abort, opa_println and opa_builtin0..4 from the shared Go
//     host module (hostModuleName), and re-exports them unchanged;
//   - defines the instance's memory (min = what the policy asks for,
//     max = the configured cap) and exports it as "memory".
//
// wazero lets a module re-export an import, and a call through such a
// re-export lands directly in the Go function with the *calling policy
// module* as the api.Module argument, which is how the host finds the
// instance (see Policy.instanceOf).
//
// The bytes are assembled by hand because the module is four sections long
// and OPA's wasm encoder is internal to OPA.

// hostModuleName is the name of the shared Go host module inside a Policy's
// runtime. Only the glue imports from it.
const hostModuleName = "opahost"

// Wasm value type and section ids (WebAssembly core spec, binary format).
const (
	wasmI32         = 0x7f
	wasmFuncType    = 0x60
	secType         = 1
	secImport       = 2
	secMemory       = 5
	secExport       = 7
	externFunc      = 0x00
	externMemory    = 0x02
	limitsMinOnly   = 0x00
	limitsMinAndMax = 0x01
)

// hostImport is one function the glue passes through. typeIdx points into the
// type section written by glueModule: type 0 is (i32) -> (), type k (k >= 1)
// is (i32 x (k+1)) -> i32, i.e. opa_builtinN has type N+1: the builtin id,
// the reserved ctx and N argument addresses.
type hostImport struct {
	name    string
	typeIdx byte
}

var hostImports = [...]hostImport{
	{"opa_abort", 0},
	{"opa_println", 0},
	{"opa_builtin0", 1},
	{"opa_builtin1", 2},
	{"opa_builtin2", 3},
	{"opa_builtin3", 4},
	{"opa_builtin4", 5},
}

// glueModule returns the binary glue module whose memory starts at minPages
// and may grow to maxPages (maxPages >= minPages).
func glueModule(minPages, maxPages uint32) []byte {
	var types []byte
	types = appendU32(types, 6)
	types = append(types, wasmFuncType, 1, wasmI32, 0) // type 0: (i32) -> ()
	for params := 2; params <= 6; params++ {           // types 1..5
		types = append(types, wasmFuncType, byte(params))
		for range params {
			types = append(types, wasmI32)
		}
		types = append(types, 1, wasmI32)
	}

	var imports []byte
	imports = appendU32(imports, uint32(len(hostImports)))
	for _, imp := range hostImports {
		imports = appendName(imports, hostModuleName)
		imports = appendName(imports, imp.name)
		imports = append(imports, externFunc, imp.typeIdx)
	}

	var memory []byte
	memory = appendU32(memory, 1)
	memory = append(memory, limitsMinAndMax)
	memory = appendU32(memory, minPages)
	memory = appendU32(memory, maxPages)

	var exports []byte
	exports = appendU32(exports, uint32(1+len(hostImports)))
	exports = appendName(exports, "memory")
	exports = append(exports, externMemory, 0)
	for i, imp := range hostImports {
		// Imported functions occupy the first function indices, in
		// import order, so the i-th import is function i.
		exports = appendName(exports, imp.name)
		exports = append(exports, externFunc)
		exports = appendU32(exports, uint32(i))
	}

	mod := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	mod = appendSection(mod, secType, types)
	mod = appendSection(mod, secImport, imports)
	mod = appendSection(mod, secMemory, memory)
	mod = appendSection(mod, secExport, exports)
	return mod
}

func appendSection(b []byte, id byte, body []byte) []byte {
	b = append(b, id)
	b = appendU32(b, uint32(len(body)))
	return append(b, body...)
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// appendU32 appends v as unsigned LEB128, the encoding of every count,
// index and limit in the binary format.
func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
