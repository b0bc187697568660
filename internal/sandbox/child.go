package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// Exit codes of the child other than 0 (answered, even with an error).
const (
	exitSetup = 3 // the child could not set its limits or read its request
	exitCPU   = 4 // the child went over its CPU time (SIGXCPU)
)

// cpuMarker is what the child writes to stderr before it exits on SIGXCPU.
const cpuMarker = "gitops-render: over the CPU time limit"

// maxRequestBytes bounds the request the child reads.
const maxRequestBytes = 16 << 20

// childLimits are the limits the child sets on itself, passed as arguments
// so they are in force before it reads its request.
type childLimits struct {
	memory  int64         // bytes of address space beyond the start-up's
	cpu     time.Duration // CPU time of each render
	apps    int           // renders in the request: the CPU hard limit covers them all
	maxFile int64         // largest file the child may write
	maxOpen uint64        // open files
}

const (
	childMaxFileBytes = 1 << 20
	childMaxOpenFiles = 256
)

func (l childLimits) args() []string {
	return []string{
		fmt.Sprintf("-memory=%d", l.memory),
		fmt.Sprintf("-cpu=%s", l.cpu),
		fmt.Sprintf("-apps=%d", l.apps),
	}
}

func parseChildLimits(args []string) (childLimits, error) {
	l := childLimits{maxFile: childMaxFileBytes, maxOpen: childMaxOpenFiles}
	fs := flag.NewFlagSet(Command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int64Var(&l.memory, "memory", DefaultMemory, "")
	fs.DurationVar(&l.cpu, "cpu", DefaultTimeout, "")
	fs.IntVar(&l.apps, "apps", 1, "")
	if err := fs.Parse(args); err != nil {
		return l, err
	}
	if l.memory <= 0 || l.cpu <= 0 || l.apps <= 0 {
		return l, errors.New("memory, cpu and apps must be positive")
	}
	return l, nil
}

// Main is the render child: it sets its limits, refuses the network, reads
// a Request on stdin, renders it and writes a Response on stdout; for a
// batch, one Response line per app as each is done. It returns
// the process exit code. Call it only when os.Args[1] is Command.
func Main() int {
	return serve(os.Args[2:], renderRequest)
}

// renderFunc renders a request in the child.
type renderFunc func(ctx context.Context, req *Request) (*render.Result, error)

// serve is Main with the render step given, so tests can run other code
// under the same limits.
func serve(args []string, do renderFunc) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "gitops-render: "+format+"\n", a...)
		return exitSetup
	}
	lim, err := parseChildLimits(args)
	if err != nil {
		return fail("bad arguments: %v", err)
	}
	out, err := confine(lim)
	if err != nil {
		return fail("cannot set limits: %v", err)
	}
	refuseNetwork()
	filtered := refuseSockets() == nil
	onCPULimit(func() {
		fmt.Fprintln(os.Stderr, cpuMarker)
		os.Exit(exitCPU)
	})

	data, err := io.ReadAll(io.LimitReader(os.Stdin, maxRequestBytes+1))
	if err != nil {
		return fail("read the request: %v", err)
	}
	if len(data) > maxRequestBytes {
		return fail("the request is larger than %d bytes", maxRequestBytes)
	}
	var req Request
	if err := json.Unmarshal(data, &req); err != nil {
		return fail("decode the request: %v", err)
	}
	if len(req.Apps) > lim.apps {
		return fail("the request has %d apps, more than the %d the CPU limit was set for", len(req.Apps), lim.apps)
	}
	w := bufio.NewWriterSize(out, 1<<16)
	answer := func(resp *Response) error {
		resp.SocketFilter = filtered
		if err := json.NewEncoder(w).Encode(resp); err != nil {
			return err
		}
		return w.Flush()
	}
	if len(req.Apps) == 0 {
		if err := answer(respond(do(context.Background(), &req))); err != nil {
			return fail("write the response: %v", err)
		}
		return 0
	}
	for _, app := range req.Apps {
		one := req
		one.Apps, one.App, one.Namespace = nil, app.Name, app.Namespace
		resp := respond(do(context.Background(), &one))
		resp.App = app.Name
		// The next app's CPU time starts now, before the answer is
		// written: a SIGXCPU after a complete line is the next app's.
		used, err := cpuUsed()
		if err != nil {
			return fail("read the CPU time used: %v", err)
		}
		if err := raiseCPULimit(lim, used); err != nil {
			return fail("raise the CPU limit for the next app: %v", err)
		}
		resp.CPU = used
		if err := answer(resp); err != nil {
			return fail("write the response for app %s: %v", app.Name, err)
		}
	}
	return 0
}

