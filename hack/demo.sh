#!/usr/bin/env bash
# demo.sh runs the main job on the example repository in testdata/examples/shop
# with nothing else to set up: it starts a local control plane (kube-apiserver
# and etcd, built from Go modules by hack/test-assets.sh on first use), then
# renders, diffs, applies and changes the repository, and stops it again.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
cluster_pid=""
cleanup() {
  if [[ -n "$cluster_pid" ]]; then
    kill "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "demo: preparing the control plane and the plugin (the first run builds kube-apiserver and etcd)" >&2
KUBEBUILDER_ASSETS="$(hack/test-assets.sh)"
export KUBEBUILDER_ASSETS
go build -o "$work/kubectl-gitops" ./cmd/kubectl-gitops
go build -o "$work/localcluster" ./hack/localcluster
"$work/localcluster" -kubeconfig "$work/kubeconfig" >"$work/cluster.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 1 120); do
  [[ -f "$work/kubeconfig" ]] && break
  kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/cluster.log" >&2; exit 1; }
  sleep 0.5
done
[[ -f "$work/kubeconfig" ]] || { echo "demo: the control plane did not start; see $work/cluster.log" >&2; exit 1; }
export KUBECONFIG="$work/kubeconfig"

# The example as a Git repository, so apply records the commit it applied.
cp -r testdata/examples/shop "$work/shop"
cd "$work/shop"
git init -q -b main && git add -A
git -c user.name=demo -c user.email=demo@example.com commit -qm "the shop"

gitops() { "$work/kubectl-gitops" "$@"; }
step() { printf '\n\033[1m$ kubectl gitops %s\033[0m\n' "$*"; }
run() { step "$@"; set +e; gitops "$@"; echo "(exit $?)"; set -e; }

run render web
run diff .
run apply .
run diff .
echo "(the local control plane runs no controllers, so Deployments never become ready: status says Progressing)"
run status

# A change, as a pull request would make it: more replicas, a rotated secret
# (masked in every output) and new chart values.
sed -i 's/replicas: 3/replicas: 5/' apps/web/overlays/prod/kustomization.yaml
sed -i 's/demo-token-not-a-secret/rotated-token-also-not-a-secret/' apps/config/settings.yaml
sed -i 's/replicaCount: 2/replicaCount: 3/' gitops.yaml
git -c user.name=demo -c user.email=demo@example.com commit -qam "scale web and cache, rotate the token"
run diff .
run apply .
run status
run diff apps/web/overlays/staging apps/web/overlays/prod -n shop
