#!/usr/bin/env bash
# bench-diff.sh measures the live diff, `kubectl gitops diff DIR`, against
# `kubectl diff --server-side`, `kubectl diff` and the raw limit (a Go loop of
# server-side-apply dry-run PATCHes, 16 in flight, nothing else) in one run,
# and writes the section "## Live diff (issue 3)" of docs/benchmarks.md.
#
#   hack/bench-diff.sh               # about 5 minutes on 2 cores, most of it kubectl diff
#   ROUNDS=9 hack/bench-diff.sh      # more rounds, steadier medians
#
# It starts the test control plane (kube-apiserver + etcd from
# hack/test-assets.sh, via hack/benchdiff serve, on 127.0.0.1 only), writes
# N ConfigMaps + N Deployments (default 300 + 300), applies them once as
# kubectl-gitops, changes one Deployment, checks that every tool reports that
# one change, then times each tool as a process, round by round, rotating
# which goes first, and takes the median. Machines are noisy: read the
# ratios, not the absolute times.
set -euo pipefail
source "$(dirname "$0")/lib/benchdoc.sh"
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-5}"
N="${N:-300}"
DOC="${DOC:-docs/benchmarks.md}"
SECTION="## Live diff (issue 3)"
NS=bench

log() { echo "bench-diff: $*" >&2; }

assets="$(hack/test-assets.sh)"
export KUBEBUILDER_ASSETS="$assets"
kubectl="$assets/kubectl"
# Only the module cache from here on.
export GOPROXY=off GOFLAGS=-mod=readonly LC_ALL=C

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

ours="$work/kubectl-gitops"
bench="$work/benchdiff"
log "building kubectl-gitops and hack/benchdiff"
go build -o "$ours" ./cmd/kubectl-gitops
go build -o "$bench" ./hack/benchdiff

log "starting kube-apiserver and etcd"
kc="$work/kubeconfig"
"$bench" serve -kubeconfig "$kc" > "$work/serve.log" 2>&1 &
server_pid=$!
wait_kubeconfig "$kc" "$server_pid" "$work/serve.log"

tree="$work/tree"
log "writing $N ConfigMaps + $N Deployments and applying them"
"$bench" gen -out "$tree" -namespace "$NS" -n "$N"
"$bench" apply -kubeconfig "$kc" -dir "$tree" -namespace "$NS"
changed="app-137"
(( N > 137 )) || changed="app-000"
sed -i 's/^  replicas: 2$/  replicas: 3/' "$tree/$changed.yaml"
objects=$((2 * N))

# The tools, as a user runs them. Each has its own discovery cache, warmed
# by the checks below, as on a workstation.
run_ours() { "$ours" diff "$tree" --kubeconfig "$kc" --cache-dir "$work/cache-ours" --color never; }
run_kubectl_ss() { "$kubectl" diff --server-side --field-manager kubectl-gitops -f "$tree" --kubeconfig "$kc" --cache-dir "$work/cache-kubectl"; }
run_kubectl_ss16() { "$kubectl" diff --server-side --field-manager kubectl-gitops --concurrency 16 -f "$tree" --kubeconfig "$kc" --cache-dir "$work/cache-kubectl"; }
run_kubectl() { "$kubectl" diff -f "$tree" --kubeconfig "$kc" --cache-dir "$work/cache-kubectl"; }
run_raw() { "$bench" raw -kubeconfig "$kc" -dir "$tree" >> "$work/raw.loops"; }
tools=(ours kubectl_ss kubectl raw kubectl_ss16)

# expect TOOL CODE runs a tool once and checks its exit status.
expect() {
  local code=0
  "run_$1" > "$work/$1.out" 2> "$work/$1.err" || code=$?
  if [[ $code != "$2" ]]; then
    log "$1 exited $code, want $2:"
    head -40 "$work/$1.out" "$work/$1.err" >&2
    exit 1
  fi
}

log "checking that every tool sees exactly the one change"
expect ours 1
expect kubectl_ss 1
expect kubectl 1
expect kubectl_ss16 1
expect raw 0
summary="$(tail -1 "$work/ours.out")"
if [[ "$summary" != "0 created, 1 configured, 0 deleted, $((objects - 1)) unchanged" ]] ||
  [[ "$(grep -c ' configured$' "$work/ours.out")" != 1 ]] || ! grep -q "^~ apps/Deployment/$NS/$changed configured$" "$work/ours.out"; then
  log "kubectl-gitops diff does not name exactly $changed:"
  head -40 "$work/ours.out" >&2
  exit 1
fi
for k in kubectl_ss kubectl kubectl_ss16; do
  # kubectl diff prints one diff -u per changed object.
  if [[ "$(grep -c '^diff -u -N' "$work/$k.out")" != 1 ]] || ! grep -q "$changed" "$work/$k.out"; then
    log "$k does not name exactly $changed:"
    head -40 "$work/$k.out" >&2
    exit 1
  fi
done
: > "$work/raw.loops"

