#!/usr/bin/env bash
# bench-apply.sh measures `kubectl gitops apply DIR` against its peer,
# `kubectl apply --server-side -f DIR`, in one run on one control plane, and
# writes the section "## Apply (issue 3)" of docs/benchmarks.md.
#
#   hack/bench-apply.sh            # about 2 minutes on 2 cores
#   ROUNDS=5 hack/bench-apply.sh   # more rounds, steadier medians
#
# It starts kube-apiserver and etcd on loopback (hack/benchapply, envtest;
# binaries from hack/test-assets.sh), writes a folder of 300 ConfigMaps and
# 300 Deployments, and per round times, for each tool in a namespace of its
# own, the first apply and a re-apply that changes nothing; which tool goes
# first alternates by round. Both tools share one warm discovery cache. No
# controllers run, so nothing but the API server works on the objects.
set -euo pipefail
source "$(dirname "$0")/lib/benchdoc.sh"
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
N="${N:-300}" # ConfigMaps, and as many Deployments
DOC="${DOC:-docs/benchmarks.md}"
SECTION="## Apply (issue 3)"
log() { echo "bench-apply: $*" >&2; }

KUBEBUILDER_ASSETS="$(hack/test-assets.sh)"
export KUBEBUILDER_ASSETS
kubectl="$KUBEBUILDER_ASSETS/kubectl"
export GOPROXY=off GOFLAGS=-mod=readonly LC_ALL=C

work="$(mktemp -d)"
cp_pid=""
cleanup() {
  if [[ -n "$cp_pid" ]]; then
    kill "$cp_pid" 2>/dev/null || true
    wait "$cp_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

log "building kubectl-gitops and the control-plane runner"
ours="$work/kubectl-gitops"
go build -o "$ours" ./cmd/kubectl-gitops
go build -o "$work/benchapply" ./hack/benchapply

kubeconfig="$work/kubeconfig"
"$work/benchapply" -out "$kubeconfig" 2> "$work/controlplane.log" &
cp_pid=$!
for _ in $(seq 1 120); do
  [[ -f "$kubeconfig" ]] && break
  kill -0 "$cp_pid" 2>/dev/null || { cat "$work/controlplane.log" >&2; exit 1; }
  sleep 0.5
done
[[ -f "$kubeconfig" ]] || { log "the control plane did not start in 60 s"; cat "$work/controlplane.log" >&2; exit 1; }
k() { "$kubectl" --kubeconfig "$kubeconfig" --cache-dir "$work/cache" "$@"; }

log "writing $N ConfigMaps and $N Deployments"
dir="$work/manifests"
mkdir -p "$dir"
for ((i = 0; i < N; i++)); do
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%03d\n  labels: {app: bench}\ndata:\n  index: "%d"\n  greeting: hello\n' "$i" "$i" > "$dir/cm-$i.yaml"
  printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-%03d\n  labels: {app: bench}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web-%03d}}\n  template:\n    metadata: {labels: {app: web-%03d}}\n    spec:\n      containers:\n      - name: app\n        image: registry.example/web:1.%d\n        ports: [{containerPort: 8080}]\n        resources: {requests: {cpu: 10m, memory: 16Mi}}\n' "$i" "$i" "$i" "$i" > "$dir/web-$i.yaml"
done
objects=$((2 * N))

# ours NS / theirs NS apply the folder to a namespace; stdout and stderr to a log.
ours_apply() { "$ours" apply "$dir" --name bench -n "$1" --kubeconfig "$kubeconfig" --cache-dir "$work/cache" > "$work/out.log" 2>&1; }
kubectl_apply() { k apply --server-side -f "$dir" -n "$1" > "$work/out.log" 2>&1; }

# check NS counts the objects in a namespace.
count() { k get configmaps,deployments -n "$1" -l app=bench -o name | wc -l; }

# Warm the discovery cache, the binaries and the API server.
for tool in ours kubectl; do
  k create namespace "warm-$tool" > /dev/null
  "${tool}_apply" "warm-$tool" || { cat "$work/out.log" >&2; exit 1; }
done

