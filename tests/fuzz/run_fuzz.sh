#!/bin/sh
# run_fuzz.sh BINARY CORPUS SECONDS: a bounded libFuzzer run that starts from
# the committed seeds and writes new inputs to a scratch directory.
set -eu
bin=$1 corpus=$2 secs=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
exec_out=0
"$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$scratch/" "$scratch" "$corpus" || exec_out=$?
if [ "$exec_out" -ne 0 ]; then
    for f in "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-*; do
        [ -e "$f" ] && { echo "reproducer: $f"; od -c "$f" | head -20; }
    done
fi
exit "$exec_out"
