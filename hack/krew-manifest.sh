#!/usr/bin/env bash
# krew-manifest.sh VERSION DIST_DIR writes the krew plugin manifest for the
# release archives in DIST_DIR (kubectl-gitops_<os>_<arch>.tar.gz, each holding
# kubectl-gitops and kubectl_complete-gitops) to stdout.
set -euo pipefail
version="${1:?usage: krew-manifest.sh VERSION DIST_DIR}"
dist="${2:?usage: krew-manifest.sh VERSION DIST_DIR}"
base="https://github.com/kubectl-gitops/kubectl-gitops/releases/download/${version}"
platforms=""
for archive in "$dist"/kubectl-gitops_*_*.tar.gz; do
  [[ -e "$archive" ]] || { echo "no archives in $dist" >&2; exit 2; }
  name="$(basename "$archive" .tar.gz)"
  os="$(cut -d_ -f2 <<<"$name")"
  arch="$(cut -d_ -f3 <<<"$name")"
  sha="$(sha256sum "$archive" | cut -d' ' -f1)"
  bin="kubectl-gitops"
  [[ "$os" == windows ]] && bin="kubectl-gitops.exe"
  platforms+="  - selector:
      matchLabels: {os: ${os}, arch: ${arch}}
    uri: ${base}/$(basename "$archive")
    sha256: ${sha}
    bin: ${bin}
    files:
      - {from: ${bin}, to: .}
      - {from: kubectl_complete-gitops, to: .}
"
done
template="$(dirname "$0")/../krew/gitops.yaml.tmpl"
awk -v version="$version" -v platforms="$platforms" '
  { gsub(/\{\{VERSION\}\}/, version) }
  /\{\{PLATFORMS\}\}/ { printf "%s", platforms; next }
  { print }' "$template"
