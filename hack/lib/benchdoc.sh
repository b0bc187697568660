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
