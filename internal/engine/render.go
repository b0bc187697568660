package engine

import (
	"context"
	"errors"

	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// Rendered is a unit rendered: its objects and, for a Helm app, the
// release the Helm SDK installs.
type Rendered struct {
	Unit
	// Result holds the objects, the render's warnings and the files it
	// read; nil when Err is set.
	Result *render.Result
	// Release is a Helm app's chart and values, loaded in this process
	// after the chart rendered (in the sandbox) by the first Plan, Apply or
	// Status.
	Release *render.HelmRelease
	// Err is why the unit has no render.
	Err error
}

// Render renders units, the apps of one repository in one batch (one child
// process when sandboxed: starting one costs more than most renders). A
// unit's failure is its Err; the others go on. The results are in the order
// of units.
func (e *Engine) Render(ctx context.Context, units []Unit) []Rendered {
	out := make([]Rendered, len(units))
	var batch []sandbox.AppRender
	var at []int
	flush := func() {
		if len(batch) == 0 {
			return
		}
		repo := units[at[0]].Repo
		for j, res := range e.renderer().Apps(ctx, repo, batch, e.Options) {
			out[at[j]].Result, out[at[j]].Err = res.Result, res.Err
		}
		batch, at = nil, nil
	}
	for i, u := range units {
		out[i].Unit = u
		if u.App == nil {
			continue
		}
		if u.Repo == nil {
			out[i].Err = errors.New("an app needs its repository")
			continue
		}
		if len(at) > 0 && units[at[0]].Repo != u.Repo {
			flush()
		}
		batch, at = append(batch, sandbox.AppRender{App: *u.App, Namespace: u.Namespace}), append(at, i)
	}
	flush()
	for i, u := range units {
		if u.App == nil {
			opts := render.Options{Root: u.Root, Namespace: u.Namespace, Limits: e.Options.Limits}
			out[i].Result, out[i].Err = e.renderer().Path(ctx, u.Path, opts)
		}
	}
	return out
}

// Prepare loads r's Helm release once, when r is a Helm app: after its
// chart rendered (in the sandbox when there is one), since the Helm SDK
// renders the templates again in this process.
func (e *Engine) Prepare(ctx context.Context, r *Rendered) error {
	if r.Err != nil || !r.IsHelm() || r.Release != nil {
		return r.Err
	}
	r.Release, r.Err = e.Release(ctx, r.Unit)
	return r.Err
}

// RenderOne renders one unit.
func (e *Engine) RenderOne(ctx context.Context, u Unit) (*Rendered, error) {
	r := e.Render(ctx, []Unit{u})[0]
	return &r, r.Err
}

// Release loads a Helm app's chart and values in this process, as the Helm
// SDK installs them: the same chart and values the render shows, fetched
// and confined the same way, released in the unit's namespace. With a
// sandbox, call it only after the chart rendered there: the SDK renders
// the templates again here.
func (e *Engine) Release(ctx context.Context, u Unit) (*render.HelmRelease, error) {
	if !u.IsHelm() || u.Repo == nil {
		return nil, errors.New(u.String() + " is not a Helm app of a gitops.yaml")
	}
	opts := e.Options
	opts.Namespace = u.Namespace
	return render.AppRelease(ctx, u.Repo, *u.App, opts)
}
