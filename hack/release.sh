#!/usr/bin/env bash
# release.sh builds the release of HEAD into dist/ (ignored by Git):
#
#   dist/kubectl-gitops_<os>_<arch>.tar.gz (.zip on Windows)  6 platforms
#   dist/gitops-bot_<os>_<arch>.tar.gz (.zip on Windows)      6 platforms
#   dist/*.cdx.json      a CycloneDX SBOM per archive (cyclonedx-gomod)
#   dist/checksums.txt   sha256 of every archive and SBOM
#   dist/gitops.yaml     the krew manifest, from krew/gitops.yaml.tmpl
#   dist/image/          OCI images of gitops-bot and kubectl-gitops
#                        (linux/amd64 and linux/arm64), as OCI layouts and
#                        tarballs, unless RELEASE_IMAGES=false
#
# Reproducible: the version, commit and date come from HEAD, never from the
# clock, so two runs on one commit give identical bytes.
#
#   VERSION    the release's version (default: the tag at HEAD, or
#              v0.0.0-dev.<commit time> between tags)
#   PLATFORMS  os/arch pairs (default: linux, darwin, windows × amd64, arm64)
#   DIST       the output folder (default: dist)
#
# The SBOM tool is built from the Go module proxy by hack/test-assets.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

commit="$(git rev-parse HEAD)"
date="$(git log -1 --format=%cI HEAD)"
if [[ -z "${VERSION:-}" ]]; then
  VERSION="$(git describe --tags --exact-match --match 'v*' HEAD 2>/dev/null || true)"
fi
if [[ -z "$VERSION" ]]; then
  VERSION="v0.0.0-dev.$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD)"
fi
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
  echo "release: the working tree has uncommitted changes; the release would not be the commit $commit" >&2
  [[ "${RELEASE_DIRTY:-}" == "true" ]] || exit 1
fi
DIST="${DIST:-dist}"

assets="$(hack/test-assets.sh)"
args=(-version "$VERSION" -commit "$commit" -date "$date" -dist "$DIST"
  -cyclonedx-gomod "$assets/cyclonedx-gomod")
if [[ -n "${PLATFORMS:-}" ]]; then
  args+=(-platforms "$PLATFORMS")
fi
go run ./hack/release "${args[@]}"

if [[ "${RELEASE_IMAGES:-true}" == "true" ]]; then
  for prog in gitops-bot kubectl-gitops; do
    binaries=()
    for arch in amd64 arm64; do
      bin="$DIST/bin/${prog}_linux_${arch}/${prog}"
      [[ -f "$bin" ]] && binaries+=(-binary "linux/${arch}=${bin}")
    done
    ((${#binaries[@]})) || continue
    go run ./hack/image -name "$prog" "${binaries[@]}" -version "$VERSION" \
      -revision "$commit" -created "$date" -out "$DIST/image/$prog"
  done
fi
echo "release: $VERSION of $commit in $DIST" >&2
