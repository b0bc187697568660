# benchdoc.sh, sourced by the hack/bench-*.sh scripts.
#
# write_section DOC SECTION FILE replaces the section SECTION (a "## …"
# heading, up to the next "## " heading) of the Markdown file DOC with the
# contents of FILE, or appends it; the other sections belong to other
# scripts. DOC is created with its preamble when missing.
write_section() {
  local doc="$1" section="$2" file="$3" tmp
  mkdir -p "$(dirname "$doc")"
  if [[ ! -f "$doc" ]]; then
    printf '# Benchmarks\n\nEach section is written by the script it names; machines are noisy, so every\nfigure is measured against its peer in the same run and read as a ratio.\n' > "$doc"
  fi
  tmp="$(mktemp)"
  awk -v section="$section" -v file="$file" '
    function emit() { while ((getline line < file) > 0) print line; close(file); done = 1 }
    $0 == section { emit(); skip = 1; next }
    skip && /^## / { skip = 0; print "" }
    !skip { print }
    END { if (!done) { print ""; emit() } }' "$doc" > "$tmp"
  cp "$tmp" "$doc"
  rm -f "$tmp"
}

# median_of prints the median of the integers on its standard input (the
# mean of the middle two, truncated, for an even count).
median_of() {
  sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'
}

# wait_kubeconfig FILE PID LOG waits up to 90 s for the control plane
# started as process PID (hack/benchdiff serve) to write its kubeconfig
# FILE; when the process dies or the time is up it prints LOG and fails.
wait_kubeconfig() {
  local file="$1" pid="$2" logfile="$3"
  for _ in $(seq 180); do
    [[ -f "$file" ]] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the control plane did not start:" >&2
      cat "$logfile" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "the control plane did not start in 90 s:" >&2
  cat "$logfile" >&2
  return 1
}
