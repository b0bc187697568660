package cluster

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// redactorKey carries, in a request's context, the Redactor of the object
// the request sends.
type redactorKey struct{}

// withObject returns ctx for requests about obj: the warnings the API
// server answers them with are redacted with obj's Secret values.
func withObject(ctx context.Context, obj *unstructured.Unstructured) context.Context {
	return context.WithValue(ctx, redactorKey{}, diff.NewRedactor(obj))
}

// redactorOf is the Redactor withObject put in ctx, or nil (which redacts
// nothing).
func redactorOf(ctx context.Context) *diff.Redactor {
	r, _ := ctx.Value(redactorKey{}).(*diff.Redactor)
	return r
}

// redactWarnings hands the API server's warnings on to next with the
// values of the Secret the request sends replaced by diff.Mask: an
// admission policy may quote the object it warns about, and client-go
// prints warnings by itself.
type redactWarnings struct {
	next rest.WarningHandlerWithContext
}

func (h redactWarnings) HandleWarningHeaderWithContext(ctx context.Context, code int, agent, text string) {
	h.next.HandleWarningHeaderWithContext(ctx, code, agent, redactorOf(ctx).Text(text))
}

// redactingWarnings makes cfg's warning handler (client-go's logger when
// it has none) redact warnings; cfg is modified.
func redactingWarnings(cfg *rest.Config) {
	var next rest.WarningHandlerWithContext = rest.WarningLogger{}
	switch {
	case cfg.WarningHandlerWithContext != nil:
		next = cfg.WarningHandlerWithContext
	case cfg.WarningHandler != nil:
		next = contextless{cfg.WarningHandler}
	}
	cfg.WarningHandler, cfg.WarningHandlerWithContext = nil, redactWarnings{next: next}
}

// contextless adapts a WarningHandler.
type contextless struct{ h rest.WarningHandler }

func (c contextless) HandleWarningHeaderWithContext(_ context.Context, code int, agent, text string) {
	c.h.HandleWarningHeader(code, agent, text)
}
