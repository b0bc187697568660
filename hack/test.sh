#!/usr/bin/env bash
# test.sh runs every check and test: the size of committed files, gofmt,
# import grouping (as goimports -local writes it), go vet and go test on a real
# kube-apiserver and etcd (built once by hack/test-assets.sh and cached), with
# the npm test data of hack/test-data.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBEBUILDER_ASSETS="$(hack/test-assets.sh)"
# GitHub's OpenAPI description and webhook examples, from the npm registry.
GITOPS_TEST_DATA="$(hack/test-data.sh)"
export KUBEBUILDER_ASSETS GITOPS_TEST_DATA TZ=UTC

# No file over 5 MB and no compiled program in Git (the pre-commit hook in
# hack/githooks refuses them; this catches a commit made without it).
hack/check-size.sh

# Tracked and new files, not deleted ones, as hack/importgroups sees the tree.
gofiles=()
while IFS= read -r f; do
  if [[ -e "$f" ]]; then gofiles+=("$f"); fi
done < <(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*')
unformatted="$(gofmt -l "${gofiles[@]}")"
if [[ -n "$unformatted" ]]; then
  echo "gofmt would change these files (run gofmt -w):" >&2
  echo "$unformatted" >&2
  exit 1
fi
# Standard library, third-party, then module imports; a Go program, so CI
# needs nothing beyond the module proxy.
go run ./hack/importgroups
go vet ./...
go test -count=1 "$@" ./...
