#!/usr/bin/env bash
# bench-compare.sh measures this tree's kubectl-gitops against its own build
# at an earlier revision, in one run on one control plane, and writes the
# section "## Against an earlier build" of docs/benchmarks.md: a restructure
# must not make the plugin slower.
#
#   hack/bench-compare.sh REV             # about 2 minutes on 2 cores
#   ROUNDS=9 hack/bench-compare.sh REV    # more rounds, steadier medians
#
# It builds both (REV from a temporary git worktree), starts the test control
# plane (hack/benchdiff serve: kube-apiserver + etcd on loopback), writes 300
# ConfigMaps + 300 Deployments, applies them, changes one Deployment, and per
# round times each build's live diff (sandboxed, as by default, and with
# --sandbox=false), its re-apply that changes nothing and the live diff of a
# repository of APPS apps (default 10), the builds alternating first. Read the ratios, not the absolute times.
set -euo pipefail
source "$(dirname "$0")/lib/benchdoc.sh"
cd "$(dirname "$0")/.."

REV="${1:?usage: hack/bench-compare.sh REV}"
ROUNDS="${ROUNDS:-7}"
N="${N:-300}"
DOC="${DOC:-docs/benchmarks.md}"
SECTION="## Against an earlier build"
NS=bench

log() { echo "bench-compare: $*" >&2; }

assets="$(hack/test-assets.sh)"
export KUBEBUILDER_ASSETS="$assets"
export GOPROXY=off GOFLAGS=-mod=readonly LC_ALL=C
old_rev="$(git rev-parse --verify "$REV^{commit}")"
new_rev="$(git rev-parse HEAD)"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  git worktree remove --force "$work/old-tree" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

log "building kubectl-gitops at ${old_rev:0:12} and this tree"
git worktree add -q --detach "$work/old-tree" "$old_rev"
(cd "$work/old-tree" && go build -o "$work/old" ./cmd/kubectl-gitops)
go build -o "$work/new" ./cmd/kubectl-gitops
go build -o "$work/benchdiff" ./hack/benchdiff

log "starting kube-apiserver and etcd"
kc="$work/kubeconfig"
"$work/benchdiff" serve -kubeconfig "$kc" > "$work/serve.log" 2>&1 &
server_pid=$!
wait_kubeconfig "$kc" "$server_pid" "$work/serve.log"

tree="$work/tree"
"$work/benchdiff" gen -out "$tree" -namespace "$NS" -n "$N"
"$work/benchdiff" apply -kubeconfig "$kc" -dir "$tree" -namespace "$NS"
for b in new old; do
  "$work/$b" apply "$tree" --name bench -n "$NS" --kubeconfig "$kc" --cache-dir "$work/cache-$b" > /dev/null
done
sed -i 's/^  replicas: 2$/  replicas: 3/' "$tree/app-137.yaml"

# A repository of APPS apps of 5 ConfigMaps each, applied: its diff renders
# every app (the earlier build may start a render process per app).
APPS="${APPS:-10}"
repo="$work/repo"
mkdir -p "$repo/.git"
{
  echo "apiVersion: gitops.kubectl.dev/v1alpha1"
  echo "kind: Repository"
  echo "apps:"
  for ((a = 0; a < APPS; a++)); do echo "  - {name: app-$a, path: apps/app-$a, namespace: $NS}"; done
} > "$repo/gitops.yaml"
for ((a = 0; a < APPS; a++)); do
  mkdir -p "$repo/apps/app-$a"
  for ((c = 0; c < 5; c++)); do
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-%d-cm-%d\ndata:\n  key: one\n' "$a" "$c" > "$repo/apps/app-$a/cm-$c.yaml"
  done
done
"$work/new" apply "$repo" --kubeconfig "$kc" --cache-dir "$work/cache-new" > /dev/null
sed -i 's/key: one/key: two/' "$repo/apps/app-3/cm-0.yaml"
run_repo() { "$work/$1" diff "$repo" --kubeconfig "$kc" --cache-dir "$work/cache-$1" --color never; }

