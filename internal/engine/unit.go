package engine

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// Unit is what the pipeline works on: an app of a repository, or a path
// (a file or folder rendered as it is).
type Unit struct {
	// Repo is the repository of App; for a path, the one holding it, if
	// any.
	Repo *config.Repository
	// App is nil for a path.
	App *config.App
	// Path is the file or folder of a path unit (absolute).
	Path string
	// Root confines the reads of a path unit (apps use Engine.Options.Root).
	Root string
	// Name names the inventory of a path unit (kubectl gitops apply
	// --name); without it a path has no inventory and prunes nothing.
	Name string
	// Namespace is where the unit's namespaced objects that name none, its
	// inventory and a Helm app's release go; see Namespace.
	Namespace string
}

// AppUnit is the unit of app in repo, in namespace (see Namespace).
func AppUnit(repo *config.Repository, app *config.App, namespace string) Unit {
	return Unit{Repo: repo, App: app, Namespace: namespace}
}

// Namespace is the one namespace rule: override (kubectl's -n) when set,
// else the app's namespace, else fallback (a kubeconfig context's), else
// "default".
func Namespace(app *config.App, override, fallback string) string {
	switch {
	case override != "":
		return override
	case app != nil && app.Namespace != "":
		return app.Namespace
	case fallback != "":
		return fallback
	}
	return metav1.NamespaceDefault
}

// String names the unit in messages: "app NAME", or the path.
func (u Unit) String() string {
	if u.App != nil {
		return "app " + u.App.Name
	}
	return u.Path
}

// IsHelm reports whether the unit is applied as a Helm release rather than
// with server-side apply: an app with a helm section.
func (u Unit) IsHelm() bool { return u.App != nil && u.App.Helm != nil }

// Inventory names the unit's inventory: the app's, or a path's given a
// Name. A path without one has none (nothing is labelled or pruned).
func (u Unit) Inventory() cluster.InventoryRef {
	ref := cluster.InventoryRef{Namespace: u.Namespace}
	switch {
	case u.App != nil:
		ref.App = u.App.Name
	case u.Name != "":
		ref.App = u.Name
	}
	return ref
}

// Prune is whether applying the unit prunes: override when given (--prune),
// else the app's prune setting; a path prunes only when told to.
func (u Unit) Prune(override *bool) bool {
	if override != nil {
		return *override
	}
	return u.App != nil && u.App.Prune
}

// WaitTimeout is how long a wait for health lasts: override when set, else
// the app's wait.timeout, else config.DefaultWaitTimeout.
func (u Unit) WaitTimeout(override time.Duration) time.Duration {
	if override > 0 {
		return override
	}
	if u.App != nil && u.App.Wait != nil && u.App.Wait.Timeout.Duration > 0 {
		return u.App.Wait.Timeout.Duration
	}
	return config.DefaultWaitTimeout
}
