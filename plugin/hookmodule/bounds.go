package hookmodule

import (
	"encoding/binary"
	"fmt"
)

// What a hook module may declare beyond its memory. wazero's memory limit bounds linear memory only, and a
// module's tables and its functions' locals cost the host memory too: a table entry 8 bytes on every
// instance (a table without a maximum grows, by table.grow, up to 2^32 entries: 32 GiB), a declared local
// about 20 bytes while the module compiles, whether or not the function is ever called. A few hundred
// bytes of module could otherwise exhaust the host. A Go hook has one table of a few thousand entries and
// functions of at most a few dozen locals.
const (
	// MaxModuleBytes bounds a hook module's size.
	MaxModuleBytes = 64 << 20
	// MaxTableEntries bounds the entries of a module's tables, all together, at their maximum size.
	MaxTableEntries = 1 << 20
	// MaxFunctionLocals bounds the locals one function declares, and MaxModuleLocals those of all of them.
	MaxFunctionLocals = 1 << 16
	MaxModuleLocals   = 1 << 22
)

// Sections of the WebAssembly binary format that bounded reads.
const (
	sectionCustom    = 0
	sectionTable     = 4
	sectionStart     = 8
	sectionCode      = 10
	sectionDataCount = 12
	lastSection      = sectionDataCount
)

// bounded returns module with every table's maximum made explicit (a table declared without one keeps the
// size it starts with), or an error saying what is over the bounds above. It reads only the section
// framing, the table section and the locals of the code section; what it cannot read is refused here, so
// that the module wazero compiles is never one whose tables or locals went unread. Everything else is left
// to wazero's own validation.
func bounded(module []byte) ([]byte, error) {
	if len(module) > MaxModuleBytes {
		return nil, fmt.Errorf("the module is %d bytes, over the limit of %d bytes", len(module), MaxModuleBytes)
	}
	if len(module) < 8 || string(module[:8]) != "\x00asm\x01\x00\x00\x00" {
		return module, nil // not WebAssembly 1.0: wazero refuses it, and says why
	}
	out := module
	r := reader{b: module, at: 8}
	seen := map[byte]bool{}
	for r.at < len(r.b) {
		start := r.at
		id := r.b[r.at]
		r.at++
		if id != sectionCustom && seen[id] { // the format allows each once; a second must not go unread
			return nil, fmt.Errorf("at byte %d: a second section %d", start, id)
		}
		seen[id] = true
		size := r.u32("a section's size")
		if r.err == nil && uint64(size) > uint64(len(r.b)-r.at) {
			r.fail("a section runs past the end of the module")
		}
		if r.err != nil {
			return nil, r.err
		}
		body := reader{b: r.b[r.at : r.at+int(size)], base: r.at}
		r.at += int(size)
		if id != sectionCustom && id != sectionStart && id != sectionDataCount && id <= lastSection {
			// Every other section is a vector whose items take a byte at least: wazero allocates for the
			// count it claims before it reads any item (a 200-byte module claiming 136 million exports
			// takes it seconds and gigabytes to refuse).
			count := body
			if n := count.u32("a section's number of items"); count.err == nil && uint64(n) > uint64(len(body.b)) {
				return nil, fmt.Errorf("at byte %d: section %d claims %d items in %d bytes", start, id, n, len(body.b))
			}
		}
		switch {
		case id > lastSection:
			return nil, fmt.Errorf("at byte %d: unknown section %d", start, id)
		case id == sectionTable:
			tables, err := boundTables(&body)
			if err != nil {
				return nil, err
			}
			out = append(append(append(append([]byte{}, module[:start]...), sectionTable), binary.AppendUvarint(nil, uint64(len(tables)))...), tables...)
			out = append(out, module[r.at:]...)
		case id == sectionCode:
			if err := boundLocals(&body); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// boundTables reads the table section and returns it with each table's maximum explicit.
func boundTables(r *reader) ([]byte, error) {
	n := r.u32("the number of tables")
	out := binary.AppendUvarint(nil, uint64(n))
	var entries uint64
	for i := uint32(0); i < n && r.err == nil; i++ {
		refType := r.u8("a table's type")
		flags := r.u8("a table's limits")
		minimum := r.u32("a table's minimum size")
		maximum := minimum
		switch {
		case flags == 1:
			maximum = r.u32("a table's maximum size")
		case flags != 0:
			r.fail(fmt.Sprintf("table %d has limits of kind %#x", i, flags))
		}
		if entries += uint64(maximum); r.err == nil && entries > MaxTableEntries {
			return nil, fmt.Errorf("its tables hold up to %d entries, over the limit of %d", entries, MaxTableEntries)
		}
		out = append(out, refType, 1)
		out = binary.AppendUvarint(binary.AppendUvarint(out, uint64(minimum)), uint64(maximum))
	}
	if r.err == nil && r.at != len(r.b) {
		r.fail("the table section has bytes after its tables")
	}
	return out, r.err
}

// boundLocals reads the locals every function of the code section declares.
func boundLocals(r *reader) error {
	n := r.u32("the number of function bodies")
	var total uint64
	for i := uint32(0); i < n && r.err == nil; i++ {
		size := r.u32("a function body's size")
		if r.err == nil && uint64(size) > uint64(len(r.b)-r.at) {
			r.fail("a function body runs past the end of its section")
		}
		if r.err != nil {
			break
		}
		body := reader{b: r.b[r.at : r.at+int(size)], base: r.base + r.at}
		r.at += int(size)
		var locals uint64
		groups := body.u32("a function's groups of locals")
		for g := uint32(0); g < groups && body.err == nil; g++ {
			locals += uint64(body.u32("a group's number of locals"))
			body.u8("a group's type")
			if locals > MaxFunctionLocals {
				return fmt.Errorf("function body %d declares %d or more locals, over the limit of %d", i, locals, MaxFunctionLocals)
			}
		}
		if body.err != nil {
			return body.err
		}
		if total += locals; total > MaxModuleLocals {
			return fmt.Errorf("its functions declare %d or more locals, over the limit of %d", total, MaxModuleLocals)
		}
	}
	return r.err
}

// reader reads the WebAssembly binary format; the first error sticks, naming the byte it happened at.
type reader struct {
	b    []byte
	at   int
	base int // where b starts in the module, for errors
	err  error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("at byte %d: %s", r.base+r.at, what)
	}
}

func (r *reader) u8(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.at >= len(r.b) {
		r.fail(what + " is missing")
		return 0
	}
	r.at++
	return r.b[r.at-1]
}

// u32 reads an unsigned LEB128 of at most 5 bytes, as the format encodes a u32.
func (r *reader) u32(what string) uint32 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.at:])
	if n <= 0 || n > 5 || v > 1<<32-1 {
		r.fail(what + " is not a u32")
		return 0
	}
	r.at += n
	return uint32(v)
}