# Each run is checked: a diff must exit 1 (the one change), a re-apply of
# the unchanged copy 0.
unchanged="$work/unchanged"
"$work/benchdiff" gen -out "$unchanged" -namespace "$NS" -n "$N"
run_diff() { "$work/$1" diff "$tree" --kubeconfig "$kc" --cache-dir "$work/cache-$1" --color never "${@:2}"; }
run_apply() { "$work/$1" apply "$unchanged" --name bench -n "$NS" --kubeconfig "$kc" --cache-dir "$work/cache-$1"; }
check() {
  local code=0
  "$@" > "$work/check.out" 2>&1 || code=$?
  echo "$code"
}
for b in old new; do
  [[ "$(check run_diff "$b")" == 1 ]] || { log "$b diff did not exit 1:"; cat "$work/check.out" >&2; exit 1; }
  [[ "$(check run_apply "$b")" == 0 ]] || { log "$b re-apply did not exit 0:"; cat "$work/check.out" >&2; exit 1; }
  [[ "$(check run_repo "$b")" == 1 ]] || { log "$b diff of the repository did not exit 1:"; cat "$work/check.out" >&2; exit 1; }
done

log "timing $ROUNDS rounds"
phases=(diff diff_trusted reapply repo)
: > "$work/times"
for ((r = 0; r < ROUNDS; r++)); do
  order=(old new)
  ((r % 2)) && order=(new old)
  for p in "${phases[@]}"; do
    for b in "${order[@]}"; do
      case $p in
      diff) cmd=(run_diff "$b") ;;
      diff_trusted) cmd=(run_diff "$b" --sandbox=false) ;;
      reapply) cmd=(run_apply "$b") ;;
      repo) cmd=(run_repo "$b") ;;
      esac
      { TIMEFORMAT="$p $b %3R %3U %3S"; time "${cmd[@]}" > /dev/null 2>&1 || true; } 2>&1 |
        awk '{printf "%s %s %d %d\n", $1, $2, $3 * 1000, ($4 + $5) * 1000}' >> "$work/times"
    done
  done
done

median() { # PHASE BUILD COLUMN
  awk -v p="$1" -v b="$2" -v c="$3" '$1 == p && $2 == b {print $c}' "$work/times" | median_of
}
secs() { awk -v ms="$1" 'BEGIN {printf "%.2f s", ms / 1e3}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
declare -A label=([diff]="live diff, sandboxed (default)" [diff_trusted]="live diff, --sandbox=false" [reapply]="re-apply (no-op)" [repo]="live diff of a repository of $APPS apps, sandboxed")

section="$work/section.md"
{
  echo "$SECTION"
  echo
  echo "This tree's \`kubectl gitops\` against its build at an earlier revision, measured in one run"
  echo "by \`hack/bench-compare.sh REV\` on one local control plane: a restructure must not make"
  echo "the plugin slower. Ratios are this tree ÷ the earlier build: 1.00 is the same."
  echo
  echo "- Machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Builds: earlier \`${old_rev:0:12}\` ($(git log -1 --format=%s "$old_rev" | cut -c1-70)); this tree \`${new_rev:0:12}\`$(git diff --quiet HEAD || echo ' with uncommitted changes')"
  echo "- Set: $N ConfigMaps + $N Deployments, applied; the diff sees one Deployment changed, the"
  echo "  re-apply an unchanged copy; a repository of $APPS apps of 5 ConfigMaps each, one changed."
  echo "  Processes, wall and CPU (user + system) time, median of"
  echo "  $ROUNDS rounds, the build that goes first alternating by round"
  echo
  echo "| Phase | Measure | earlier build | this tree | this ÷ earlier |"
  echo "|---|---|---:|---:|---:|"
  for p in "${phases[@]}"; do
    for c in 3 4; do
      m=wall
      ((c == 4)) && m="CPU of the client"
      o="$(median "$p" old "$c")" n="$(median "$p" new "$c")"
      echo "| ${label[$p]} | $m | $(secs "$o") | $(secs "$n") | **$(ratio "$n" "$o")** |"
    done
  done
  echo
  echo "Raw runs (phase, build, wall ms, CPU ms):"
  echo
  echo '```'
  cat "$work/times"
  echo '```'
} > "$section"
write_section "$DOC" "$SECTION" "$section"
log "wrote $SECTION of $DOC"
cat "$section"
