package policytest

import (
	"os"
	"syscall"
	"testing"
)

// Main runs m's tests and exits with their code, as a package's TestMain does:
//
//	func TestMain(m *testing.M) { policytest.Main(m) }
//
// It differs in one thing. In a binary built with the race detector, a run that passed exits at once,
// without the detector's wait at exit (a second, GORACE's atexit_sleep_ms), which is there for goroutines
// still running to report a race. In a test binary there are none worth the wait: the testing package
// fails a test during which the detector reported a race, so the run has not passed, and waits as before.
// Every package of the suite waiting a second of its run for nothing was a tenth of `go test -race ./...`
// on two cores. Where GORACE is set, the detector's settings stand.
func Main(m *testing.M) { Exit(m.Run()) }

// Exit is Main's exit, for a TestMain that does more than run the tests.
func Exit(code int) {
	if raceDetector && code == 0 && os.Getenv("GORACE") == "" {
		syscall.Exit(0) // os.Exit would call the detector's finaliser, which waits
	}
	os.Exit(code)
}
