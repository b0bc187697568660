#!/usr/bin/env bash
# demo.sh shows the main job on the example repository in
# testdata/examples/shop, with nothing else to set up: render an app, diff two
# overlays, then change a Deployment and a Secret and diff the two trees.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
go build -o "$work/kubectl-gitops" ./cmd/kubectl-gitops
gitops() { "$work/kubectl-gitops" "$@"; }
step() { printf '\n\033[1m$ kubectl gitops %s\033[0m\n' "$*"; }
run() { step "$@"; set +e; gitops "$@"; echo "(exit $?)"; set -e; }

cd testdata/examples/shop
run render web
run render cache -o json --namespace demo
run diff apps/web/overlays/staging apps/web/overlays/prod -n shop   # one namespace for both sides

# A change, as a pull request would make it: more replicas and a new secret.
cp -r . "$work/shop-v2"
sed -i 's/replicas: 3/replicas: 5/' "$work/shop-v2/apps/web/overlays/prod/kustomization.yaml"
sed -i 's/demo-token-not-a-secret/rotated-token-also-not-a-secret/' "$work/shop-v2/apps/config/settings.yaml"
step "diff shop shop-v2   # Secret values are masked"
set +e; gitops diff . "$work/shop-v2"; echo "(exit $?)"; set -e
