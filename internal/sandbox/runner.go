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
	// Timeout bounds a render's wall time, each app's in a batch (default
	// DefaultTimeout).
	Timeout time.Duration
	// Memory bounds how much memory a render may map beyond the program's
	// start-up (default DefaultMemory).
	Memory int64
	// CPU bounds a render's CPU time, each app's in a batch (default:
	// Timeout).
	CPU time.Duration
	// MaxOutputBytes bounds the child's answer, each app's in a batch
	// (default DefaultMaxOutputBytes).
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

// AppRender is an app of a batch and the namespace it is rendered for.
type AppRender struct {
	App config.App
	// Namespace overrides render.AppOptions.Namespace for this app.
	Namespace string
}

// AppResult is the outcome of one app of a batch: its render, or why it
// has none.
type AppResult struct {
	Result *render.Result
	Err    error
}

// stderrBytes is how much of the child's stderr is kept to tell why it died.
const stderrBytes = 16 << 10

// App renders app of repo in a child, as render.App does. The app's Git
// source and remote chart are fetched here, with opts.Fetch and
// opts.FetchChart (which hold the allowlist and any credentials); the child
// gets the folders and refuses any other fetch. repo.File must be set: the
// child loads it.
func (r Runner) App(ctx context.Context, repo *config.Repository, app config.App, opts render.AppOptions) (*render.Result, error) {
	res := r.Apps(ctx, repo, []AppRender{{App: app}}, opts)[0]
	return res.Result, res.Err
}

// Apps renders apps of repo as App does, in one child for all of them: it
// renders them in order and answers each as soon as it is done, and the
// time, CPU and output limits apply to each app. A render error is that
// app's; an app stopped by a limit gets the *LimitError and the apps after
// it are rendered in a new child. The results are in the order of apps.
func (r Runner) Apps(ctx context.Context, repo *config.Repository, apps []AppRender, opts render.AppOptions) []AppResult {
	out := make([]AppResult, len(apps))
	if repo.File == "" {
		for i := range out {
			out[i].Err = errNoFile
		}
		return out
	}
	req := &Request{Config: repo.File, Root: opts.Root, Limits: opts.Limits}
	var pending []int
	for i, a := range apps {
		if err := fetch(ctx, req, a.App, opts); err != nil {
			out[i].Err = err
			continue
		}
		pending = append(pending, i)
	}
	for len(pending) > 0 {
		req.Apps = make([]RequestApp, 0, len(pending))
		whats := make([]string, 0, len(pending))
		for _, i := range pending {
			name := apps[i].App.Name
			req.Apps = append(req.Apps, RequestApp{Name: name, Namespace: cmp.Or(apps[i].Namespace, opts.Namespace)})
			whats = append(whats, "app "+name)
		}
		answers, stopped, err := r.run(ctx, req, whats)
		for j, a := range answers {
			out[pending[j]] = AppResult{Err: a.err}
			if a.res != nil {
				out[pending[j]].Result = a.res.Result
			}
		}
		pending = pending[len(answers):]
		if err != nil {
			for _, i := range pending {
				out[i].Err = err
			}
			break
		}
		if len(pending) > 0 {
			out[pending[0]].Err = stopped
			pending = pending[1:]
		}
	}
	return out
}

// Repository renders every app of repo in one child, as render.Repository
// does, fetching every declared source and chart here first.
func (r Runner) Repository(ctx context.Context, repo *config.Repository, opts render.AppOptions) (*render.Result, error) {
	req, err := appRequest(ctx, repo, repo.Apps, opts)
	if err != nil {
		return nil, err
	}
	res, err := r.one(ctx, req, "the apps of "+repo.File)
	if err != nil {
		return nil, err
	}
	return res.Result, nil
}

// Path renders a file or folder in a child, as render.Path does.
func (r Runner) Path(ctx context.Context, path string, opts render.Options) (*render.Result, error) {
	res, err := r.one(ctx, &Request{Path: path, Root: opts.Root, Namespace: opts.Namespace, Helm: opts.Helm, Limits: opts.Limits}, path)
	if err != nil {
		return nil, err
	}
	return res.Result, nil
}

// Run renders req in a child process. A render error comes back with the
// child's message (errors.Is(err, render.ErrUnsafe) holds for a refusal);
// a limit hit is a *LimitError; cancellation of ctx kills the child and
// returns ctx's error. A batch (Request.Apps) is for Apps.
func (r Runner) Run(ctx context.Context, req *Request) (*Result, error) {
	if len(req.Apps) > 0 {
		return nil, errors.New("sandbox request: Run renders one request; render a batch of apps with Apps")
	}
	return r.one(ctx, req, "")
}

