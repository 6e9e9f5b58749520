package opahost

import (
	"errors"
	"fmt"
)

// dataEnd returns the end of the highest active data segment of a wasm module: the memory the module's data
// needs before its code runs. An OPA policy module cannot be trusted to say so itself: OPA's compiler sets
// the memory import's minimum before it appends the policy's own constants as data segments, so a module
// whose glue memory starts at that minimum fails to instantiate ("out of bounds memory access").
//
// It reads only what it needs of the binary format (WebAssembly core spec 5.5): the section headers and, in
// the data section, each segment's mode, constant offset and length. wazero has already validated the
// module when this runs, but the reader still checks every length against the bytes it has.
func dataEnd(module []byte) (uint64, error) {
	r := wasmReader{b: module}
	if len(module) < 8 || string(module[:4]) != "\x00asm" {
		return 0, errors.New("not a wasm binary")
	}
	r.i = 8
	for r.i < len(r.b) {
		id := r.byte()
		size := r.u32()
		if r.err != nil || uint64(r.i)+uint64(size) > uint64(len(r.b)) {
			return 0, fmt.Errorf("malformed section header at offset %d", r.i)
		}
		if id != secData {
			r.i += int(size)
			continue
		}
		return r.dataSection(r.i + int(size))
	}
	return 0, nil // no data section
}

const secData = 11

type wasmReader struct {
	b   []byte
	i   int
	err error
}

func (r *wasmReader) byte() byte {
	if r.i >= len(r.b) {
		r.err = errors.New("unexpected end")
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

// u32 reads an unsigned LEB128 number of at most 32 bits.
func (r *wasmReader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.err = errors.New("LEB128 number too long")
	return 0
}

// i32 reads a signed LEB128 number of at most 32 bits.
func (r *wasmReader) i32() int32 {
	var v int64
	shift := 0
	for ; shift < 35; shift += 7 {
		c := r.byte()
		v |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			shift += 7
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return int32(v)
		}
	}
	r.err = errors.New("LEB128 number too long")
	return 0
}

func (r *wasmReader) dataSection(end int) (uint64, error) {
	var highest uint64
	n := r.u32()
	for k := uint32(0); k < n && r.err == nil; k++ {
		mode := r.u32()
		active := mode == 0 || mode == 2
		if mode == 2 {
			r.u32() // memory index
		}
		var offset uint32
		if active {
			// An OPA module's offsets are constants: i32.const <n> end.
			if op := r.byte(); op != 0x41 {
				return 0, fmt.Errorf("data segment %d: offset is not an i32.const (opcode %#x)", k, op)
			}
			offset = uint32(r.i32())
			if op := r.byte(); op != 0x0b {
				return 0, fmt.Errorf("data segment %d: offset expression does not end after i32.const", k)
			}
		} else if mode != 1 {
			return 0, fmt.Errorf("data segment %d: unknown mode %d", k, mode)
		}
		size := r.u32()
		if r.err != nil || r.i+int(size) > end {
			return 0, fmt.Errorf("data segment %d: runs past the data section", k)
		}
		r.i += int(size)
		if active {
			highest = max(highest, uint64(offset)+uint64(size))
		}
	}
	if r.err != nil {
		return 0, fmt.Errorf("data section: %w", r.err)
	}
	return highest, nil
}
