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
source "$(dirname "$0")/lib/benchdoc.sh"
cd "$(dirname "$0")/.."

declare -A gobench
declare -a apps_med apps_min rw_med rw_min

ROUNDS="${ROUNDS:-3}"        # rounds over the 200 apps, per tool
RW_ROUNDS="${RW_ROUNDS:-9}"  # rounds over the 6 real-world overlays
APPS="${APPS:-200}"
OBJECTS="${OBJECTS:-20}"
SAMPLE_EVERY="${SAMPLE_EVERY:-10}" # check every Nth app for equal output
BENCHTIME="${BENCHTIME:-2x}" # even: each tool goes first as often
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

# measure TREE ROUNDS OVERLAY... runs every overlay with three commands back
# to back: ours trusted (--sandbox=false, in-process), ours by default (in a
# sandbox: a child process with no network and bounded resources) and
# kubectl kustomize, the order rotating by round, and prints per round
# "OURS_WALL KUBECTL_WALL OURS_CPU KUBECTL_CPU SANDBOX_WALL SANDBOX_CPU" in
# milliseconds. Bash's time keyword measures without forking; CPU is user +
# system of the process (children included), which other load on a shared
# machine disturbs less than wall time.
measure() {
  local tree="$1" rounds="$2" r o i times="$work/times.txt"
  shift 2
  ours_run() { "$ours" render --sandbox=false --root "$tree" "$tree/$o" > /dev/null 2> "$work/stderr"; }
  sandbox_run() { "$ours" render --root "$tree" "$tree/$o" > /dev/null 2> "$work/stderr"; }
  kubectl_run() { "$kubectl" kustomize "$tree/$o" > /dev/null 2> "$work/stderr"; }
  local -a tools=(ours sandbox kubectl)
  for ((r = 0; r < rounds; r++)); do
    : > "$times"
    for o in "$@"; do
      for ((i = 0; i < 3; i++)); do
        local tool="${tools[(i + r) % 3]}"
        { TIMEFORMAT="$tool %3R %3U %3S"; time "${tool}_run"; } 2>> "$times"
      done
    done
    awk '{w[$1] += $2; c[$1] += $3 + $4}
      END {printf "%d %d %d %d %d %d\n", w["ours"] * 1000, w["kubectl"] * 1000, c["ours"] * 1000, c["kubectl"] * 1000, w["sandbox"] * 1000, c["sandbox"] * 1000}' "$times"
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

n_apps=${#app_overlays[@]} n_rw=${#rw_overlays[@]}
# Columns of the rounds: 1 ours wall, 2 kubectl wall, 3 ours CPU, 4 kubectl
# CPU, 5 ours sandboxed wall, 6 ours sandboxed CPU.
for c in 1 2 3 4 5 6; do
  apps_med[c]="$(median "$c" < "$work/apps.times")" apps_min[c]="$(minimum "$c" < "$work/apps.times")"
  rw_med[c]="$(median "$c" < "$work/rw.times")" rw_min[c]="$(minimum "$c" < "$work/rw.times")"
done

secs() { awk -v ms="$1" 'BEGIN {printf "%.2f s", ms / 1e3}'; }          # ms → s
per() { awk -v ms="$1" -v n="$2" 'BEGIN {printf "%.1f ms", ms / n}'; }  # ms total → ms each
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
ms() { awk -v ns="$1" 'BEGIN {printf "%.1f ms", ns / 1e6}'; }            # ns → ms
num() { awk -v x="$1" 'BEGIN {printf "%.2f", x}'; }

for name in Tree RealWorld; do
  for unit in ns/tree kustomize-ns/tree ours/kustomize cpu-ns/tree kustomize-cpu-ns/tree cpu-ours/kustomize; do
    v="$(metric "BenchmarkRender$name" "$unit")"
    if [[ -z "$v" ]]; then
      log "BenchmarkRender$name printed no $unit metric; see the output above"
      exit 1
    fi
    gobench["$name $unit"]="$v"
  done
done

apps_wall="$(ratio "${apps_med[1]}" "${apps_med[2]}")" apps_cpu="$(ratio "${apps_med[3]}" "${apps_med[4]}")"
rw_wall="$(ratio "${rw_med[1]}" "${rw_med[2]}")" rw_cpu="$(ratio "${rw_med[3]}" "${rw_med[4]}")"
verdict() { awk -v r="$1" 'BEGIN {
  if (r <= 1.05) print "no slower than"; else if (r <= 1.15) print "slightly slower than"; else print "slower than" }'; }

cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
section="$work/section.md"
{
  echo "$SECTION"
  echo
  echo "\`kubectl gitops render DIR\` against \`kubectl kustomize DIR\`, measured in one run by"
  echo "\`hack/bench-render.sh\` on trees from \`go run ./hack/gentree\`. Ratios are ours ÷"
  echo "kubectl's: below 1 is faster. Re-run the script to update this section."
  echo
  echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr); load average $load at the end; $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Versions: $("$ours" version 2>/dev/null | head -1); kubectl $("$kubectl" version --client | awk '/^Client/ {print $3}') (Kustomize $("$kubectl" version --client | awk '/^Kustomize/ {print $3}')); sigs.k8s.io/kustomize/api $(go list -m -f '{{.Version}}' sigs.k8s.io/kustomize/api) in ours"
  echo "- Trees: $n_apps apps of $OBJECTS objects (a base, and an overlay with namePrefix, labels,"
  echo "  a strategic-merge and a JSON 6902 patch, images, a configMapGenerator); one"
  echo "  real-world set of $n_rw overlays (a 60-object base, 3 components, 3 environments ×"
  echo "  2 regions, replacements, generators; $rw_objects objects in prod)"
  echo "- Before timing, outputs were checked equal (the objects by \`kubectl gitops diff\`,"
  echo "  and their order) for $checked of the apps and all $n_rw real-world overlays"
  echo "- Processes: each overlay rendered by both tools back to back, which goes first"
  echo "  alternating by round; wall time, and CPU time (user + system) of the process"
  echo
  echo "| Tree | Measure | kubectl-gitops | kubectl kustomize | ours/kubectl |"
  echo "|---|---|---:|---:|---:|"
  echo "| $n_apps apps | processes, wall, all $n_apps, median of $ROUNDS rounds (best) | $(secs "${apps_med[1]}") ($(secs "${apps_min[1]}")) | $(secs "${apps_med[2]}") ($(secs "${apps_min[2]}")) | **$apps_wall** ($(ratio "${apps_min[1]}" "${apps_min[2]}")) |"
  echo "| $n_apps apps | processes, wall per tree | $(per "${apps_med[1]}" "$n_apps") | $(per "${apps_med[2]}" "$n_apps") | $apps_wall |"
  echo "| $n_apps apps | processes, CPU per tree | $(per "${apps_med[3]}" "$n_apps") | $(per "${apps_med[4]}" "$n_apps") | **$apps_cpu** |"
  echo "| real-world | processes, wall, all $n_rw, median of $RW_ROUNDS rounds (best) | $(secs "${rw_med[1]}") ($(secs "${rw_min[1]}")) | $(secs "${rw_med[2]}") ($(secs "${rw_min[2]}")) | **$rw_wall** ($(ratio "${rw_min[1]}" "${rw_min[2]}")) |"
  echo "| real-world | processes, wall per overlay | $(per "${rw_med[1]}" "$n_rw") | $(per "${rw_med[2]}" "$n_rw") | $rw_wall |"
  echo "| real-world | processes, CPU per overlay | $(per "${rw_med[3]}" "$n_rw") | $(per "${rw_med[4]}" "$n_rw") | **$rw_cpu** |"
  echo "| $n_apps apps | **default (sandboxed)**, wall per tree | $(per "${apps_med[5]}" "$n_apps") | $(per "${apps_med[2]}" "$n_apps") | **$(ratio "${apps_med[5]}" "${apps_med[2]}")** |"
  echo "| $n_apps apps | default (sandboxed), CPU per tree | $(per "${apps_med[6]}" "$n_apps") | $(per "${apps_med[4]}" "$n_apps") | $(ratio "${apps_med[6]}" "${apps_med[4]}") |"
  echo "| real-world | **default (sandboxed)**, wall per overlay | $(per "${rw_med[5]}" "$n_rw") | $(per "${rw_med[2]}" "$n_rw") | **$(ratio "${rw_med[5]}" "${rw_med[2]}")** |"
  echo "| real-world | default (sandboxed), CPU per overlay | $(per "${rw_med[6]}" "$n_rw") | $(per "${rw_med[4]}" "$n_rw") | $(ratio "${rw_med[6]}" "${rw_med[4]}") |"
  for name in Tree RealWorld; do
    label="200 apps" each="tree"
    [[ $name == RealWorld ]] && label="real-world" each="overlay"
    echo "| $label | in-process, wall per $each (render.Path vs krusty) | $(ms "${gobench["$name ns/tree"]}") | $(ms "${gobench["$name kustomize-ns/tree"]}") | $(num "${gobench["$name ours/kustomize"]}") |"
    echo "| $label | in-process, CPU per $each | $(ms "${gobench["$name cpu-ns/tree"]}") | $(ms "${gobench["$name kustomize-cpu-ns/tree"]}") | $(num "${gobench["$name cpu-ours/kustomize"]}") |"
  done
  echo
  echo "The rows \"processes\" are the trusted, in-process render (\`--sandbox=false\`); the"
  echo "rows \"default (sandboxed)\" run each render in a child process with no network and"
  echo "bounded memory, CPU, time and output, as \`kubectl gitops render\` does by default. The"
  echo "three commands run back to back per tree, so the sandbox's cost is their difference:"
  echo "$(per "$((apps_med[5] - apps_med[1]))" "$n_apps") of wall time and $(per "$((apps_med[6] - apps_med[3]))" "$n_apps") of CPU per small tree, $(per "$((rw_med[5] - rw_med[1]))" "$n_rw") and"
  echo "$(per "$((rw_med[6] - rw_med[3]))" "$n_rw") per real-world overlay (a second process start, the child's network"
  echo "namespace, and kustomize's set-up paid in the child)."
  echo
  echo "Reading: run as a process, the way a user or CI runs it, the trusted \`kubectl gitops render --sandbox=false\` is"
  echo "$(verdict "$apps_wall") \`kubectl kustomize\` on small apps (×$apps_wall wall, ×$apps_cpu CPU per"
  echo "tree) and $(verdict "$rw_wall") it on the real-world overlays (×$rw_wall wall, ×$rw_cpu CPU)."
  echo "In-process, without start-up, render.Path costs ×$(num "${gobench["Tree cpu-ours/kustomize"]}") of a bare krusty build's CPU"
  echo "per small app and ×$(num "${gobench["RealWorld cpu-ours/kustomize"]}") per real-world overlay; the difference is what"
  echo "render adds around the same krusty build: the safety check of every kustomization"
  echo "before the build, the confined filesystem, and turning kustomize's output into"
  echo "objects. The goal is ours/kubectl ≤ 1 per tree. On a shared 2-core machine wall"
  echo "times swing between runs; the CPU ratios and the interleaved order keep the"
  echo "comparison fair, so read the ratios, not the absolute times."
  echo
  echo "In-process figures, from \`go test ./render -run '^\$' -bench Render -benchtime $BENCHTIME\`:"
  echo
  echo '```'
  grep -E '^(Benchmark|goos|goarch|cpu)' "$work/gobench.txt"
  echo '```'
} > "$section"

write_section "$DOC" "$SECTION" "$section"
log "wrote \"$SECTION\" in $DOC"
cat "$section"
