#!/usr/bin/env bash
# Runs bench/maillog.sh, bench/maildir.sh, bench/search.sh, bench/serve.sh and
# bench/exchange.sh (with their defaults) in sequence and writes
# bench/results/RESULTS-<date>.md (Markdown, ready for docs/PERFORMANCE.md).
# Usage: bench/run-all.sh [LOG_LINES] [MESSAGES]       (defaults 1000000 20000)
#        BENCH_BIG=1 bench/run-all.sh   also runs the log benchmark with 10x LOG_LINES
set -euo pipefail
. "$(dirname "$0")/lib.sh"

LINES=${1:-1000000}
MSGS=${2:-20000}
find_mailtrail
need_tools pflogsumm mu notmuch hyperfine python3
mkdir -p "$BENCH_WORK" "$BENCH_DIR/results"
OUT=$BENCH_DIR/results/RESULTS-$(date +%Y-%m-%d).md
[ -e "$OUT" ] && OUT=$BENCH_DIR/results/RESULTS-$(date +%Y-%m-%d-%H%M).md
TMP=$BENCH_WORK/results.partial.md

{
    echo "# mailtrail benchmark, $(date +%Y-%m-%d)"
    echo
    echo "Generated with \`bench/run-all.sh $LINES $MSGS\`$([ "${BENCH_BIG:-0}" = 1 ] && echo " (BENCH_BIG=1)"). Same generated data for every tool in each section; the page cache is warmed before timing."
    echo
    echo "## Machine"
    echo
    machine_md
    echo
} >"$TMP"

bash "$BENCH_DIR/maillog.sh" "$LINES" >>"$TMP"
if [ "${BENCH_BIG:-0}" = 1 ]; then
    bash "$BENCH_DIR/maillog.sh" "$((LINES * 10))" >>"$TMP"
fi
bash "$BENCH_DIR/maildir.sh" "$MSGS" >>"$TMP"
bash "$BENCH_DIR/search.sh" "$MSGS" >>"$TMP"
bash "$BENCH_DIR/serve.sh" >>"$TMP"
bash "$BENCH_DIR/exchange.sh" >>"$TMP"
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)." >>"$TMP"

mv "$TMP" "$OUT"
cat "$OUT"
echo >&2
echo "wrote $OUT" >&2
