#!/usr/bin/env bash
# Builds a human-text corpus (one document per line: GROUP consecutive verses of the King James
# Bible, public domain) from Debian's bible-kjv-text package (apt-get install bible-kjv).
# Usage: make_kjv_corpus.sh OUT.txt [SPEC...] (default spec: Genesis and Exodus), GROUP=3.
# tests/data/redteam/kjv_docs.txt was made with the defaults.
set -euo pipefail
out=$1; shift || true
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=("gen1:1-50:26" "exo1:1-40:38")
group=${GROUP:-3}
command -v bible >/dev/null || { echo "bible not installed: apt-get install bible-kjv" >&2; exit 2; }
for s in "${specs[@]}"; do bible -l100000 "$s"; done |
  sed -n 's/^ *[0-9][0-9]* //p' |
  awk -v g="$group" '{ buf = buf (n ? " " : "") $0; n++; if (n == g) { print buf; buf = ""; n = 0 } } END { if (n) print buf }' > "$out"
wc -l "$out" >&2
