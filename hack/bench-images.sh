#!/usr/bin/env bash
# bench-images.sh measures registry scanning (issue 11) in one run and writes
# the section "## Image scanning (issue 11)" of docs/benchmarks.md:
#
#   1. a real registry (Debian's docker-registry, the CNCF distribution
#      server) on 127.0.0.1, filled with REPOS repositories (default 500) of
#      TAGS tags each (default 200): one small image per repository, a
#      manifest PUT per tag, 16 at a time; not timed (several minutes on 2
#      cores);
#   2. ours: images.Scanner.ScanAll over every repository with a semver
#      policy (no minimumAge, no digest pin), CONCURRENCY at once (default 8);
#   3. the limit: a bare loop of go-containerregistry's remote.List over the
#      same repositories, as many at once;
#
# ROUNDS rounds of each (default 3, after a warm-up of each), which goes first
# alternating: wall time, requests, 429s and peak memory of each side.
#
#   hack/bench-images.sh                 # about 10 minutes on 2 busy cores, most of it the fill
#   ROUNDS=5 hack/bench-images.sh
#
# The measurement is BenchmarkImageScan in integration/images_bench_test.go;
# it never asserts on time. It needs no control plane: the integration
# package's TestMain is kept from starting one.
set -euo pipefail
source "$(dirname "$0")/lib/benchdoc.sh"
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
REPOS="${REPOS:-500}"
TAGS="${TAGS:-200}"
CONCURRENCY="${CONCURRENCY:-8}"
DOC="${DOC:-docs/benchmarks.md}"
SECTION="## Image scanning (issue 11)"

log() { echo "bench-images: $*" >&2; }
started=$SECONDS

registry="$(command -v docker-registry || true)"
[[ -n "$registry" ]] || registry=/usr/bin/docker-registry
if [[ ! -x "$registry" ]]; then
  log "docker-registry not found: apt-get install docker-registry"
  exit 1
fi
# Only the module cache from here on.
export GOPROXY=off GOFLAGS=-mod=readonly LC_ALL=C

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

out="$work/results"
log "running BenchmarkImageScan ($REPOS repositories × $TAGS tags, $ROUNDS rounds of each side at concurrency $CONCURRENCY)"
# No control plane (KUBEBUILDER_ASSETS and the asset cache pointed at
# nothing, CI unset so that TestMain does not insist on one).
if ! env -u CI KUBEBUILDER_ASSETS= KUBECTL_GITOPS_CACHE="$work/no-assets" \
  BENCH_IMAGES=1 BENCH_BOT_OUT="$out" BENCH_IMAGES_ROUNDS="$ROUNDS" BENCH_IMAGES_REPOS="$REPOS" \
  BENCH_IMAGES_TAGS="$TAGS" BENCH_IMAGES_CONCURRENCY="$CONCURRENCY" \
  timeout 2400 go test ./integration -run '^$' -bench '^BenchmarkImageScan$' -benchtime 1x -count 1 -timeout 2390s \
  > "$work/bench.txt" 2>&1; then
  log "the benchmark failed:"
  cat "$work/bench.txt" >&2
  exit 1
fi
grep -E '^(Benchmark|ok|PASS)|images_bench_test' "$work/bench.txt" >&2
grep -q '^BenchmarkImageScan' "$work/bench.txt" || { log "BenchmarkImageScan did not run"; exit 1; }
[[ -s "$out" ]] || { log "BenchmarkImageScan wrote no figures"; exit 1; }

# get KEY prints the last value of KEY in the results.
get() { awk -v k="$1" '$1 == k {v = $2} END {print v}' "$out"; }
secs() { awk -v v="$(get "$1")" 'BEGIN {printf "%.2f s", v / 1000}'; }
mib() { awk -v v="$(get "$1")" 'BEGIN {printf "%.1f MiB", v}'; }
num() { awk -v v="$(get "$1")" 'BEGIN {printf "%d", v}'; }
ratio() { awk -v a="$(get "$1")" -v b="$(get "$2")" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "—"}'; }
range() { awk -v a="$(get "$1")" -v b="$(get "$2")" 'BEGIN {printf "%.2f–%.2f s", a / 1000, b / 1000}'; }