# measure runs ROUNDS rounds of every tool, the order rotating each round,
# and prints "TOOL WALL_MS CPU_MS" per run. CPU is user + system of the
# tool's process (not the API server's).
measure() {
  local r i n=${#tools[@]} t
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
      t="${tools[(i + r) % n]}"
      { TIMEFORMAT="$t %3R %3U %3S"; time "run_$t" > /dev/null 2>&1 || true; } 2>&1 |
        awk '{printf "%s %d %d\n", $1, $2 * 1000, ($3 + $4) * 1000}'
    done
  done
}
log "timing $ROUNDS rounds of ${#tools[@]} tools"
measure > "$work/times"

# median TOOL COLUMN prints the median of a column of a tool's runs.
median() {
  awk -v t="$1" -v c="$2" '$1 == t {print $c}' "$work/times" | median_of
}
declare -A wall cpu
for t in "${tools[@]}"; do
  wall[$t]="$(median "$t" 2)" cpu[$t]="$(median "$t" 3)"
done
loop_ms="$(awk '{print $2}' "$work/raw.loops" | median_of)"

secs() { awk -v ms="$1" 'BEGIN {printf "%.2f s", ms / 1e3}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
per() { awk -v ms="$1" -v n="$2" 'BEGIN {printf "%.2f ms", ms / n}'; }

r_raw="$(ratio "${wall[ours]}" "${wall[raw]}")"
r_ss="$(ratio "${wall[ours]}" "${wall[kubectl_ss]}")"
r_cs="$(ratio "${wall[ours]}" "${wall[kubectl]}")"
r_ss16="$(ratio "${wall[ours]}" "${wall[kubectl_ss16]}")"
r_loop="$(ratio "${wall[ours]}" "$loop_ms")"
log "ours/raw $r_raw, ours/kubectl-server-side $r_ss"

cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
row() { # NAME TOOL
  echo "| $1 | $(secs "${wall[$2]}") | $(per "${wall[$2]}" "$objects") | $(secs "${cpu[$2]}") | $(ratio "${wall[$2]}" "${wall[raw]}") |"
}
section="$work/section.md"
{
  echo "$SECTION"
  echo
  echo "\`kubectl gitops diff DIR\` (live: one server-side-apply dry-run per object) against its"
  echo "peers, measured in one run by \`hack/bench-diff.sh\` against a local kube-apiserver + etcd"
  echo "(the test control plane, loopback only). Re-run the script to update this section."
  echo
  echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr); load average $load at the end; $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Versions: $("$ours" version 2>/dev/null | head -1); kubectl $("$kubectl" version --client | awk '/^Client/ {print $3}'); kube-apiserver $("$assets/kube-apiserver" --version | awk '{print $2}'), etcd $("$assets/etcd" --version | awk '/etcd Version/ {print $3}')"
  echo "- Tree: $N ConfigMaps + $N Deployments ($objects files), applied once by kubectl-gitops"
  echo "  (server-side apply), then \`$changed\` changed (replicas 2 → 3). Every tool was checked to"
  echo "  report exactly that one object before timing; kubectl-gitops exits 1 with"
  echo "  \`$summary\`."
  echo "- Each tool runs as a process with a warm discovery cache; $ROUNDS rounds, the order rotating"
  echo "  each round; medians. CPU is the tool's own (user + system), not the API server's."
  echo "- Raw limit: \`hack/benchdiff raw\` reads the files, then sends one SSA dry-run PATCH per object"
  echo "  with 16 in flight over one HTTP/2 connection, reads each response and drops it — no"
  echo "  discovery, no GET, no decoding, no diff. Its PATCH loop alone took $(secs "$loop_ms") (median)."
  echo "- kubectl diff processes one object at a time by default (\`--concurrency 1\`); the last row"
  echo "  gives it the same 16 in flight as ours, for reference."
  echo
  echo "| Tool | Wall (median) | Wall per object | CPU (median) | ÷ raw |"
  echo "|---|---:|---:|---:|---:|"
  row "**kubectl gitops diff DIR**" ours
  row "raw limit: SSA dry-run PATCH loop, 16 in flight" raw
  row "\`kubectl diff --server-side -f DIR\`" kubectl_ss
  row "\`kubectl diff -f DIR\` (client-side)" kubectl
  row "\`kubectl diff --server-side --concurrency 16 -f DIR\`" kubectl_ss16
  echo
  echo "Ratios: ours ÷ raw limit **$r_raw** (goal ≤ 1.5; ÷ the bare PATCH loop $r_loop);"
  echo "ours ÷ \`kubectl diff --server-side\` **$r_ss** (goal ≈ 0.2); ours ÷ \`kubectl diff\` $r_cs;"
  echo "ours ÷ \`kubectl diff --server-side --concurrency 16\` $r_ss16."
  echo
  echo "Where the time goes: the API server's dry-runs dominate; on a 2-core machine the client"
  echo "competes with kube-apiserver and etcd for the same cores, so its CPU counts twice. What"
  echo "kubectl-gitops adds to the raw loop is start-up, rendering, discovery from the disk cache,"
  echo "one LIST per kind and namespace for the live objects (instead of kubectl's GET per object),"
  echo "decoding the responses and the diff. Profiling the first version (1.56 × raw, under more load) found three"
  echo "hot spots, now fixed: rendering every unchanged pair as YAML for the line diff (a quarter"
  echo "of the client CPU; unchanged objects are now recognised by comparing the decoded objects,"
  echo "so only changed ones are rendered), client-go's token bucket (200 QPS after a burst of 400"
  echo "delayed 600 requests by about a second; the dry-runs and reads now use only the bounded"
  echo "pool of 16), and the LISTs queued behind the dry-runs (they now start first and overlap)."
  echo "What remains is mostly JSON decoding of the responses and the LISTs, which the raw loop"
  echo "skips. A CPU profile is one command away: \`go run ./hack/benchdiff profile -o cpu.pprof --"
  echo "diff DIR --kubeconfig FILE\`, then \`go tool pprof -top cpu.pprof\`."
} > "$section"

write_section "$DOC" "$SECTION" "$section"
log "wrote \"$SECTION\" in $DOC"
cat "$section"
