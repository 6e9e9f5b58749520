package opahost

import (
	"testing"
)

func TestDataEnd(t *testing.T) {
	t.Parallel()
	mod := compileWasm(t, map[string]string{"p.rego": `package p
msg := concat("", ["a fairly long constant that lands in a data segment ", input.x])
`}, nil, "p/msg")
	end, err := dataEnd(mod)
	if err != nil {
		t.Fatal(err)
	}
	if end < 64*1024 {
		t.Errorf("data ends at %d; an OPA module's runtime alone takes more than a page", end)
	}
	for _, bad := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x01\x00\x00\x00\x0b\x05\x01\x00\x41"), []byte("\x00asm\x01\x00\x00\x00\x0b\xff\xff\xff\xff\x0f")} {
		if _, err := dataEnd(bad); err == nil {
			t.Errorf("dataEnd(%q) accepted a broken module", bad)
		}
	}
}

// FuzzDataEnd: the segment reader never panics, whatever the bytes.
func FuzzDataEnd(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0b\x07\x01\x00\x41\x10\x0b\x01\x61"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0b\x04\x01\x01\x01\x61"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x01\x00\x0b\x08\x01\x02\x00\x41\x7f\x0b\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		end, err := dataEnd(b)
		if err == nil && end > uint64(1)<<33 {
			t.Fatalf("end %d beyond any wasm32 memory", end)
		}
	})
}
