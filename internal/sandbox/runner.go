package sandbox

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// Runner runs renders in child processes. The zero value is ready to use
// with the defaults; a Runner holds no state, so one can serve many renders
// at once.
type Runner struct {
	// Executable is the program re-executed as the child (default: this
	// program, os.Executable).
	Executable string
	// Timeout bounds a render's wall time (default DefaultTimeout).
	Timeout time.Duration
	// Memory bounds how much memory a render may map beyond the program's
	// start-up (default DefaultMemory).
	Memory int64
	// CPU bounds a render's CPU time (default: Timeout).
	CPU time.Duration
	// MaxOutputBytes bounds the child's answer (default
	// DefaultMaxOutputBytes).
	MaxOutputBytes int64
	// Started, when set, is called with the child's process id once it runs.
	Started func(pid int)

	// command replaces Command as the child's first argument, and
	// noNamespaces starts the child without new namespaces (tests).
	command      string
	noNamespaces bool
}

// Result is what a sandboxed render produced.
type Result struct {
	*render.Result
	// Namespaces names the new namespaces that cut the child off from the
	// network besides the in-process refusal: "network" (an empty one),
	// "user and network", or "" where the platform allowed neither.
	Namespaces string
	// SocketFilter is set when the child's seccomp filter refused every
	// socket but AF_UNIX.
	SocketFilter bool
}

// stderrBytes is how much of the child's stderr is kept to tell why it died.
const stderrBytes = 16 << 10

// App renders app of repo in a child, as render.App does. The app's Git
// source and remote chart are fetched here, with opts.Fetch and
// opts.FetchChart (which hold the allowlist and any credentials); the child
// gets the folders and refuses any other fetch. repo.File must be set: the
// child loads it.
func (r Runner) App(ctx context.Context, repo *config.Repository, app config.App, opts render.AppOptions) (*render.Result, error) {
	req, err := appRequest(ctx, repo, []config.App{app}, opts)
	if err != nil {
		return nil, err
	}
	req.App = app.Name
	res, err := r.run(ctx, req, "app "+app.Name)
	if err != nil {
		return nil, err
	}
	return res.Result, nil
}

// Repository renders every app of repo in one child, as render.Repository
// does, fetching every declared source and chart here first.
func (r Runner) Repository(ctx context.Context, repo *config.Repository, opts render.AppOptions) (*render.Result, error) {
	req, err := appRequest(ctx, repo, repo.Apps, opts)
	if err != nil {
		return nil, err
	}
	res, err := r.run(ctx, req, "the apps of "+repo.File)
	if err != nil {
		return nil, err
	}
	return res.Result, nil
}

// Path renders a file or folder in a child, as render.Path does.
func (r Runner) Path(ctx context.Context, path string, opts render.Options) (*render.Result, error) {
	res, err := r.run(ctx, &Request{Path: path, Root: opts.Root, Namespace: opts.Namespace, Helm: opts.Helm, Limits: opts.Limits}, path)
	if err != nil {
		return nil, err
	}
	return res.Result, nil
}

// Run renders req in a child process. A render error comes back with the
// child's message (errors.Is(err, render.ErrUnsafe) holds for a refusal);
// a limit hit is a *LimitError; cancellation of ctx kills the child and
// returns ctx's error.
func (r Runner) Run(ctx context.Context, req *Request) (*Result, error) {
	return r.run(ctx, req, "")
}