under10="$(awk -v v="$(get ours_p50_ms)" 'BEGIN {print (v < 10000) ? "yes" : "**no**"}')"
within="$(awk -v a="$(get ours_p50_ms)" -v b="$(get limit_p50_ms)" 'BEGIN {print (a <= 1.3 * b) ? "yes" : "**no**"}')"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
registry_version="$("$registry" --version | sed 's|^[^ ]*/||')"
registry_package="$(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null || echo unknown)"
ggcr="$(go list -m -f '{{.Version}}' github.com/google/go-containerregistry)"
repos="$(num images_repos)"
tags="$(num images_tags)"
section="$work/section.md"
{
  echo "$SECTION"
  echo
  echo "Registry scanning measured in one run by \`hack/bench-images.sh\` (\`BenchmarkImageScan\` in"
  echo "integration/images_bench_test.go) against a real registry process on 127.0.0.1. The limit is"
  echo "a bare loop of go-containerregistry's \`remote.List\` over the same repositories at the same"
  echo "concurrency, in the same process and run. Re-run the script to update this section."
  echo
  echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr); load average $load at the end; $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Versions: $(go version | awk '{print $3}'); $registry_version (Debian package docker-registry $registry_package);"
  echo "  go-containerregistry $ggcr"
  echo "- Registry: filesystem storage in a temporary directory, no auth, no TLS (so go-containerregistry"
  echo "  tries https first and falls back to http, for both sides). $repos repositories"
  echo "  (\`team-NN/app-NNN\`) of $tags tags each ($((tags - 1)) versions 1.0.0…2.9.8 and \`latest\`): one small image per"
  echo "  repository, tagged by a manifest PUT per tag, 16 at a time; the fill took $(awk -v v="$(get images_fill_s)" 'BEGIN {printf "%.0f s", v}') and is not timed."
  echo "- Ours: \`images.Scanner.ScanAll\` with a semver policy (\`>=1.0.0\`, no minimumAge, no digest pin)"
  echo "  per repository, Concurrency $(num images_concurrency) (one host), a new Scanner per round: a cold cache, as at"
  echo "  the bot's start. Every result is checked (the highest version, all $tags tags)."
  echo "- The limit: \`remote.List\` per repository, $(num images_concurrency) at once (a channel semaphore), the lists kept."
  echo "- Rounds: a warm-up of each side, then $(num images_rounds) rounds of each, which goes first alternating."
  echo "  Requests and 429s are counted by a RoundTripper under both sides (ours also counts them in"
  echo "  its Results; the two counts are checked equal). Peak memory: the peak of heap objects"
  echo "  (runtime/metrics, sampled every millisecond) and of the process's resident set (VmHWM, reset"
  echo "  through /proc/self/clear_refs before each run), each less its value before the run"
  echo "  (after a GC); medians over the rounds. The results stay live until the peak is read."
  echo
  echo "| Metric ($repos repositories × $tags tags) | Ours (\`Scanner.ScanAll\`) | Limit (\`remote.List\` loop) | Ours / limit |"
  echo "|---|---:|---:|---:|"
  echo "| Wall time, p50 | **$(secs ours_p50_ms)** | $(secs limit_p50_ms) | **$(ratio ours_p50_ms limit_p50_ms)** |"
  echo "| Wall time, min–max | $(range ours_min_ms ours_max_ms) | $(range limit_min_ms limit_max_ms) | |"
  echo "| Requests per scan of all | $(num ours_requests) | $(num limit_requests) | $(ratio ours_requests limit_requests) |"
  echo "| 429 answers (all rounds) | $(num ours_429) | $(num limit_429) | |"
  echo "| Peak heap objects, Δ | $(mib ours_heap_mib) | $(mib limit_heap_mib) | $(ratio ours_heap_mib limit_heap_mib) |"
  echo "| Peak resident set, Δ | $(mib ours_rss_mib) | $(mib limit_rss_mib) | |"
  echo
  echo "Goals: a scan of all $repos repositories under 10 s: $under10; within 1.3× of the limit (p50): $within."
  echo
  echo "Reading. Both sides send the same requests per repository: a ping of /v2/ over https (refused: the"
  echo "registry speaks http), the same ping over http, and one tag list (200 tags fit in one page of"
  echo "go-containerregistry's 1000), so the wall time is the registry's and the loopback's, and the"
  echo "scanner's own work (the OCI tag grammar, the policy's choice, the cache) costs little of it."
  echo "Ours keeps more: each repository's tags as \`images.Tag\` values (name, created time and digest:"
  echo "56 bytes a tag where a name is 16), shared by its cache and its results, and the puller that"
  echo "listed them (reused by the lookups while the cache serves), where the limit keeps the bare"
  echo "names. The resident set grows only when the heap needs more than the process already holds, so"
  echo "its Δ depends on what ran before (the warm-ups leave the heap grown); the heap figure is the one"
  echo "to compare."
  echo
  echo "Benchmark line, from the same run:"
  echo
  echo '```'
  grep -E '^(goos|goarch|cpu|BenchmarkImageScan)' "$work/bench.txt"
  echo '```'
} > "$section"

write_section "$DOC" "$SECTION" "$section"
log "wrote \"$SECTION\" in $DOC in $((SECONDS - started)) s"
cat "$section"
