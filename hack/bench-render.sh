#!/usr/bin/env bash
# bench-render.sh measures `kubectl gitops render` against its peer,
# `kubectl kustomize`, in one run on generated trees, and writes the section
# "## Render (issue 2)" of docs/benchmarks.md.
#
#   hack/bench-render.sh            # about 3 minutes on 2 cores
#   ROUNDS=5 hack/bench-render.sh   # more rounds, steadier medians
#
# It builds kubectl-gitops, takes kubectl from hack/test-assets.sh, generates
# 200 small apps and one real-world overlay set (hack/gentree), checks that
# both tools render the same objects in the same order for a sample, then
# times both as processes, interleaved overlay by overlay and alternating
# which goes first, and takes the median of the rounds. Last it runs the
# in-process Go benchmarks (render.Path against krusty). Machines are noisy:
# read the ratios, not the absolute times. Nothing is fetched from the
# network once hack/test-assets.sh has its cache.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"        # rounds over the 200 apps, per tool
RW_ROUNDS="${RW_ROUNDS:-15}" # rounds over the 6 real-world overlays
APPS="${APPS:-200}"
OBJECTS="${OBJECTS:-20}"
SAMPLE_EVERY="${SAMPLE_EVERY:-10}" # check every Nth app for equal output
BENCHTIME="${BENCHTIME:-3x}"
DOC="${DOC:-docs/benchmarks.md}"
SECTION="## Render (issue 2)"

log() { echo "bench-render: $*" >&2; }

assets="$(hack/test-assets.sh)"
kubectl="$assets/kubectl"
# Only the module cache from here on.
export GOPROXY=off GOFLAGS=-mod=readonly LC_ALL=C

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ours="$work/kubectl-gitops"
log "building kubectl-gitops"
go build -o "$ours" ./cmd/kubectl-gitops

log "generating $APPS apps × $OBJECTS objects and the real-world overlay set"
go run ./hack/gentree -out "$work/apps" -apps "$APPS" -objects "$OBJECTS" > "$work/apps.list"
go run ./hack/gentree -out "$work/realworld" -kind realworld > "$work/realworld.list"
mapfile -t app_overlays < "$work/apps.list"
mapfile -t rw_overlays < "$work/realworld.list"
rw_objects="$("$kubectl" kustomize "$work/realworld/${rw_overlays[-1]}" | grep -c '^kind:')"

# ids prints kind/namespace/name of each document, in order.
ids() {
  awk '
    function flush() { if (k != "") print k "/" ns "/" n; k = ns = n = ""; m = 0 }
    /^---/ { flush(); next }
    /^kind:/ { k = $2 }
    /^metadata:/ { m = 1; next }
    /^[^ ]/ { m = 0 }
    m && /^  name:/ { n = $2 }
    m && /^  namespace:/ { ns = $2 }
    END { flush() }' "$1"
}

# same TREE OVERLAY checks that both tools render the same objects (compared
# semantically by kubectl-gitops diff) in the same order.
same() {
  local tree="$1" overlay="$2" a="$work/ours.yaml" b="$work/kubectl.yaml"
  "$ours" render --root "$tree" "$tree/$overlay" > "$a"
  "$kubectl" kustomize "$tree/$overlay" > "$b"
  if ! "$ours" diff --root "$work" --color never "$a" "$b" > "$work/diff.txt" 2>&1; then
    log "$overlay: kubectl-gitops render and kubectl kustomize differ:"
    head -40 "$work/diff.txt" >&2
    exit 1
  fi
  if ! cmp -s <(ids "$a") <(ids "$b"); then
    log "$overlay: the same objects, in a different order:"
    diff <(ids "$a") <(ids "$b") | head -20 >&2
    exit 1
  fi
}

