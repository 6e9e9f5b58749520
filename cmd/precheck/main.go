// Command precheck checks a Huawei Cloud GaussDB(DWS) "convert to an encrypted cluster" call against Rego
// policy before it is made. See the README for the verbs; each verb lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/precheck/precheck/policy"
)

// Exit codes are part of the interface.
const (
	exitAllowed = 0 // allowed (warnings printed)
	exitDenied  = 1 // denied
	exitUsage   = 2 // bad usage or unreadable input
	exitPolicy  = 3 // policy or engine error
)

// env is what a verb may touch: its arguments and the process's streams.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// terminal is true when stdout is a terminal a person reads (colour, progress).
	terminal bool
}

type verb struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) int
}

var verbs = map[string]verb{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, terminal: isTerminal(os.Stdout)}
	os.Exit(run(ctx, e, os.Args[1:]))
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitAllowed
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "precheck: unknown command %q\n\n", args[0])
		usage(e.stderr)
		return exitUsage
	}
	return v.run(ctx, e, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "precheck checks a DWS \"convert to an encrypted cluster\" call against policy before it is made.")
	fmt.Fprintln(w, "\nUsage: precheck <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(verbs))
	for name := range verbs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-8s %s\n", name, verbs[name].summary)
	}
	fmt.Fprintln(w, "\nExit codes: 0 allowed, 1 denied, 2 bad usage or input, 3 policy or engine error.")
	fmt.Fprintln(w, "Run precheck <command> -h for a command's flags.")
}

// usageError is a mistake in the command line.
type usageError string

func (e usageError) Error() string { return string(e) }

// exitCode maps an error to the exit code its kind calls for: the command line or the caller's input (2),
// or the policy or engine (3).
func exitCode(err error) int {
	var inErr *policy.InputError
	var useErr usageError
	if errors.As(err, &inErr) || errors.As(err, &useErr) {
		return exitUsage
	}
	return exitPolicy
}

// fail prints err and returns the exit code for it.
func fail(e *env, err error) int {
	fmt.Fprintf(e.stderr, "precheck: %s\n", strings.TrimPrefix(err.Error(), "precheck: "))
	return exitCode(err)
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
