#!/bin/sh
# run_fuzz.sh BINARY CORPUS SECONDS [WORKDIR]: a bounded libFuzzer run that
# starts from the committed seeds and never writes into them. New inputs and
# any reproducer (crash-*, leak-*, timeout-*, oom-*) go to WORKDIR, which is
# kept; without WORKDIR a scratch directory is used, removed after a clean
# run and kept (its path printed) after a failure, so the reproducer survives.
set -eu
bin=$1 corpus=$2 secs=$3
if [ $# -ge 4 ]; then
    work=$4
    mkdir -p "$work"
    keep=1
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/warden-fuzz.XXXXXX")
    keep=0
fi
mkdir -p "$work/corpus"
rc=0
"$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$work/" "$work/corpus" "$corpus" || rc=$?
found=0
for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -e "$f" ] || continue
    found=1
    echo "reproducer: $f"
    echo "  replay with: $bin $f"
    od -c "$f" | head -20
done
if [ "$rc" -eq 0 ] && [ "$found" -eq 0 ] && [ "$keep" -eq 0 ]; then
    rm -rf "$work"
elif [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    echo "fuzz run of $(basename "$bin") failed (exit $rc); its inputs are in $work"
    [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
