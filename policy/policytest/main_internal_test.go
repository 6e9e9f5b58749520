package policytest

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// Exit exits with the code it is given, with the race detector or without.
func TestExit(t *testing.T) {
	t.Parallel()
	for _, code := range []int{0, 1, 3} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestExitHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "PRECHECK_EXIT_CODE="+strconv.Itoa(code))
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case code == 0 && err != nil:
			t.Errorf("Exit(0): %v", err)
		case code != 0 && (!errors.As(err, &exit) || exit.ExitCode() != code):
			t.Errorf("Exit(%d): %v", code, err)
		}
	}
}

// TestExitHelper is the process TestExit starts; it does nothing otherwise.
func TestExitHelper(t *testing.T) {
	s := os.Getenv("PRECHECK_EXIT_CODE")
	if s == "" {
		t.Skip("run by TestExit")
	}
	code, _ := strconv.Atoi(s)
	Exit(code)
}