// respond turns a render's outcome into a Response.
func respond(res *render.Result, err error) *Response {
	if err != nil {
		return &Response{Error: &ResponseError{Message: err.Error(), Unsafe: errors.Is(err, render.ErrUnsafe)}}
	}
	resp := &Response{Warnings: res.Warnings, Files: res.Files}
	for _, obj := range res.Objects {
		data, err := json.Marshal(obj.Object)
		if err != nil {
			return &Response{Error: &ResponseError{Message: fmt.Sprintf("encoding %s %s: %v", obj.GetKind(), obj.GetName(), err)}}
		}
		resp.Objects = append(resp.Objects, data)
	}
	return resp
}

// confine sets the child's own limits and returns the stream its response
// goes to: stdout, while fd 1 itself is pointed at stderr so that nothing a
// library prints can corrupt the response.
func confine(lim childLimits) (*os.File, error) {
	// The heap may grow by lim.memory beyond what the program maps at
	// start (its text, the runtime's reservations); the garbage collector
	// works hard well before the hard limit.
	base, err := addressSpace()
	if err != nil {
		return nil, err
	}
	debug.SetMemoryLimit(lim.memory * 7 / 8)
	debug.SetMaxStack(int(min(lim.memory/4, 1<<30)))
	if err := setLimits(lim, base); err != nil {
		return nil, err
	}
	return privateStdout()
}

// refuseNetwork makes every connection through the standard library's
// defaults fail: the default HTTP transport and client, the default
// resolver, and with them every library path that uses them (kustomize's
// remote loader, Helm's getters, JSON schema references).
func refuseNetwork() {
	refuse := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: ErrNetwork}
	}
	t := &http.Transport{DialContext: refuse, DialTLSContext: refuse}
	http.DefaultTransport = t
	http.DefaultClient = &http.Client{Transport: t}
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: refuse}
}

// renderRequest is the render of the child proper.
func renderRequest(ctx context.Context, req *Request) (*render.Result, error) {
	switch {
	case req.Path != "" && req.Config != "":
		return nil, errors.New("sandbox request: set path or config, not both")
	case req.Path != "":
		return render.Path(ctx, req.Path, render.Options{Root: req.Root, Namespace: req.Namespace, Helm: req.Helm, Limits: req.Limits})
	case req.Config == "":
		return nil, errors.New("sandbox request: set path or config")
	}
	repo, err := config.Load(req.Config)
	if err != nil {
		return nil, err
	}
	opts := render.AppOptions{
		Root:      req.Root,
		Namespace: req.Namespace,
		Limits:    req.Limits,
		Fetch: func(_ context.Context, url, ref string) (string, error) {
			for _, s := range req.Sources {
				if s.URL == url && s.Ref == ref {
					return s.Dir, nil
				}
			}
			return "", fmt.Errorf("%w: the source %s at %s was not fetched before the render; only sources declared in %s are fetched", render.ErrUnsafe, url, ref, config.FileName)
		},
		FetchChart: func(_ context.Context, repo, chart, version string) (string, error) {
			for _, c := range req.Charts {
				if c.Repo == repo && c.Chart == chart && c.Version == version {
					return c.Dir, nil
				}
			}
			return "", fmt.Errorf("%w: the chart %s was not fetched before the render; only charts declared in %s are fetched", render.ErrUnsafe, chart, config.FileName)
		},
	}
	if req.App == "" {
		return render.Repository(ctx, repo, opts)
	}
	app, ok := repo.App(req.App)
	if !ok {
		return nil, fmt.Errorf("%s has no app %s", req.Config, req.App)
	}
	return render.App(ctx, repo, *app, opts)
}
