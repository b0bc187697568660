package limit

// golden defines -update: with it linked, `go test ./... -update` runs here too.
import _ "github.com/kubectl-gitops/kubectl-gitops/internal/testing/golden"