// appRequest fetches, in this process, the Git sources and remote charts
// that apps declare, and builds the request for the child.
func appRequest(ctx context.Context, repo *config.Repository, apps []config.App, opts render.AppOptions) (*Request, error) {
	if repo.File == "" {
		return nil, errors.New("the repository has no file for the render process to load")
	}
	req := &Request{Config: repo.File, Root: opts.Root, Namespace: opts.Namespace, Limits: opts.Limits}
	var errs []error
	for _, app := range apps {
		if s := app.Source; s != nil && !hasSource(req.Sources, s.Git, s.Ref) {
			if opts.Fetch == nil {
				errs = append(errs, fmt.Errorf("app %s has a Git source but no fetcher was given", app.Name))
				continue
			}
			dir, err := opts.Fetch(ctx, s.Git, s.Ref)
			if err != nil {
				errs = append(errs, fmt.Errorf("app %s: fetching source %s at %s: %w", app.Name, s.Git, s.Ref, err))
				continue
			}
			req.Sources = append(req.Sources, Source{URL: s.Git, Ref: s.Ref, Dir: dir})
		}
		if h := app.Helm; h != nil && h.Remote() {
			if opts.FetchChart == nil {
				errs = append(errs, fmt.Errorf("app %s: chart %s comes from a chart repository or registry but no chart fetcher was given", app.Name, h.Chart))
				continue
			}
			dir, err := opts.FetchChart(ctx, h.Repo, h.Chart, h.Version)
			if err != nil {
				errs = append(errs, fmt.Errorf("app %s: fetching chart %s: %w", app.Name, h.Chart, err))
				continue
			}
			req.Charts = append(req.Charts, Chart{Repo: h.Repo, Chart: h.Chart, Version: h.Version, Dir: dir})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return req, nil
}

func hasSource(sources []Source, url, ref string) bool {
	for _, s := range sources {
		if s.URL == url && s.Ref == ref {
			return true
		}
	}
	return false
}

func (r Runner) limits() (timeout time.Duration, lim childLimits, maxOut int64) {
	timeout, lim.memory, lim.cpu, maxOut = r.Timeout, r.Memory, r.CPU, r.MaxOutputBytes
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if lim.memory <= 0 {
		lim.memory = DefaultMemory
	}
	if lim.cpu <= 0 {
		lim.cpu = timeout
	}
	if maxOut <= 0 {
		maxOut = DefaultMaxOutputBytes
	}
	return timeout, lim, maxOut
}

// run starts the child, trying the strongest network isolation the
// platform allows first, and turns its end into a Result or an error.
func (r Runner) run(ctx context.Context, req *Request, what string) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	exe := r.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find this program to run the render in: %w", err)
		}
	}
	input, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode the render request: %w", err)
	}
	timeout, lim, maxOut := r.limits()
	command := r.command
	if command == "" {
		command = Command
	}

	iso := firstIsolation()
	if r.noNamespaces {
		iso = isolateNone
	}
	for {
		c := &child{exe: exe, args: append([]string{command}, lim.args()...), input: input, iso: iso, timeout: timeout, maxOut: maxOut, started: r.Started}
		err := c.start(ctx)
		if next, ok := iso.weaker(err); err != nil && ok {
			iso = next
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("start the render process: %w", err)
		}
		return c.wait(ctx, lim, what)
	}
}

// child is one run of the render process.
type child struct {
	exe     string
	args    []string
	input   []byte
	iso     isolation
	timeout time.Duration
	maxOut  int64
	started func(int)

	cmd    *exec.Cmd
	stop   context.CancelFunc
	timer  context.Context
	stdout *boundedBuffer
	stderr *headBuffer
}

func (c *child) start(ctx context.Context) error {
	timer, stop := context.WithTimeout(ctx, c.timeout)
	cmd := exec.CommandContext(timer, c.exe, c.args...)
	cmd.Env = childEnv()
	cmd.Dir = os.TempDir()
	cmd.Stdin = bytes.NewReader(c.input)
	c.stderr = &headBuffer{max: stderrBytes}
	c.stdout = &boundedBuffer{max: c.maxOut, overflow: func() {
		// cmd.Process is set before the copying goroutines start.
		_ = killGroup(cmd.Process.Pid)
	}}
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	cmd.SysProcAttr = sysProcAttr(c.iso)
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	// A descendant that kept the pipes open does not hold up Wait.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		stop()
		return err
	}
	c.cmd, c.stop, c.timer = cmd, stop, timer
	if c.started != nil {
		c.started(cmd.Process.Pid)
	}
	return nil
}

