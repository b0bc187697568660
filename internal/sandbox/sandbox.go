// Package sandbox runs untrusted renders in a child process: the same
// program, re-executed with the hidden first argument Command. The child
// sets its own limits on address space, CPU time, file size and open files
// before it reads anything, refuses every network connection at the root
// (the default HTTP transport, client and resolver; a seccomp filter on
// sockets; and where the platform allows, an empty network namespace),
// renders, and answers objects or a
// structured error on stdout. The parent bounds wall time and output and
// kills the child's whole process group on timeout or cancellation. A limit
// hit is a *LimitError, never a crash of the calling process.
//
// A batch of apps (Runner.Apps) shares one child, since starting one costs
// more than most renders: the child answers each app on its own line as
// soon as it is done, and each app has the time, CPU and output limits to
// itself. An app stopped by a limit gets the *LimitError; the apps after it
// go to a new child.
//
// Third-party Git sources and charts that gitops.yaml declares are fetched
// by the parent, through the caller's fetchers (which hold the allowlist and
// any credentials); the child only gets the folders they were fetched to.
//
// Every program that uses a Runner, and every test binary whose tests do,
// must start with:
//
//	if len(os.Args) > 1 && os.Args[1] == sandbox.Command {
//		os.Exit(sandbox.Main())
//	}
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// Command is the hidden first argument that makes the program a render
// child.
const Command = "__gitops-render"

// Defaults for the zero fields of Runner.
const (
	DefaultTimeout              = 60 * time.Second
	DefaultMemory         int64 = 1 << 30
	DefaultMaxOutputBytes int64 = 256 << 20
)

// Request is what the child renders, sent as JSON on its stdin. Exactly one
// of Path and Config is set.
type Request struct {
	// Path is a file or folder rendered as render.Path renders it.
	Path string `json:"path,omitempty"`
	// Helm configures a chart rendered by Path.
	Helm render.HelmOptions `json:"helm,omitzero"`

	// Config is a repository's gitops.yaml, which the child loads itself.
	Config string `json:"config,omitempty"`
	// App is the app of Config to render; empty renders every app, as
	// render.Repository does.
	App string `json:"app,omitempty"`
	// Apps, when set, are the apps of Config to render one after the
	// other, each answered on its own line as soon as it is done; App and
	// Namespace are then unused.
	Apps []RequestApp `json:"apps,omitempty"`
	// Sources are the Git sources the parent fetched for the apps; the
	// child refuses any other.
	Sources []Source `json:"sources,omitempty"`
	// Charts are the charts the parent fetched for the apps; the child
	// refuses any other.
	Charts []Chart `json:"charts,omitempty"`

	// Root confines every read (render.Options.Root, render.AppOptions.Root).
	Root string `json:"root,omitempty"`
	// Namespace is the default namespace, or for an app the override.
	Namespace string `json:"namespace,omitempty"`
	// Limits bound what the render reads.
	Limits render.Limits `json:"limits,omitzero"`
}

// RequestApp is one app of a batch and the namespace it is rendered for.
type RequestApp struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// Source is a Git source fetched by the parent.
type Source struct {
	URL string `json:"url"`
	Ref string `json:"ref"`
	Dir string `json:"dir"`
}

// Chart is a chart fetched by the parent from a chart repository or an OCI
// registry.
type Chart struct {
	Repo    string `json:"repo,omitempty"`
	Chart   string `json:"chart"`
	Version string `json:"version,omitempty"`
	Dir     string `json:"dir"`
}

// Response is the child's answer on stdout: a render's result, or Error,
// on one line; a batch has one line per app, in the order of Request.Apps.
type Response struct {
	// App is the app of the batch this line answers.
	App      string            `json:"app,omitempty"`
	Objects  []json.RawMessage `json:"objects,omitempty"`
	Warnings []string          `json:"warnings,omitempty"`
	Files    []string          `json:"files,omitempty"`
	Error    *ResponseError    `json:"error,omitempty"`
	// SocketFilter says the child's seccomp filter refused every socket
	// but AF_UNIX.
	SocketFilter bool `json:"socketFilter,omitempty"`
	// CPU is the child's CPU time when it finished this render: the next
	// app of the batch may use its CPU limit on top of it.
	CPU time.Duration `json:"cpu,omitempty"`
}

// ResponseError is a render error as the child saw it.
type ResponseError struct {
	Message string `json:"message"`
	// Unsafe is set when the error is a refusal for safety
	// (render.ErrUnsafe).
	Unsafe bool `json:"unsafe,omitempty"`
}

// renderError is a ResponseError in the parent: its text is the child's, and
// errors.Is(err, render.ErrUnsafe) holds for a refusal.
type renderError struct {
	msg    string
	unsafe bool
}

func (e *renderError) Error() string { return e.msg }

func (e *renderError) Is(target error) bool { return e.unsafe && target == render.ErrUnsafe }

// Limit names what stopped a render.
type Limit string

const (
	LimitMemory Limit = "memory"
	LimitStack  Limit = "stack"
	LimitCPU    Limit = "cpu"
	LimitTime   Limit = "time"
	LimitOutput Limit = "output"
)

// LimitError says that a render was stopped because it went over one of
// its limits.
type LimitError struct {
	// Limit is the limit it went over.
	Limit Limit
	// Bytes is the memory, stack or output limit in bytes.
	Bytes int64
	// Duration is the CPU or wall-time limit.
	Duration time.Duration
	// What names what was rendered ("app web", a path); empty for none.
	What string
}

// Reason says which limit stopped the render, such as "over 1 GiB of memory".
func (e *LimitError) Reason() string {
	switch e.Limit {
	case LimitMemory:
		return "over " + formatBytes(e.Bytes) + " of memory"
	case LimitStack:
		return "over " + formatBytes(e.Bytes) + " of stack (runaway recursion)"
	case LimitCPU:
		return "over " + e.Duration.String() + " of CPU time"
	case LimitTime:
		return "over " + e.Duration.String()
	case LimitOutput:
		return "over " + formatBytes(e.Bytes) + " of output"
	}
	return "over a limit"
}

func (e *LimitError) Error() string {
	if e.What != "" {
		return "the render of " + e.What + " was stopped: " + e.Reason()
	}
	return "the render was stopped: " + e.Reason()
}

// ErrNetwork is how the render process answers every attempt to connect.
var ErrNetwork = errors.New("network access is refused while rendering: declare Git sources and charts in gitops.yaml, which are fetched before the render")

// formatBytes writes n in the largest binary unit that divides it, or with
// one decimal.
func formatBytes(n int64) string {
	units := []string{"GiB", "MiB", "KiB"}
	for i, u := range units {
		size := int64(1) << (30 - 10*i)
		if n >= size {
			if n%size == 0 {
				return fmt.Sprintf("%d %s", n/size, u)
			}
			return fmt.Sprintf("%.1f %s", float64(n)/float64(size), u)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
