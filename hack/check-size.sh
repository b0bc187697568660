#!/usr/bin/env bash
# check-size.sh fails when Git's index holds a file over 5 MB or a compiled
# program (ELF, Mach-O, PE, or a Go test binary): release builds go to dist/,
# which .gitignore keeps out, and nothing built is ever committed.
#
#   hack/check-size.sh            check every file in the index (hack/test.sh)
#   hack/check-size.sh --staged   check the files a commit adds or changes
#                                 (the pre-commit hook, hack/githooks)
#
# Enable the hook once per clone: git config core.hooksPath hack/githooks
set -euo pipefail
limit=$((5 * 1024 * 1024))

files=()
if [[ "${1:-}" == "--staged" ]]; then
  while IFS= read -r -d '' f; do files+=("$f"); done \
    < <(git diff --cached --name-only --diff-filter=ACMRT -z)
else
  while IFS= read -r -d '' f; do files+=("$f"); done < <(git ls-files -z)
fi
((${#files[@]})) || exit 0

bad=0
# Sizes of the staged blobs (":path"), in one git process.
while IFS=$'\t' read -r size path; do
  if [[ "$size" =~ ^[0-9]+$ ]] && ((size > limit)); then
    echo "check-size: $path is $((size / 1024 / 1024)) MB, over the 5 MB limit: keep it out of Git (build it, fetch it in a script, or ignore it in .gitignore) and run git rm --cached -- '$path'" >&2
    bad=1
  fi
done < <(paste <(printf ':%s\n' "${files[@]}" | git cat-file --batch-check='%(objectsize)') \
  <(printf '%s\n' "${files[@]}"))

# Compiled programs, by their magic numbers; only files Git sees as binary
# are read.
declare -A text=()
while IFS= read -r -d '' f; do text["$f"]=1; done \
  < <(git grep --cached -z -I -l -e '' -- "${files[@]}" 2>/dev/null || true)
for f in "${files[@]}"; do
  [[ -n "${text[$f]:-}" ]] && continue
  magic="$(git cat-file blob ":$f" 2>/dev/null | head -c 4 | od -An -tx1 | tr -d ' \n' || true)"
  case "$magic" in
  7f454c46 | cffaedfe | cefaedfe | feedfacf | feedface | cafebabe | 4d5a*)
    echo "check-size: $f is a compiled program: release builds belong in dist/ (ignored); run git rm --cached -- '$f'" >&2
    bad=1
    ;;
  esac
done
exit "$bad"
