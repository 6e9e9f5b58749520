// Command precheck checks a Huawei Cloud GaussDB(DWS) "convert to an encrypted cluster" call against Rego
// policy before it is made. See the README for the verbs; each verb is a cobra command in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/agnivade/levenshtein"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/precheck/precheck/policy"
)

// Exit codes are part of the interface.
const (
	exitAllowed = 0 // allowed (warnings printed)
	exitDenied  = 1 // denied, a failing test, fmt --check, lint, rules --waivers, fleet --fail-on-blocked
	exitUsage   = 2 // bad usage or unreadable input
	exitPolicy  = 3 // policy or engine error
)

// env is what a verb may touch: its arguments, the process's streams and its environment. Tests give each
// run its own, so that runs in parallel share nothing.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// terminal is true when stdout is a terminal a person reads (colour, progress).
	terminal bool
	// getenv reads the environment (NO_COLOR, the SDK's credentials); nil reads nothing.
	getenv func(string) string
	// noColor is the persistent --no-color flag.
	noColor bool
}

// colour says whether text output may be coloured: only for a person at a terminal, and never when they
// asked not to (--no-color, or NO_COLOR set to anything, as https://no-color.org has it).
func (e *env) colour() bool {
	return e.terminal && !e.noColor && e.env("NO_COLOR") == ""
}

func (e *env) env(name string) string {
	if e.getenv == nil {
		return ""
	}
	return e.getenv(name)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, terminal: isTerminal(os.Stdout), getenv: os.Getenv}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// verbs make the commands; each lives in its own file.
var verbs = []func(e *env) *cobra.Command{
	newBuildCmd, newCapabilitiesCmd, newCheckCmd, newFleetCmd, newFmtCmd, newLintCmd, newRulesCmd, newServeCmd,
	newTestCmd, newVersionCmd,
}

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "precheck",
		Short: `precheck checks a DWS "convert to an encrypted cluster" call against policy before it is made`,
		Long: `precheck checks a Huawei Cloud GaussDB(DWS) "convert to an encrypted cluster" call
(POST /v2/{project_id}/clusters/{cluster_id}/encrypt) against Rego policy before it is made, and answers
allow or deny with reasons a person can act on.

Exit codes: 0 allowed, 1 denied (or a failing test, fmt --check, lint, rules --waivers with an expired
waiver, fleet --fail-on-blocked with a blocked cluster), 2 bad usage or unreadable input, 3 policy or
engine error.`,
		// Errors are printed once, as one line, by run; cobra would print them with the whole usage.
		SilenceErrors: true,
		SilenceUsage:  true,
		// Without a verb, the help goes to stderr and the exit code says it was a mistake.
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(e.stderr, cmd.UsageString())
			return silentExit(exitUsage)
		},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.PersistentFlags().BoolVar(&e.noColor, "no-color", false, "never colour the output (NO_COLOR set to anything does the same)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError(err.Error() + suggestFlag(cmd, err))
	})
	for _, v := range verbs {
		root.AddCommand(v(e))
	}
	return root
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, e *env, args []string) int {
	root := newRootCmd(e)
	if args == nil {
		args = []string{} // cobra reads os.Args for nil: the arguments are the caller's, even none
	}
	root.SetArgs(checkBoolValues(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitAllowed
	}
	return report(e, root, cmd, err)
}

// report prints err as one line (a usage error with where to read the verb's help) and returns its code.
func report(e *env, root, cmd *cobra.Command, err error) int {
	var done silentExit
	if errors.As(err, &done) {
		return int(done)
	}
	if cmd == nil {
		cmd = root
	}
	msg := strings.TrimPrefix(err.Error(), "precheck: ")
	// cobra's own mistake for an unknown verb spans lines, with its suggestions below: say it on one.
	if strings.HasPrefix(msg, "unknown command ") && cmd == root {
		name, _, _ := strings.Cut(strings.TrimPrefix(msg, "unknown command "), " for ")
		msg = "unknown command " + name
		if s := root.SuggestionsFor(strings.Trim(name, `"`)); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		err = usageError(msg)
	}
	code := exitCode(err)
	var useErr usageError
	if errors.As(err, &useErr) {
		msg += fmt.Sprintf("; see '%s --help'", cmd.CommandPath())
	}
	fmt.Fprintf(e.stderr, "precheck: %s\n", msg)
	return code
}

// suggestFlag names the flag an unknown one was probably meant to be, as cobra does for verbs.
func suggestFlag(cmd *cobra.Command, err error) string {
	msg := err.Error()
	if !strings.HasPrefix(msg, "unknown flag: --") {
		return ""
	}
	typo := strings.TrimPrefix(msg, "unknown flag: --")
	best, bestDistance := "", 3 // farther than two edits is another word
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if d := levenshtein.ComputeDistance(typo, f.Name); d < bestDistance {
			best, bestDistance = f.Name, d
		}
	})
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean --%s?)", best)
}

// usageError is a mistake in the command line (exit 2).
type usageError string

func (e usageError) Error() string { return string(e) }

// silentExit ends a verb with an exit code whose reason the verb has printed already (a denied call, a
// failing test).
type silentExit int

func (s silentExit) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// engineFailure is an error of the policy or the engine (exit 3), whatever the error it wraps says.
type engineFailure struct{ err error }

func (e engineFailure) Error() string { return e.err.Error() }
func (e engineFailure) Unwrap() error { return e.err }

// exitCode maps an error to the exit code its kind calls for: the command line or the caller's input (2),
// or the policy or engine (3).
func exitCode(err error) int {
	var inErr *policy.InputError
	var useErr usageError
	var done silentExit
	var failure engineFailure
	switch {
	case errors.As(err, &done):
		return int(done)
	case errors.As(err, &failure):
		return exitPolicy
	case errors.As(err, &inErr) || errors.As(err, &useErr):
		return exitUsage
	}
	return exitPolicy
}

// noArgs refuses positional arguments, naming the first, for the verbs that take none.
func noArgs(hint string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError(fmt.Sprintf("unexpected argument %q (%s)", args[0], hint))
		}
		return nil
	}
}

// checkBoolValues lets check's boolean fact flags take their value as the next argument (--encrypted
// false), as their string siblings do (--status AVAILABLE). pflag reads "--encrypted false" as the flag
// (true) and a stray argument "false"; check takes no arguments, so a true or false right after one of
// these flags can only be its value, and is joined to it (--encrypted=false) before cobra parses.
func checkBoolValues(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd.Name() != "check" {
		return args
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if name, ok := strings.CutPrefix(a, "--"); ok && slices.Contains(boolFactFlags(), name) && i+1 < len(args) {
			if v := strings.ToLower(args[i+1]); v == "true" || v == "false" {
				out = append(out, a+"="+v)
				i++
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