// one runs a request that has one answer.
func (r Runner) one(ctx context.Context, req *Request, what string) (*Result, error) {
	answers, stopped, err := r.run(ctx, req, []string{what})
	switch {
	case err != nil:
		return nil, err
	case len(answers) == 0:
		return nil, stopped
	}
	return answers[0].res, answers[0].err
}

var errNoFile = errors.New("the repository has no file for the render process to load")

// appRequest fetches, in this process, the Git sources and remote charts
// that apps declare, and builds the request for the child.
func appRequest(ctx context.Context, repo *config.Repository, apps []config.App, opts render.AppOptions) (*Request, error) {
	if repo.File == "" {
		return nil, errNoFile
	}
	req := &Request{Config: repo.File, Root: opts.Root, Namespace: opts.Namespace, Limits: opts.Limits}
	var errs []error
	for _, app := range apps {
		if err := fetch(ctx, req, app, opts); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return req, nil
}

// fetch fetches, in this process, the Git source and remote chart that app
// declares, and adds them to req.
func fetch(ctx context.Context, req *Request, app config.App, opts render.AppOptions) error {
	if s := app.Source; s != nil && !hasSource(req.Sources, s.Git, s.Ref) {
		if opts.Fetch == nil {
			return fmt.Errorf("app %s has a Git source but no fetcher was given", app.Name)
		}
		dir, err := opts.Fetch(ctx, s.Git, s.Ref)
		if err != nil {
			return fmt.Errorf("app %s: fetching source %s at %s: %w", app.Name, s.Git, s.Ref, err)
		}
		req.Sources = append(req.Sources, Source{URL: s.Git, Ref: s.Ref, Dir: dir})
	}
	if h := app.Helm; h != nil && h.Remote() {
		if opts.FetchChart == nil {
			return fmt.Errorf("app %s: chart %s comes from a chart repository or registry but no chart fetcher was given", app.Name, h.Chart)
		}
		dir, err := opts.FetchChart(ctx, h.Repo, h.Chart, h.Version)
		if err != nil {
			return fmt.Errorf("app %s: fetching chart %s: %w", app.Name, h.Chart, err)
		}
		req.Charts = append(req.Charts, Chart{Repo: h.Repo, Chart: h.Chart, Version: h.Version, Dir: dir})
	}
	return nil
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

// answer is the child's answer for one render.
type answer struct {
	res *Result
	err error
}

// run starts one child for req, trying the strongest network isolation the
// platform allows first, and reads its answers: one per entry of whats,
// which name the renders for messages. When the child stops before it has
// answered them all, stopped says why, for the render it was at. err is for
// what leaves no render done: the child could not start, or ctx ended.
func (r Runner) run(ctx context.Context, req *Request, whats []string) (answers []answer, stopped, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	exe := r.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, nil, fmt.Errorf("find this program to run the render in: %w", err)
		}
	}
	input, err := json.Marshal(req)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the render request: %w", err)
	}
	timeout, lim, maxOut := r.limits()
	lim.apps = len(whats)
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
		err := c.start(ctx, len(whats))
		if next, ok := iso.weaker(err); err != nil && ok {
			iso = next
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("start the render process: %w", err)
		}
		return c.wait(ctx, lim, whats)
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
	stdout *answerWriter
	stderr *headBuffer
}

// start starts the child, which is to give want answers.
func (c *child) start(ctx context.Context, want int) error {
	cmd := exec.CommandContext(ctx, c.exe, c.args...)
	cmd.Env = childEnv()
	cmd.Dir = os.TempDir()
	cmd.Stdin = bytes.NewReader(c.input)
	c.stderr = &headBuffer{max: stderrBytes}
	// cmd.Process is set before the copying goroutines start, and before
	// the first deadline is armed.
	kill := func() { _ = killGroup(cmd.Process.Pid) }
	c.stdout = &answerWriter{max: c.maxOut, want: want, timeout: c.timeout, iso: c.iso, kill: kill}
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	cmd.SysProcAttr = sysProcAttr(c.iso)
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	// A descendant that kept the pipes open does not hold up Wait.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	c.stdout.begin()
	c.cmd = cmd
	if c.started != nil {
		c.started(cmd.Process.Pid)
	}
	return nil
}

// wait waits for the child and returns its answers and, when they are not
// all there, why it ended.
func (c *child) wait(ctx context.Context, lim childLimits, whats []string) ([]answer, error, error) {
	waitErr := c.cmd.Wait()
	got, st := c.stdout.end()
	if len(got) == len(whats) {
		return got, nil, nil
	}
	if ctx.Err() != nil {
		return got, nil, fmt.Errorf("the render was cancelled: %w", context.Cause(ctx))
	}
	return got, c.why(waitErr, st, lim, whats[len(got)]), nil
}

