#!/usr/bin/env bash
# Fetches the npm packages the forge tests use (GitHub's OpenAPI description
# and the webhook example corpus) into a cache directory, once. Idempotent:
# a package already extracted is not fetched again. Prints the cache dir.
set -euo pipefail

cache="${KUBECTL_GITOPS_CACHE:-$HOME/.cache/kubectl-gitops}/npm"
mkdir -p "$cache"

fetch() {
	local pkg="$1" version="$2"
	local name="${pkg#@}"
	name="${name//\//-}"
	local dest="$cache/${name}-${version}"
	if [[ -f "$dest/.complete" ]]; then
		return 0
	fi
	local tmp
	tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
	trap 'rm -rf "$tmp"' RETURN
	(cd "$tmp" && npm pack --silent "${pkg}@${version}" >/dev/null)
	local tgz
	tgz="$(ls "$tmp"/*.tgz)"
	mkdir -p "$tmp/x"
	tar -xzf "$tgz" -C "$tmp/x"
	rm -rf "$dest"
	# npm tarballs hold one top-level directory, "package".
	mv "$tmp/x/package" "$dest"
	touch "$dest/.complete"
	echo "fetched ${pkg}@${version} into $dest" >&2
}

fetch @octokit/openapi 23.0.2
fetch @octokit/webhooks-examples 7.6.1

echo "$cache"
