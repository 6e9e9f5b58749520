//go:build wasip1

package main

// The plumbing of the precheck hook module ABI, version 1 (documented in package
// github.com/precheck/precheck/plugin/hookmodule). Copy this file to write another hook in Go: it calls
// judge(document) and answers what judge returns.

import (
	"encoding/json"
	"unsafe"
)

// finding is one violation or warning. Code, Field and Message are required; the host sets the severity
// from the list the finding is in.
type finding struct {
	Code        string `json:"code"`
	Field       string `json:"field"`
	Message     string `json:"message"`
	Expected    string `json:"expected,omitempty"`
	Actual      string `json:"actual,omitempty"`
	Remediation string `json:"remediation,omitempty"`
}

// findings is a hook's answer. Error, when set, says the hook could not judge; precheck then refuses.
type findings struct {
	Violations []finding `json:"violations,omitempty"`
	Warnings   []finding `json:"warnings,omitempty"`
	Status     int       `json:"status,omitempty"` // 4xx; 403 when 0
	Error      string    `json:"error,omitempty"`
}

var (
	input  []byte // the buffer precheck_alloc handed out, until precheck_hook takes it
	answer []byte // the last answer: the host reads it after the call returns, so it must stay reachable
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
	doc := unsafe.Slice((*byte)(ptr), size)
	answer, _ = json.Marshal(judge(doc)) // findings always marshal
	input = nil
	return pack(answer)
}

// pack puts an answer's address in the high 32 bits and its length in the low 32 bits.
func pack(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))<<32 | uint64(len(b))
}

// main is never called: a reactor (go build -buildmode=c-shared) only runs its initialisers, from
// _initialize, and then serves the exports.
func main() {}
