package hookmodule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/precheck/precheck/policy"
)

// instance is one instantiation of the module, used by one Run at a time.
type instance struct {
	m           *Module
	mod         api.Module
	mem         api.Memory
	alloc, hook api.Function
	stderr      *stderrSummary
	stack       []uint64 // for CallWithStack, which spares the allocation Call makes per call
}

func (in *instance) close(ctx context.Context) {
	if in.mod != nil {
		_ = in.mod.Close(ctx)
	}
}

// run judges doc, naming the hook in any error.
func (in *instance) run(ctx context.Context, doc []byte) (*policy.Decision, error) {
	d, err := in.judge(ctx, doc)
	if err != nil {
		return nil, fmt.Errorf("hook %s: %w", in.m.name, err)
	}
	return d, nil
}

// judge makes one call of the ABI: precheck_alloc, write the document, precheck_hook, read the findings.
func (in *instance) judge(ctx context.Context, doc []byte) (*policy.Decision, error) {
	if len(doc) == 0 || len(doc) > math.MaxInt32 {
		return nil, fmt.Errorf("the document is %d bytes; a hook takes 1 byte to 2 GiB", len(doc))
	}
	callCtx, cancel := context.WithTimeout(ctx, in.m.timeout)
	defer cancel()
	in.stderr.reset()

	in.stack[0] = uint64(len(doc))
	if err := in.alloc.CallWithStack(callCtx, in.stack); err != nil {
		return nil, in.failure(ctx, "precheck_alloc", err)
	}
	ptr := uint32(in.stack[0])
	if ptr == 0 {
		if in.atMemoryLimit() {
			return nil, &failure{fmt.Sprintf("reached its memory limit of %s: precheck_alloc returned 0 for the %d bytes of the document", pages(in.m.memPages), len(doc)), ErrMemoryLimit}
		}
		return nil, &failure{fmt.Sprintf("broke the ABI: precheck_alloc returned 0 for the %d bytes of the document", len(doc)), ErrMalformed}
	}
	if !in.mem.Write(ptr, doc) {
		return nil, &failure{fmt.Sprintf("broke the ABI: precheck_alloc returned %#x, and %d bytes there are outside its memory of %d bytes", ptr, len(doc), in.mem.Size()), ErrMalformed}
	}

	in.stack[0], in.stack[1] = uint64(ptr), uint64(len(doc))
	if err := in.hook.CallWithStack(callCtx, in.stack); err != nil {
		return nil, in.failure(ctx, "precheck_hook", err)
	}
	// The answer stays valid until the next call into the module, and the instance is ours until release:
	// it is parsed in place.
	out, err := in.read(in.stack[0], MaxFindingsBytes)
	if err != nil {
		return nil, err
	}
	return decide(out)
}

// read returns the bytes a packed (address << 32 | length) answer designates, at most limit of them.
func (in *instance) read(packed uint64, limit uint32) ([]byte, error) {
	ptr, n := uint32(packed>>32), uint32(packed)
	switch {
	case n == 0:
		return nil, &failure{"broke the ABI: answered nothing (a length of 0)", ErrMalformed}
	case n > limit:
		return nil, &failure{fmt.Sprintf("answered %d bytes, over the limit of %d", n, limit), ErrMalformed}
	}
	b, ok := in.mem.Read(ptr, n)
	if !ok {
		return nil, &failure{fmt.Sprintf("broke the ABI: answered %d bytes at %#x, outside its memory of %d bytes", n, ptr, in.mem.Size()), ErrMalformed}
	}
	return b, nil
}

// failure is an error of the module's, with a message of its own and the condition it stands for
// (ErrTrapped, ErrMemoryLimit, ...) to match with errors.Is.
type failure struct {
	msg  string
	kind error
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() error { return f.kind }

// failure explains why a call into the module (fn; "" for the instantiation) failed. ctx is the caller's,
// to tell its end from the hook's time limit.
func (in *instance) failure(ctx context.Context, fn string, err error) error {
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	if isExit && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled) {
		if cerr := ctx.Err(); cerr != nil {
			return &failure{"stopped: the caller's context ended: " + cerr.Error(), cerr}
		}
		return &failure{fmt.Sprintf("did not finish within its time limit of %v", in.m.timeout), context.DeadlineExceeded}
	}
	said := in.stderr.summary()
	stderr := ""
	if said != "" {
		stderr = fmt.Sprintf(" (stderr: %q)", said)
	}
	if strings.Contains(said, "out of memory") || in.atMemoryLimit() {
		return &failure{fmt.Sprintf("reached its memory limit of %s%s", pages(in.m.memPages), stderr), ErrMemoryLimit}
	}
	where := " in " + fn
	if fn == "" {
		where = " while being instantiated"
	}
	if isExit {
		return &failure{fmt.Sprintf("exited with code %d%s%s", exit.ExitCode(), where, stderr), ErrTrapped}
	}
	return &failure{fmt.Sprintf("trapped%s: %s%s", where, firstLine(err.Error()), stderr), ErrTrapped}
}

// atMemoryLimit reports whether the instance's memory is at, or within a step of growth of, the limit:
// an allocator that could not grow it any more fails with memory to spare, up to its growth step.
func (in *instance) atMemoryLimit() bool {
	if in.mem == nil {
		return false
	}
	used := uint64(in.mem.Size())
	limit := uint64(in.m.memPages) * 65536
	return used+max(limit/16, 65536) >= limit
}

func pages(n uint32) string {
	return fmt.Sprintf("%d pages (%s)", n, byteSize(uint64(n)*65536))
}

func byteSize(n uint64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// stderrSummary keeps, of what a module writes to stderr during a call, the line that says what went wrong,
// for the message of a failed call: the first line of a Go panic or fatal error ("panic: boom", "fatal
// error: out of memory") when there is one, else the last line written. Go's runtime writes such a line
// piecewise and follows it with kilobytes of stack traces, so lines are assembled as they come, and only
// their first bytes kept.
type stderrSummary struct {
	mu     sync.Mutex
	line   []byte // the line being written, at most lineKept bytes
	last   string // the last non-empty line
	marked string // the first panic or fatal error line
}

const lineKept = 240

func (w *stderrSummary) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		w.line = append(w.line, chunk[:min(len(chunk), lineKept-len(w.line))]...)
		if i < 0 {
			break
		}
		w.endLine()
		p = p[i+1:]
	}
	return n, nil
}

func (w *stderrSummary) endLine() {
	line := strings.TrimSpace(strings.ToValidUTF8(string(w.line), "\uFFFD"))
	w.line = w.line[:0]
	if line == "" {
		return
	}
	w.last = line
	if w.marked == "" && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		w.marked = line
	}
}

func (w *stderrSummary) reset() {
	w.mu.Lock()
	w.line, w.last, w.marked = w.line[:0], "", ""
	w.mu.Unlock()
}

func (w *stderrSummary) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.line) > 0 { // the module died mid-line
		w.endLine()
	}
	if w.marked != "" {
		return w.marked
	}
	return w.last
}