// why says what stopped the child during the render of what.
func (c *child) why(waitErr error, st answerState, lim childLimits, what string) error {
	stderr := c.stderr.String()
	ps := c.cmd.ProcessState
	switch {
	case st.over:
		return &LimitError{Limit: LimitOutput, Bytes: c.maxOut, What: what}
	case st.late:
		return &LimitError{Limit: LimitTime, Duration: c.timeout, What: what}
	case strings.Contains(stderr, cpuMarker):
		return &LimitError{Limit: LimitCPU, Duration: lim.cpu, What: what}
	case isOutOfMemory(stderr):
		return &LimitError{Limit: LimitMemory, Bytes: lim.memory, What: what}
	case strings.Contains(stderr, "goroutine stack exceeds"):
		return &LimitError{Limit: LimitStack, Bytes: min(lim.memory/4, 1<<30), What: what}
	case waitErr != nil && ps != nil && killedBy(ps) && ps.UserTime()+ps.SystemTime() >= st.cpu+lim.cpu:
		// At the hard limit: this render's CPU time came on top of what
		// the renders before it used.
		return &LimitError{Limit: LimitCPU, Duration: lim.cpu, What: what}
	case waitErr != nil && ps != nil && killedBy(ps):
		// Not by us, and not at its CPU limit: the kernel's out-of-memory
		// killer, when the container's memory limit is below the render's.
		return fmt.Errorf("the render of %s was killed by the system, most likely for lack of memory: give the process more memory or lower the render's memory limit", cmp.Or(what, "the request"))
	case waitErr != nil:
		return fmt.Errorf("the render process failed (%v): %s", waitErr, firstLine(stderr))
	}
	return fmt.Errorf("the render process ended without an answer for %s: %s", cmp.Or(what, "the request"), firstLine(stderr))
}

// decode turns one line of the child's answers into an answer.
func decode(line []byte, iso isolation) (answer, time.Duration) {
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return answer{err: fmt.Errorf("the render process gave an unreadable answer: %w", err)}, 0
	}
	if resp.Error != nil {
		return answer{err: &renderError{msg: resp.Error.Message, unsafe: resp.Error.Unsafe}}, resp.CPU
	}
	out := &Result{Result: &render.Result{Warnings: resp.Warnings, Files: resp.Files}, Namespaces: iso.String(), SocketFilter: resp.SocketFilter}
	for i, raw := range resp.Objects {
		obj := map[string]any{}
		if err := utiljson.Unmarshal(raw, &obj); err != nil {
			return answer{err: fmt.Errorf("the render process gave an unreadable object %d: %w", i, err)}, resp.CPU
		}
		out.Objects = append(out.Objects, &unstructured.Unstructured{Object: obj})
	}
	return answer{res: out}, resp.CPU
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

// answerWriter is the child's stdout: it decodes each line as it comes,
// and kills the child when a line is longer than max bytes or when the
// next line does not come within timeout of the last (or of the start).
type answerWriter struct {
	max     int64
	want    int
	timeout time.Duration
	iso     isolation
	kill    func()

	mu    sync.Mutex
	line  bytes.Buffer
	got   []answer
	st    answerState
	timer *time.Timer
	gen   int // counts deadlines; a timer of an older one does nothing
}

// answerState is what the answers tell of how the child ended.
type answerState struct {
	over bool          // a line was longer than max
	late bool          // a line did not come in time
	cpu  time.Duration // the child's CPU time at its last answer
}

func (w *answerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 && !w.st.over && !w.st.late && len(w.got) < w.want {
		chunk, rest, full := bytes.Cut(p, []byte{'\n'})
		if int64(w.line.Len())+int64(len(chunk)) > w.max {
			w.st.over = true
			w.line = bytes.Buffer{}
			w.disarm()
			w.kill()
			break
		}
		w.line.Write(chunk)
		if !full {
			break
		}
		p = rest
		a, cpu := decode(w.line.Bytes(), w.iso)
		w.got, w.st.cpu = append(w.got, a), cpu
		w.line.Reset()
		w.disarm()
		w.arm()
	}
	return n, nil
}

// begin arms the first deadline, unless an answer already did.
func (w *answerWriter) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gen == 0 {
		w.arm()
	}
}

// end stops the deadline and returns the answers.
func (w *answerWriter) end() ([]answer, answerState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.disarm()
	return w.got, w.st
}

// arm starts the deadline of the next answer, if one is to come. w.mu is
// held.
func (w *answerWriter) arm() {
	w.gen++
	if len(w.got) >= w.want {
		return
	}
	gen := w.gen
	w.timer = time.AfterFunc(w.timeout, func() {
		w.mu.Lock()
		late := gen == w.gen && len(w.got) < w.want
		if late {
			w.st.late = true
		}
		w.mu.Unlock()
		if late {
			w.kill()
		}
	})
}

// disarm stops the current deadline. w.mu is held.
func (w *answerWriter) disarm() {
	w.gen++
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
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
