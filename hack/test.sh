#!/usr/bin/env bash
# test.sh runs every check and test: gofmt, go vet and go test on a real
# kube-apiserver and etcd (built once by hack/test-assets.sh and cached), with
# the npm test data of hack/test-data.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBEBUILDER_ASSETS="$(hack/test-assets.sh)"
# GitHub's OpenAPI description and webhook examples, from the npm registry.
GITOPS_TEST_DATA="$(hack/test-data.sh)"
export KUBEBUILDER_ASSETS GITOPS_TEST_DATA TZ=UTC

unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*'))"
if [[ -n "$unformatted" ]]; then
  echo "gofmt would change these files (run gofmt -w):" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -count=1 "$@" ./...