// wait waits for the child and says why it ended.
func (c *child) wait(ctx context.Context, lim childLimits, what string) (*Result, error) {
	defer c.stop()
	waitErr := c.cmd.Wait()
	stderr := c.stderr.String()
	switch {
	case c.stdout.overflowed():
		return nil, &LimitError{Limit: LimitOutput, Bytes: c.maxOut, What: what}
	case ctx.Err() != nil:
		return nil, fmt.Errorf("the render was cancelled: %w", context.Cause(ctx))
	case errors.Is(c.timer.Err(), context.DeadlineExceeded):
		return nil, &LimitError{Limit: LimitTime, Duration: c.timeout, What: what}
	case strings.Contains(stderr, cpuMarker):
		return nil, &LimitError{Limit: LimitCPU, Duration: lim.cpu, What: what}
	case isOutOfMemory(stderr):
		return nil, &LimitError{Limit: LimitMemory, Bytes: lim.memory, What: what}
	case strings.Contains(stderr, "goroutine stack exceeds"):
		return nil, &LimitError{Limit: LimitStack, Bytes: min(lim.memory/4, 1<<30), What: what}
	case waitErr != nil && c.cmd.ProcessState != nil && killedBy(c.cmd.ProcessState) &&
		c.cmd.ProcessState.UserTime()+c.cmd.ProcessState.SystemTime() >= lim.cpu:
		return nil, &LimitError{Limit: LimitCPU, Duration: lim.cpu, What: what}
	case waitErr != nil && c.cmd.ProcessState != nil && killedBy(c.cmd.ProcessState):
		// Not by us, and not at its CPU limit: the kernel's out-of-memory
		// killer, when the container's memory limit is below the render's.
		return nil, fmt.Errorf("the render of %s was killed by the system, most likely for lack of memory: give the process more memory or lower the render's memory limit", cmp.Or(what, "the request"))
	case waitErr != nil:
		return nil, fmt.Errorf("the render process failed (%v): %s", waitErr, firstLine(stderr))
	}
	var resp Response
	if err := json.Unmarshal(c.stdout.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("the render process gave an unreadable answer: %w", err)
	}
	if resp.Error != nil {
		return nil, &renderError{msg: resp.Error.Message, unsafe: resp.Error.Unsafe}
	}
	out := &Result{Result: &render.Result{Warnings: resp.Warnings, Files: resp.Files}, Namespaces: c.iso.String(), SocketFilter: resp.SocketFilter}
	for i, raw := range resp.Objects {
		obj := map[string]any{}
		if err := utiljson.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("the render process gave an unreadable object %d: %w", i, err)
		}
		out.Objects = append(out.Objects, &unstructured.Unstructured{Object: obj})
	}
	return out, nil
}

// isOutOfMemory reports whether a Go child's stderr shows that it ran out
// of address space.
func isOutOfMemory(stderr string) bool {
	for _, s := range []string{"out of memory", "cannot allocate memory", "cannot map pages", "failed to create new OS thread"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// firstLine is the first non-empty line of s, shortened, for messages.
func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			if len(line) > 200 {
				line = line[:200] + "…"
			}
			return strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return '?'
				}
				return r
			}, line)
		}
	}
	return "no message"
}

// childEnv is the child's whole environment: no tokens, kubeconfig, proxy
// or cloud settings reach it.
func childEnv() []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "GOTRACEBACK=single", "TZ=UTC"}
	for _, name := range []string{"HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// boundedBuffer keeps up to max bytes; past that it calls overflow once
// and discards the rest.
type boundedBuffer struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	max      int64
	over     bool
	overflow func()
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over {
		return len(p), nil
	}
	if int64(b.buf.Len())+int64(len(p)) > b.max {
		b.over = true
		b.buf.Reset()
		b.overflow()
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *boundedBuffer) overflowed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.over
}

func (b *boundedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Bytes()
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
