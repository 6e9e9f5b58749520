package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/format"
	"github.com/sergi/go-diff/diffmatchpatch"
	"github.com/spf13/cobra"

	"github.com/precheck/precheck/policy"
)

func newFmtCmd(e *env) *cobra.Command {
	var write, list, diff, check bool
	cmd := &cobra.Command{
		Use:   "fmt [flags] [PATH...]",
		Short: "Format Rego with OPA's formatter, as opa fmt does",
		Long: `Format Rego with OPA's formatter, as opa fmt does: each file (or every .rego file under a
directory) is printed formatted on stdout. -w writes the formatted files back instead, -l lists the
files whose formatting differs, -d prints a diff of what formatting would change. --check is for CI: it
lists the files that are not formatted, changes nothing, and exits 1 if there are any.

With no PATH, or the PATH -, the Rego is read from stdin.

Exit codes: 0 done (with --check: all formatted), 1 with --check: a file is not formatted, 2 bad usage
or an unreadable file, 3 a file that is not Rego OPA can parse.`,
		Example: `  precheck fmt --check rego examples/policies
  precheck fmt -w my-overrides
  precheck fmt -d rego/versions.rego
  cat rule.rego | precheck fmt`,
		RunE: func(_ *cobra.Command, args []string) error {
			if check && (write || list || diff) {
				return usageError("--check lists the unformatted files and changes nothing: give it without -w, -l or -d")
			}
			if len(args) == 0 {
				if f, ok := e.stdin.(*os.File); ok && isTerminal(f) {
					return usageError("name the files or directories to format, or pipe Rego on stdin")
				}
				args = []string{"-"}
			}
			files, err := regoFiles(args)
			if err != nil {
				return err
			}
			var unformatted, problems []string
			for _, file := range files {
				src, err := readRego(e, file)
				if err != nil {
					return err
				}
				name := file
				if file == "-" {
					name = "stdin"
				}
				out, err := format.Source(name, src)
				if err != nil {
					problems = append(problems, policy.NewPolicyError(name, err).Problems...)
					continue
				}
				changed := !bytes.Equal(src, out)
				if changed {
					unformatted = append(unformatted, file)
				}
				switch {
				case check:
				case list || diff || write:
					if changed && list {
						fmt.Fprintln(e.stdout, file)
					}
					if changed && diff {
						writeDiff(e.stdout, name, src, out)
					}
					if changed && write {
						if file == "-" {
							return usageError("-w writes files: stdin has none to write (leave -w out to print the result)")
						}
						if err := writeFileAtomic(file, out); err != nil {
							return err
						}
					}
				default:
					if _, err := e.stdout.Write(out); err != nil {
						return err
					}
				}
			}
			if len(problems) > 0 {
				return &policy.PolicyError{Source: strings.Join(args, " "), Problems: problems}
			}
			if check && len(unformatted) > 0 {
				for _, file := range unformatted {
					fmt.Fprintln(e.stdout, file)
				}
				fmt.Fprintf(e.stderr, "precheck: %d file(s) not formatted; run precheck fmt -w on them\n", len(unformatted))
				return silentExit(exitDenied)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&write, "write", "w", false, "write the formatted Rego back to each file instead of printing it")
	cmd.Flags().BoolVarP(&list, "list", "l", false, "list the files whose formatting differs instead of printing them")
	cmd.Flags().BoolVarP(&diff, "diff", "d", false, "print a diff of what formatting would change instead of the files")
	cmd.Flags().BoolVar(&check, "check", false, "list the files that are not formatted and exit 1 if any; change nothing (for CI)")
	return cmd
}

func readRego(e *env, file string) ([]byte, error) {
	if file == "-" {
		data, err := io.ReadAll(e.stdin)
		if err != nil {
			return nil, &policy.InputError{Msg: "reading stdin: " + err.Error()}
		}
		return data, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &policy.InputError{Msg: err.Error()}
	}
	return data, nil
}

// regoFiles lists the .rego files under the paths, in order; "-" stands for stdin.
func regoFiles(paths []string) ([]string, error) {
	var files []string
	for _, root := range paths {
		if root == "-" {
			files = append(files, root)
			continue
		}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// A file named on the command line is formatted whatever its name; in a directory, .rego files.
			if !d.IsDir() && (path == root || strings.HasSuffix(path, ".rego")) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, usageError(err.Error())
		}
	}
	if len(files) == 0 {
		return nil, usageError(fmt.Sprintf("no .rego files under %s", strings.Join(paths, ", ")))
	}
	return files, nil
}

// diffContext is how many unchanged lines a diff shows around a change, as diff -u does.
const diffContext = 3

// writeDiff writes a unified diff of a file's formatting: the lines diffmatchpatch finds changed, with
// their context, under the @@ headers patch(1) reads.
func writeDiff(w io.Writer, name string, before, after []byte) {
	dmp := diffmatchpatch.New()
	a, b, lines := dmp.DiffLinesToChars(string(before), string(after))
	diffs := dmp.DiffCharsToLines(dmp.DiffMain(a, b, false), lines)
	type line struct {
		op   diffmatchpatch.Operation
		text string
	}
	var all []line
	for _, d := range diffs {
		for _, l := range strings.SplitAfter(d.Text, "\n") {
			if l != "" {
				all = append(all, line{d.Type, l})
			}
		}
	}
	fmt.Fprintf(w, "--- %s\n+++ %s (formatted)\n", name, name)
	for i := 0; i < len(all); {
		if all[i].op == diffmatchpatch.DiffEqual {
			i++
			continue
		}
		// A hunk: from diffContext lines before this change to diffContext lines after the last change
		// that is nearer than twice that to the next.
		start := max(0, i-diffContext)
		end := i
		for j := i; j < len(all); j++ {
			if all[j].op != diffmatchpatch.DiffEqual {
				end = j
			} else if j-end > 2*diffContext {
				break
			}
		}
		end = min(len(all), end+diffContext+1)
		oldStart, newStart := 1, 1
		for _, l := range all[:start] {
			if l.op != diffmatchpatch.DiffInsert {
				oldStart++
			}
			if l.op != diffmatchpatch.DiffDelete {
				newStart++
			}
		}
		var oldN, newN int
		var body strings.Builder
		for _, l := range all[start:end] {
			prefix := " "
			switch l.op {
			case diffmatchpatch.DiffDelete:
				prefix = "-"
				oldN++
			case diffmatchpatch.DiffInsert:
				prefix = "+"
				newN++
			default:
				oldN++
				newN++
			}
			body.WriteString(prefix + l.text)
			if !strings.HasSuffix(l.text, "\n") {
				body.WriteString("\n\\ No newline at end of file\n")
			}
		}
		fmt.Fprintf(w, "@@ -%d,%d +%d,%d @@\n%s", oldStart, oldN, newStart, newN, body.String())
		i = end
	}
}
