#!/usr/bin/env bash
# bench-sandbox.sh measures what the render sandbox (issue 7) adds to a bot
# preview and writes the section "## Render sandbox (issue 7)" of
# docs/benchmarks.md: BenchmarkApps in internal/sandbox renders 10 small
# kustomize apps in-process, in one sandbox child for the whole batch (as a
# preview does) and in one child per app, in the same run.
#
#   hack/bench-sandbox.sh                 # about 30 s on 2 cores
#   COUNT=5 hack/bench-sandbox.sh
set -euo pipefail
source "$(dirname "$0")/lib/benchdoc.sh"
cd "$(dirname "$0")/.."

COUNT="${COUNT:-3}"
BENCHTIME="${BENCHTIME:-10x}"
DOC="${DOC:-docs/benchmarks.md}"
SECTION="## Render sandbox (issue 7)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "bench-sandbox: running BenchmarkApps (-benchtime $BENCHTIME -count $COUNT)" >&2
go test ./internal/sandbox -run '^$' -bench '^BenchmarkApps$' -benchtime "$BENCHTIME" -count "$COUNT" | tee "$work/bench.txt" >&2

# med VARIANT COLUMN prints the median of a column (3: ns/op, 5: cpu-ms/op)
# over the runs of one variant.
med() {
  awk -v v="BenchmarkApps/$1" -v c="$2" '$1 ~ "^"v"(-[0-9]+)?$" {print $c}' "$work/bench.txt" |
    sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
ms() { awk -v ns="$1" 'BEGIN {printf "%.1f ms", ns / 1e6}'; }
msd() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f ms", (a - b) / 1e6}'; }
cpu() { awk -v x="$1" 'BEGIN {printf "%.1f ms", x}'; }
cpud() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f ms", a - b}'; }

in_w="$(med in-process 3)" in_c="$(med in-process 5)"
ba_w="$(med sandboxed-batched 3)" ba_c="$(med sandboxed-batched 5)"
pa_w="$(med sandboxed-per-app 3)" pa_c="$(med sandboxed-per-app 5)"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
section="$work/section.md"
{
  echo "$SECTION"
  echo
  echo "What the render sandbox adds to a bot preview: 10 small kustomize apps rendered"
  echo "in-process, in one sandbox child for the whole batch (what a preview does), and in"
  echo "one child per app, measured in one run by \`hack/bench-sandbox.sh\`"
  echo "(\`BenchmarkApps\` in internal/sandbox; medians of $COUNT runs of $BENCHTIME). Goal: < 100 ms"
  echo "per preview."
  echo
  echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "| 10 apps | wall | CPU | sandbox cost (wall / CPU) |"
  echo "|---|---:|---:|---:|"
  echo "| in-process (\`--sandbox=false\`, trusted) | $(ms "$in_w") | $(cpu "$in_c") | — |"
  echo "| **one child per preview** (the bot) | $(ms "$ba_w") | $(cpu "$ba_c") | **$(msd "$ba_w" "$in_w")** / $(cpud "$ba_c" "$in_c") |"
  echo "| one child per app | $(ms "$pa_w") | $(cpu "$pa_c") | $(msd "$pa_w" "$in_w") / $(cpud "$pa_c" "$in_c") |"
  echo
  echo "Almost all of the cost is the child's start-up (the runtime and package"
  echo "initialisation of the program, its network namespace, kustomize's first build);"
  echo "each further app in the same child costs a few milliseconds more than in-process."
  echo
  echo '```'
  grep -E '^(Benchmark|goos|goarch|cpu)' "$work/bench.txt"
  echo '```'
} > "$section"
write_section "$DOC" "$SECTION" "$section"
echo "bench-sandbox: wrote \"$SECTION\" in $DOC" >&2
cat "$section"
