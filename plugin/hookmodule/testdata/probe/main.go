// Command probe is a hook module for the tests of package hookmodule. The input document's request.body.probe
// chooses what it does; see judge.
package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

const name = "probe"

var (
	input  []byte
	answer []byte
	hoard  [][]byte // what "hog" keeps, so that the collector cannot free it
	calls  int      // calls served by this instance
)

//go:wasmexport precheck_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport precheck_hook_name
func hookName() uint64 {
	answer = []byte(name)
	return pack(answer)
}

//go:wasmexport precheck_alloc
func alloc(size int32) unsafe.Pointer {
	if size <= 0 {
		return nil
	}
	answer = nil
	input = make([]byte, size)
	return unsafe.Pointer(&input[0])
}

//go:wasmexport precheck_hook
func hook(ptr unsafe.Pointer, size int32) uint64 {
	answer = judge(unsafe.Slice((*byte)(ptr), size))
	input = nil
	return pack(answer)
}

func pack(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))<<32 | uint64(len(b))
}

func main() {}

type document struct {
	Request struct {
		Body struct {
			Probe string `json:"probe"`
			Code  string `json:"code"` // for "deny"
		} `json:"body"`
	} `json:"request"`
}

type finding struct {
	Code    string `json:"code"`
	Field   string `json:"field"`
	Message string `json:"message"`
	Actual  string `json:"actual,omitempty"`
}

type findings struct {
	Violations []finding `json:"violations,omitempty"`
	Warnings   []finding `json:"warnings,omitempty"`
	Error      string    `json:"error,omitempty"`
}

func marshal(f findings) []byte {
	b, _ := json.Marshal(f)
	return b
}

func report(code, msg string) []byte {
	return marshal(findings{Warnings: []finding{{Code: code, Field: "probe", Message: msg}}})
}

func judge(doc []byte) []byte {
	calls++
	var d document
	if err := json.Unmarshal(doc, &d); err != nil {
		return marshal(findings{Error: "probe: " + err.Error()})
	}
	switch d.Request.Body.Probe {
	case "", "allow":
		return []byte(`{}`)
	case "deny": // one violation, with the code asked for (PROBE-DENY by default), and a warning
		code := d.Request.Body.Code
		if code == "" {
			code = "PROBE-DENY"
		}
		return marshal(findings{
			Violations: []finding{{Code: code, Field: "probe", Message: "denied as asked"}},
			Warnings:   []finding{{Code: "PROBE-CALLS", Field: "probe", Message: "calls served", Actual: strconv.Itoa(calls)}},
		})
	case "badcode":
		return []byte(`{"violations": [{"code": "DWS.0047", "field": "probe", "message": "posing as the API"}]}`)
	case "garbage":
		return []byte("this is not JSON")
	case "error":
		return marshal(findings{Error: "probe: cannot judge, as asked"})
	case "loop":
		for {
			calls++
		}
	case "hog":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	case "trap":
		panic("probe: trap requested")
	case "exit":
		os.Exit(0)
	case "readfile":
		b, err := os.ReadFile("/etc/passwd")
		if err != nil {
			return report("PROBE-READFILE", "error: "+err.Error())
		}
		return report("PROBE-READFILE", "read: "+string(b))
	case "readdir":
		entries, err := os.ReadDir("/")
		if err != nil {
			return report("PROBE-READDIR", "error: "+err.Error())
		}
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
		}
		return report("PROBE-READDIR", "read: "+strings.Join(names, ","))
	case "readenv":
		home, ok := os.LookupEnv("HOME")
		return report("PROBE-READENV", "HOME="+strconv.Quote(home)+" set="+strconv.FormatBool(ok)+
			" environ="+strconv.Itoa(len(os.Environ()))+" args="+strconv.Itoa(len(os.Args)))
	case "clock":
		return report("PROBE-CLOCK", time.Now().UTC().Format(time.RFC3339Nano))
	case "sleep":
		start := time.Now()
		time.Sleep(5 * time.Second)
		return report("PROBE-SLEEP", time.Since(start).String())
	}
	return marshal(findings{Error: "probe: unknown probe " + strconv.Quote(d.Request.Body.Probe)})
}
