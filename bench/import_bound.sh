#!/usr/bin/env bash
# How fast could `mailtrail import` be if the store kept almost nothing?
# Builds a throw-away mailtrail with bench/patches/import-bound.diff applied
# (a new message keeps its row and its lookup keys, nothing else: no
# recipients, deliveries, attachments or full-text rows) and times it beside
# the real build on the same three inputs: a Postfix log, an Exchange message
# tracking folder and a Microsoft 365 extended report. If even the bound build
# is slower than a target rate, no trimming of the write path can reach it.
#
# Usage: bench/import_bound.sh [POSTFIX_LINES] [MSGTRK_SIZE] [M365_ROWS] [ROUNDS]
#        (defaults 1000000 1G 1000000 2)
# Environment: BOUND_TARGET_DIR (cargo target dir of the bound build, default
# $BENCH_WORK/target-bound: a full release build the first time).
# Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PF_LINES=${1:-1000000}
MSGTRK_SIZE=${2:-1G}
ROWS=${3:-1000000}
ROUNDS=${4:-2}
START=${EXCHANGE_START:-2026-10-01}
for n in "$PF_LINES" "$ROWS" "$ROUNDS"; do
    case $n in ''|*[!0-9]*) die "expected a number, got '$n'";; esac
done

find_mailtrail
need_tools python3
W=$BENCH_WORK/import-bound
BOUND_TARGET_DIR=${BOUND_TARGET_DIR:-$BENCH_WORK/target-bound}
mkdir -p "$W"

say "building the bound variant (worktree $W/src, target $BOUND_TARGET_DIR)"
rm -rf "$W/src"
git -C "$REPO_DIR" worktree prune
git -C "$REPO_DIR" worktree add --detach "$W/src" HEAD >&2
git -C "$W/src" apply "$BENCH_DIR/patches/import-bound.diff"
(cd "$W/src" && CARGO_TARGET_DIR=$BOUND_TARGET_DIR cargo build --release --bin mailtrail >&2)
BOUND=$W/mailtrail-bound
cp "$BOUND_TARGET_DIR/release/mailtrail" "$BOUND"
git -C "$REPO_DIR" worktree remove --force "$W/src"

BYTES=$(python3 -c 'import sys
s=sys.argv[1].strip(); u=s.lstrip("0123456789_"); n=int(s[:len(s)-len(u)].replace("_",""))
m={"":1,"k":10**3,"m":10**6,"g":10**9,"ki":2**10,"mi":2**20,"gi":2**30}[u.lower().rstrip("b")]
print(n*m)' "$MSGTRK_SIZE")

say "generating the inputs in $W/gen"
rm -rf "$W/gen"
mt "$W/unused" generate --postfix-lines "$PF_LINES" --employees "$EMPLOYEES" --days "$DAYS" \
    --seed "$SEED" "$W/gen/pf" >&2
mt "$W/unused" generate --msgtrk-bytes "$BYTES" --employees "$EMPLOYEES" --days "$DAYS" \
    --start "$START" --seed "$SEED" "$W/gen/msgtrk" >&2
mt "$W/unused" generate --m365-rows "$ROWS" --employees "$EMPLOYEES" --days "$DAYS" \
    --start "$START" --seed "$SEED" "$W/gen/m365" >&2

declare -A INPUT UNITS COUNT
INPUT[postfix]=$W/gen/pf/maillog
INPUT[msgtrk]=$W/gen/msgtrk/msgtrk
INPUT[m365]=$W/gen/m365/m365/extended_report.csv
COUNT[postfix]=$(wc -l <"${INPUT[postfix]}")
COUNT[msgtrk]=$(find "${INPUT[msgtrk]}" -type f -print0 | xargs -0 cat | wc -l)
COUNT[m365]=$(($(wc -l <"${INPUT[m365]}") - 1))
UNITS[postfix]=lines; UNITS[msgtrk]=lines; UNITS[m365]=rows

echo "## Import bound: the real store against one that keeps only message rows and keys"
echo
echo "Load average at start $(cut -d' ' -f1-3 /proc/loadavg). Builds: real \`$MAILTRAIL\`, bound \`$BOUND\` (HEAD $(git -C "$REPO_DIR" rev-parse --short HEAD) + bench/patches/import-bound.diff). Each import into a fresh data directory, input in the page cache, builds alternating, $ROUNDS rounds."
echo
echo "| input | build | round | wall (s) | CPU (s) | per second | peak RSS (MiB) | messages |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for kind in postfix msgtrk m365; do
    warm "${INPUT[$kind]}"
    for round in $(seq 1 "$ROUNDS"); do
        for build in real bound; do
            bin=$MAILTRAIL
            [ "$build" = bound ] && bin=$BOUND
            data=$W/data-$kind-$build
            rm -rf "$data"
            say "$kind, $build build, round $round (load $(cut -d' ' -f1-3 /proc/loadavg))"
            timed "$W/$kind-$build" "$bin" --data-dir "$data" --timezone "$TZ_NAME" \
                --org-domain "$ORG" import "${INPUT[$kind]}"
            read -r secs kib user sys <"$W/$kind-$build"
            msgs=$(sed -n 's/.*→ \([0-9]*\) new message.*/\1/p' "$W/$kind-$build.out" "$W/$kind-$build.err" | tail -1)
            python3 - "$kind" "$build" "$round" "$secs" "$user" "$sys" "${COUNT[$kind]}" "${UNITS[$kind]}" "$kib" "${msgs:-?}" <<'EOF'
import sys
kind, build, rnd, secs, user, sys_s, count, units, kib, msgs = sys.argv[1:]
secs, cpu = float(secs), float(user) + float(sys_s)
print(f"| {kind} ({int(count):,} {units}) | {build} | {rnd} | {secs:.2f} | {cpu:.2f} | "
      f"{int(count) / secs:,.0f} {units}/s | {int(kib) / 1024:.0f} | {msgs} |")
EOF
            rm -rf "$data"
        done
    done
done
echo
echo "Load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
say "done (work dir $W)"