times="$work/times.txt"
: > "$times"
for ((r = 0; r < ROUNDS; r++)); do
  log "round $((r + 1)) of $ROUNDS"
  order=(ours kubectl)
  ((r % 2 == 1)) && order=(kubectl ours)
  for phase in first reapply; do
    for tool in "${order[@]}"; do
      ns="$tool-$r"
      [[ $phase == first ]] && k create namespace "$ns" > /dev/null
      { TIMEFORMAT="$phase $tool %3R %3U %3S"; time "${tool}_apply" "$ns"; } 2>> "$times" || { cat "$work/out.log" >&2; exit 1; }
      if [[ $phase == first && "$(count "$ns")" != "$objects" ]]; then
        log "$tool applied $(count "$ns") objects to $ns, want $objects"
        exit 1
      fi
      if [[ $phase == reapply && $tool == ours ]] && ! grep -q "0 created, 0 configured, $objects unchanged" "$work/out.log"; then
        log "the re-apply by kubectl-gitops was not a no-op:"
        tail -3 "$work/out.log" >&2
        exit 1
      fi
    done
  done
done

# median PHASE TOOL COLUMN: column 3 wall, 4 user, 5 system seconds; CPU is user + system.
median() {
  awk -v p="$1" -v t="$2" -v c="$3" '$1 == p && $2 == t { print (c == "cpu") ? $4 + $5 : $3 }' "$times" |
    sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
secs() { awk -v s="$1" 'BEGIN {printf "%.2f s", s}'; }

declare -A m
for phase in first reapply; do
  for tool in ours kubectl; do
    m["$phase $tool wall"]="$(median "$phase" "$tool" wall)"
    m["$phase $tool cpu"]="$(median "$phase" "$tool" cpu)"
  done
done

cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
section="$work/section.md"
{
  echo "$SECTION"
  echo
  echo "\`kubectl gitops apply DIR --name bench\` against \`kubectl apply --server-side -f DIR\`,"
  echo "measured in one run by \`hack/bench-apply.sh\` on one local control plane (kube-apiserver"
  echo "and etcd from \`hack/test-assets.sh\`, no controllers). Ratios are ours ÷ kubectl's: below"
  echo "1 is faster. Re-run the script to update this section."
  echo
  echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr); load average $load at the end; $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Versions: $("$ours" version 2>/dev/null | head -1); kubectl $("$kubectl" version --client | awk '/^Client/ {print $3}'); kube-apiserver from the same Kubernetes release"
  echo "- Set: a folder of $N ConfigMaps and $N Deployments, one file each ($objects objects), applied"
  echo "  to a fresh namespace per tool and round (first apply), then again unchanged (re-apply)"
  echo "- Ours also keeps the ApplySet inventory (a parent Secret written before and after) and"
  echo "  labels every object; it applies 16 objects at a time, kubectl one after another"
  echo "- Processes, wall time and CPU time (user + system), median of $ROUNDS rounds; which tool"
  echo "  goes first alternates by round; one shared, warm discovery cache"
  echo
  echo "| Phase | Measure | kubectl-gitops | kubectl apply --server-side | ours/kubectl |"
  echo "|---|---|---:|---:|---:|"
  for phase in first reapply; do
    label="first apply"
    [[ $phase == reapply ]] && label="re-apply (no-op)"
    echo "| $label | wall | $(secs "${m["$phase ours wall"]}") | $(secs "${m["$phase kubectl wall"]}") | **$(ratio "${m["$phase ours wall"]}" "${m["$phase kubectl wall"]}")** |"
    echo "| $label | CPU of the client | $(secs "${m["$phase ours cpu"]}") | $(secs "${m["$phase kubectl cpu"]}") | $(ratio "${m["$phase ours cpu"]}" "${m["$phase kubectl cpu"]}") |"
  done
  echo
  echo "Reading: wall time is what a user waits; the API server and etcd share the machine with"
  echo "the client, so on 2 cores the server's work bounds both tools, and the client CPU column"
  echo "shows what each tool itself costs. Read the ratios, not the absolute times."
  echo
  echo "Raw rounds (phase, tool, wall, user, system seconds):"
  echo
  echo '```'
  cat "$times"
  echo '```'
} > "$section"

write_section "$DOC" "$SECTION" "$section"
log "wrote \"$SECTION\" in $DOC"
cat "$section"