checked=0
for ((i = 0; i < ${#app_overlays[@]}; i += SAMPLE_EVERY)); do
  same "$work/apps" "${app_overlays[i]}"
  checked=$((checked + 1))
done
for o in "${rw_overlays[@]}"; do
  same "$work/realworld" "$o"
done
log "outputs equal for $checked of ${#app_overlays[@]} apps and all ${#rw_overlays[@]} real-world overlays"

# measure TREE ROUNDS OVERLAY... times every overlay with both tools, one
# after the other, the first tool alternating by round, and prints a line
# "OURS_US KUBECTL_US" of total microseconds per round.
measure() {
  local tree="$1" rounds="$2"
  shift 2
  local r o t0 t1 t2 a b
  for ((r = 0; r < rounds; r++)); do
    a=0 b=0
    for o in "$@"; do
      if ((r % 2 == 0)); then
        t0="${EPOCHREALTIME/[.,]/}"; "$ours" render --root "$tree" "$tree/$o" > /dev/null
        t1="${EPOCHREALTIME/[.,]/}"; "$kubectl" kustomize "$tree/$o" > /dev/null
        t2="${EPOCHREALTIME/[.,]/}"
        a=$((a + t1 - t0)) b=$((b + t2 - t1))
      else
        t0="${EPOCHREALTIME/[.,]/}"; "$kubectl" kustomize "$tree/$o" > /dev/null
        t1="${EPOCHREALTIME/[.,]/}"; "$ours" render --root "$tree" "$tree/$o" > /dev/null
        t2="${EPOCHREALTIME/[.,]/}"
        b=$((b + t1 - t0)) a=$((a + t2 - t1))
      fi
    done
    echo "$a $b"
  done
}

# median COLUMN < rounds prints the median of a column.
median() { sort -n -k"$1","$1" | awk -v c="$1" '{v[NR] = $c} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
minimum() { sort -n -k"$1","$1" | awk -v c="$1" 'NR == 1 {print $c}'; }

# Warm the page cache and the binaries before the first timed round.
measure "$work/apps" 1 "${app_overlays[@]:0:20}" > /dev/null

log "timing $APPS apps as processes, $ROUNDS rounds"
measure "$work/apps" "$ROUNDS" "${app_overlays[@]}" > "$work/apps.times"
log "timing the real-world overlays as processes, $RW_ROUNDS rounds"
measure "$work/realworld" "$RW_ROUNDS" "${rw_overlays[@]}" > "$work/rw.times"

log "running the in-process Go benchmarks (-benchtime $BENCHTIME)"
go test ./render -run '^$' -bench '^BenchmarkRender(Tree|RealWorld)$' -benchtime "$BENCHTIME" -count 1 | tee "$work/gobench.txt" >&2

# metric NAME UNIT prints a metric of a Go benchmark's result line.
metric() {
  awk -v name="$1" -v unit="$2" '$1 ~ "^"name"(-[0-9]+)?$" {for (i = 2; i < NF; i++) if ($(i + 1) == unit) print $i}' "$work/gobench.txt"
}

apps_ours="$(median 1 < "$work/apps.times")" apps_kubectl="$(median 2 < "$work/apps.times")"
apps_ours_min="$(minimum 1 < "$work/apps.times")" apps_kubectl_min="$(minimum 2 < "$work/apps.times")"
rw_ours="$(median 1 < "$work/rw.times")" rw_kubectl="$(median 2 < "$work/rw.times")"
rw_ours_min="$(minimum 1 < "$work/rw.times")" rw_kubectl_min="$(minimum 2 < "$work/rw.times")"
n_apps=${#app_overlays[@]} n_rw=${#rw_overlays[@]}

# fmt helpers: microseconds to seconds and to milliseconds per tree.
secs() { awk -v us="$1" 'BEGIN {printf "%.2f s", us / 1e6}'; }
per() { awk -v us="$1" -v n="$2" 'BEGIN {printf "%.1f ms", us / n / 1e3}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
ms() { awk -v ns="$1" 'BEGIN {printf "%.2f ms", ns / 1e6}'; }

tree_ns="$(metric BenchmarkRenderTree ns/tree)" tree_k_ns="$(metric BenchmarkRenderTree kustomize-ns/tree)"
tree_r="$(metric BenchmarkRenderTree ours/kustomize)"
rw_ns="$(metric BenchmarkRenderRealWorld ns/tree)" rw_k_ns="$(metric BenchmarkRenderRealWorld kustomize-ns/tree)"
rw_r="$(metric BenchmarkRenderRealWorld ours/kustomize)"
if [[ -z "$tree_ns" || -z "$rw_ns" ]]; then
  log "the Go benchmarks printed no ns/tree metric; see the output above"
  exit 1
fi

apps_ratio="$(ratio "$apps_ours" "$apps_kubectl")"
rw_ratio="$(ratio "$rw_ours" "$rw_kubectl")"
verdict() { awk -v r="$1" 'BEGIN {
  if (r <= 1.05) print "no slower than"; else if (r <= 1.15) print "slightly slower than"; else print "slower than" }'; }

cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
section="$work/section.md"
{
  echo "$SECTION"
  echo
  echo "\`kubectl gitops render DIR\` against \`kubectl kustomize DIR\`, measured by"
  echo "\`hack/bench-render.sh\` on trees from \`go run ./hack/gentree\`; ratios are ours ÷"
  echo "kubectl's, below 1 is faster. Re-run the script to update this section."
  echo
  echo "- Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr); $(date -u +%Y-%m-%d)"
  echo "- Versions: $("$ours" version 2>/dev/null | head -1); kubectl $("$kubectl" version --client | awk '/^Client/ {print $3}') (Kustomize $("$kubectl" version --client | awk '/^Kustomize/ {print $3}')); kustomize/api $(go list -m -f '{{.Version}}' sigs.k8s.io/kustomize/api) in ours; $(go version | awk '{print $3}')"
  echo "- Trees: $n_apps apps of $OBJECTS objects (base + overlay with namePrefix, labels, a"
  echo "  strategic-merge and a JSON 6902 patch, images, a configMapGenerator); one"
  echo "  real-world set of $n_rw overlays (60-object base, 3 components, 3 environments"
  echo "  × 2 regions, replacements, generators; $rw_objects objects in prod)"
  echo "- Output checked equal (objects by \`kubectl gitops diff\`, and order) for $checked apps"
  echo "  and all $n_rw real-world overlays before timing"
  echo
  echo "| Tree | Measure | kubectl-gitops | kubectl kustomize | ours/kubectl |"
  echo "|---|---|---:|---:|---:|"
  echo "| $n_apps apps | processes, total, median of $ROUNDS (best) | $(secs "$apps_ours") ($(secs "$apps_ours_min")) | $(secs "$apps_kubectl") ($(secs "$apps_kubectl_min")) | **$apps_ratio** ($(ratio "$apps_ours_min" "$apps_kubectl_min")) |"
  echo "| $n_apps apps | processes, per tree | $(per "$apps_ours" "$n_apps") | $(per "$apps_kubectl" "$n_apps") | $apps_ratio |"
  echo "| real-world | processes, total, median of $RW_ROUNDS (best) | $(secs "$rw_ours") ($(secs "$rw_ours_min")) | $(secs "$rw_kubectl") ($(secs "$rw_kubectl_min")) | **$rw_ratio** ($(ratio "$rw_ours_min" "$rw_kubectl_min")) |"
  echo "| real-world | processes, per overlay | $(per "$rw_ours" "$n_rw") | $(per "$rw_kubectl" "$n_rw") | $rw_ratio |"
  echo "| $n_apps apps | in-process, per tree (render.Path vs krusty) | $(ms "$tree_ns") | $(ms "$tree_k_ns") | $tree_r |"
  echo "| real-world | in-process, per overlay (render.Path vs krusty) | $(ms "$rw_ns") | $(ms "$rw_k_ns") | $rw_r |"
  echo
  echo "Reading: as a process, \`kubectl gitops render\` is $(verdict "$apps_ratio") \`kubectl"
  echo "kustomize\` on small apps (×$apps_ratio per tree) and $(verdict "$rw_ratio") it on the"
  echo "real-world overlays (×$rw_ratio). A process run is dominated by start-up (loading the"
  echo "binary and initialising its packages) plus one kustomize build; in-process, where"
  echo "start-up is gone, render.Path costs ×$tree_r of a bare krusty build per small app and"
  echo "×$rw_r per real-world overlay: the pre-build safety check of every kustomization,"
  echo "the confined filesystem, and decoding kustomize's YAML into objects. The goal is"
  echo "ours/kubectl ≤ 1 per tree; the process ratios are the ones a user feels."
  echo
  echo "In-process figures from \`go test ./render -run '^\$' -bench Render -benchtime $BENCHTIME\`:"
  echo
  echo '```'
  grep -E '^(Benchmark|goos|goarch|cpu)' "$work/gobench.txt"
  echo '```'
} > "$section"

# Replace the section (up to the next "## " heading) or append it.
mkdir -p "$(dirname "$DOC")"
if [[ ! -f "$DOC" ]]; then
  printf '# Benchmarks\n\nEach section is written by the script it names; machines are noisy, so every\nfigure is measured against its peer in the same run and read as a ratio.\n' > "$DOC"
fi
awk -v section="$SECTION" -v file="$section" '
  function emit() { while ((getline line < file) > 0) print line; close(file); done = 1 }
  $0 == section { emit(); skip = 1; next }
  skip && /^## / { skip = 0; print "" }
  !skip { print }
  END { if (!done) { print ""; emit() } }' "$DOC" > "$work/doc.md"
cp "$work/doc.md" "$DOC"
log "wrote \"$SECTION\" in $DOC"
cat "$section"
