#!/usr/bin/env bash
# test-assets.sh builds the test control plane (kube-apiserver and etcd), the
# peer tools the tests and benchmarks compare against (kubectl, helm) and the
# release tools (krew and its manifest validator, cyclonedx-gomod for SBOMs)
# from the Go module proxy, caches them by version outside the repository, and
# prints the folder to use as KUBEBUILDER_ASSETS.
#
#   export KUBEBUILDER_ASSETS="$(hack/test-assets.sh)"
#
# Nothing prebuilt is downloaded: every binary is compiled from its Go module.
# A cold build takes several minutes on 2 cores; later calls return the cached
# folder at once. Progress goes to stderr, the folder to stdout.
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.37.2}"  # keep in step with internal/testing/testenv
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
HELM_VERSION="${HELM_VERSION:-4.3.1}"
KREW_VERSION="${KREW_VERSION:-0.4.3}"
CYCLONEDX_GOMOD_VERSION="${CYCLONEDX_GOMOD_VERSION:-1.10.0}"
cache_root="${KUBECTL_GITOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-gitops}"
dest="$cache_root/assets/k8s-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}"

have() { [[ -x "$dest/$1" ]]; }
tools=(kube-apiserver etcd kubectl helm kubectl-krew validate-krew-manifest cyclonedx-gomod)
all_built() {
  local t
  for t in "${tools[@]}"; do have "$t" || return 1; done
}
if all_built; then
  echo "$dest"
  exit 0
fi

staging_version="0.${KUBERNETES_VERSION#1.}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"
log() { echo "test-assets: $*" >&2; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod

# kubernetes_module writes a module that requires k8s.io/kubernetes. Kubernetes
# replaces every staging module with a ./staging path, which a dependent module
# cannot see; replace each with its published release instead. The list comes
# from kubernetes' own go.mod.
kubernetes_module() {
  local dir="$work/kubernetes"
  [[ -f "$dir/go.mod" ]] && return 0
  mkdir -p "$dir"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@v${KUBERNETES_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  if [[ -z "$gomod" ]]; then
    log "cannot download k8s.io/kubernetes@v${KUBERNETES_VERSION}: check GOPROXY"
    exit 2
  fi
  {
    echo "module gitops.local/testassets/kubernetes"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes v${KUBERNETES_VERSION}"
    echo
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" |
      awk -v v="v${staging_version}" '{print "replace " $1 " => " $1 " " v}'
  } > "$dir/go.mod"
}

# build_kubernetes NAME builds k8s.io/kubernetes/cmd/NAME.
build_kubernetes() {
  local name="$1"
  have "$name" && return 0
  kubernetes_module
  log "building $name v${KUBERNETES_VERSION}"
  (
    cd "$work/kubernetes"
    go get "k8s.io/kubernetes/cmd/${name}@v${KUBERNETES_VERSION}" >&2
    go build -trimpath -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=v${KUBERNETES_VERSION} \
      -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=${staging_version#0.} \
      -X k8s.io/client-go/pkg/version.gitVersion=v${KUBERNETES_VERSION}" \
      -o "$dest/${name}.tmp" "k8s.io/kubernetes/cmd/${name}" >&2
  )
  mv "$dest/${name}.tmp" "$dest/${name}"
}

# build_module NAME MODULE VERSION PACKAGE [LDFLAGS] builds PACKAGE from MODULE.
build_module() {
  local name="$1" module="$2" version="$3" pkg="$4" ldflags="${5:-}"
  have "$name" && return 0
  log "building $name v${version}"
  local dir="$work/$name"
  mkdir -p "$dir"
  printf 'module gitops.local/testassets/%s\n\ngo 1.26.0\n\nrequire %s v%s\n' "$name" "$module" "$version" > "$dir/go.mod"
  (
    cd "$dir"
    go get "${pkg}@v${version}" >&2
    go build -trimpath -ldflags "-s -w $ldflags" -o "$dest/${name}.tmp" "$pkg" >&2
  )
  mv "$dest/${name}.tmp" "$dest/${name}"
}

build_kubernetes kube-apiserver
build_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
build_kubernetes kubectl
build_module helm helm.sh/helm/v4 "$HELM_VERSION" helm.sh/helm/v4/cmd/helm \
  "-X helm.sh/helm/v4/internal/version.version=v${HELM_VERSION}"
# krew as the kubectl plugin kubectl-krew, and the validator the krew index
# runs on every manifest.
build_module kubectl-krew sigs.k8s.io/krew "$KREW_VERSION" sigs.k8s.io/krew/cmd/krew \
  "-X sigs.k8s.io/krew/internal/version.gitTag=v${KREW_VERSION}"
build_module validate-krew-manifest sigs.k8s.io/krew "$KREW_VERSION" sigs.k8s.io/krew/cmd/validate-krew-manifest
build_module cyclonedx-gomod github.com/CycloneDX/cyclonedx-gomod "$CYCLONEDX_GOMOD_VERSION" \
  github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod

log "ready in $dest"
echo "$dest"
