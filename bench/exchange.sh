#!/usr/bin/env bash
# Exchange Server message tracking logs and the Microsoft 365 historical search
# extended report: `mailtrail import` throughput, CPU and peak memory, next to
# the Postfix reference rate measured in the same run (bench/maillog.sh), at
# two sizes each (the 10x cost curve), with every count checked against what
# the generator knows it wrote.
# Usage: bench/exchange.sh [MSGTRK_SIZE] [M365_ROWS] [POSTFIX_LINES]
#        (defaults 1G 1000000 1000000; one tenth of the first two is run too)
# Prints a Markdown section on stdout; progress on stderr.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MSGTRK_SIZE=${1:-1G}
ROWS=${2:-1000000}
PF_LINES=${3:-1000000}
# A fixed first day: the same seed then gives the same bytes on every run.
START=${EXCHANGE_START:-2026-10-01}
case $ROWS in ''|*[!0-9]*) die "M365_ROWS must be a number, got '$ROWS'";; esac
case $PF_LINES in ''|*[!0-9]*) die "POSTFIX_LINES must be a number, got '$PF_LINES'";; esac

find_mailtrail
need_tools python3
W=$BENCH_WORK/exchange
rm -rf "$W"
mkdir -p "$W"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# size in bytes of MSGTRK_SIZE, and a tenth of it (same units as `generate --msgtrk-bytes`)
BIG_BYTES=$(python3 -c 'import sys
s=sys.argv[1].strip(); u=s.lstrip("0123456789_"); n=int(s[:len(s)-len(u)].replace("_",""))
m={"":1,"k":10**3,"m":10**6,"g":10**9,"ki":2**10,"mi":2**20,"gi":2**30}[u.lower().rstrip("b")]
print(n*m)' "$MSGTRK_SIZE")
SMALL_BYTES=$((BIG_BYTES / 10))
SMALL_ROWS=$((ROWS / 10))

say "Postfix reference: bench/maillog.sh $PF_LINES"
bash "$BENCH_DIR/maillog.sh" "$PF_LINES" >"$W/maillog.md"
PF_ROW=$(grep '^| mailtrail import |' "$W/maillog.md" | head -1)
PF_SECS=$(echo "$PF_ROW" | awk -F'|' '{gsub(/ /,"",$3); print $3}')
PF_CPU=$(echo "$PF_ROW" | awk -F'|' '{gsub(/ /,"",$4); print $4}')
PF_RATE=$(echo "$PF_ROW" | awk -F'|' '{gsub(/ /,"",$5); print $5}')
PF_RSS=$(echo "$PF_ROW" | awk -F'|' '{gsub(/ /,"",$6); print $6}')
PF_NLINES=$(sed -n 's/^## Postfix log: \([0-9]*\) lines.*/\1/p' "$W/maillog.md")
[ -n "$PF_RATE" ] || die "no Postfix reference rate in $W/maillog.md"

ROWS_MD=()
CHECKS_MD=()
FAILED=0

# check KIND TAG: stats of the import against the generator's truth file
check() {
    local kind=$1 tag=$2
    python3 - "$W/$kind-$tag.truth.json" "$W/$kind-$tag.stats.json" "$W/$kind-$tag.time.out" "$kind $tag" <<'EOF'
import json, sys
truth = json.load(open(sys.argv[1]))
stats = json.load(open(sys.argv[2]))
out = open(sys.argv[3]).read()
label = sys.argv[4]
rows, bad = [], 0
def row(name, want, got):
    global bad
    ok = want == got
    bad += not ok
    rows.append(f"| {label} | {name} | {want:,} | {got:,} | {'MATCH' if ok else '**MISMATCH**'} |")
row("messages", truth["messages"], stats["messages"])
for status in ("received", "delivered", "deferred", "bounced", "failed", "expanded"):
    row(f"deliveries {status}", truth["expected_deliveries"].get(status, 0), stats["deliveries"].get(status, 0))
row("rejected input (quarantine)", 0, stats.get("rejects", -1))
imported_ok = "rejected input: none" in out
bad += not imported_ok
rows.append(f"| {label} | import summary | rejected input: none | {'rejected input: none' if imported_ok else 'see ' + sys.argv[3]} | {'MATCH' if imported_ok else '**MISMATCH**'} |")
print("\n".join(rows))
sys.exit(1 if bad else 0)
EOF
}

# run KIND TAG SIZE: generate, import into a fresh data dir, time, check
run() {
    local kind=$1 tag=$2 size=$3 gen=$W/gen-$1-$2 data=$W/data-$1-$2 input units count bytes files
    if [ "$kind" = msgtrk ]; then
        say "generating Exchange message tracking logs, ~$size bytes, in $gen"
        mt "$W/unused" generate --msgtrk-bytes "$size" --employees "$EMPLOYEES" --days "$DAYS" \
            --start "$START" --seed "$SEED" "$gen" >&2
        input=$gen/msgtrk
        units=lines
        count=$(find "$input" -type f -print0 | xargs -0 cat | wc -l)
    else
        say "generating a Microsoft 365 extended report, ~$size rows, in $gen"
        mt "$W/unused" generate --m365-rows "$size" --employees "$EMPLOYEES" --days "$DAYS" \
            --start "$START" --seed "$SEED" "$gen" >&2
        input=$gen/m365/extended_report.csv
        units=rows
        count=$(($(wc -l <"$input") - 1))
    fi
    cp "$gen/$kind-truth.json" "$W/$kind-$tag.truth.json"
    bytes=$(bytes_tree "$input")
    files=$(find "$input" -type f | wc -l)
    warm "$input"
    say "mailtrail import $input ($count $units, $(human "$bytes")), load $(cut -d' ' -f1-3 /proc/loadavg)"
    timed "$W/$kind-$tag.time" "$MAILTRAIL" --data-dir "$data" --timezone "$TZ_NAME" --org-domain "$ORG" import -q "$input"
    cat "$W/$kind-$tag.time.out" >&2
    mt "$data" stats --format json >"$W/$kind-$tag.stats.json"
    local secs rate dbbytes
    secs=$(t_secs "$W/$kind-$tag.time")
    rate=$(rate "$count" "$secs")
    dbbytes=$(bytes_of "$data"/mailtrail.db*)
    ROWS_MD+=("| $(if [ "$kind" = msgtrk ]; then echo "Exchange 2019 MSGTRK*.LOG ($files files)"; else echo "M365 extended report CSV"; fi) | $count $units | $(human "$bytes") | $secs | $(t_cpu "$W/$kind-$tag.time") | **$rate** | $(t_rss_mib "$W/$kind-$tag.time") | $(ratio "$rate" "$PF_RATE")× | $(human "$dbbytes") |")
    local checked
    if ! checked=$(check "$kind" "$tag"); then FAILED=1; fi
    CHECKS_MD+=("$checked")
    printf '%s %s %s %s %s %s\n' "$kind" "$tag" "$count" "$secs" "$rate" "$(t_rss_mib "$W/$kind-$tag.time")" >>"$W/rates.txt"
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$gen"; fi
}

run msgtrk small "$SMALL_BYTES"
run msgtrk big "$BIG_BYTES"
run m365 small "$SMALL_ROWS"
run m365 big "$ROWS"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

curve() { # KIND: "rate small → big, RSS small → big"
    awk -v k="$1" '$1==k && $2=="small" {sc=$3; sr=$5; sm=$6} $1==k && $2=="big" {bc=$3; br=$5; bm=$6}
        END {printf "%s → %s units: %s → %s per second (%.2f× the time for %.1f× the input), peak RSS %s → %s MiB", sc, bc, sr, br, (bc/br)/(sc/sr), bc/sc, sm, bm}' "$W/rates.txt"
}

echo "## Exchange message tracking logs and Microsoft 365 extended report vs the Postfix reference"
echo
echo '```sh'
echo "mailtrail --timezone $TZ_NAME --org-domain $ORG generate --msgtrk-bytes $BIG_BYTES --employees $EMPLOYEES --days $DAYS --start $START --seed $SEED OUT"
echo "mailtrail --timezone $TZ_NAME --org-domain $ORG generate --m365-rows $ROWS --employees $EMPLOYEES --days $DAYS --start $START --seed $SEED OUT"
echo "mailtrail --data-dir D --timezone $TZ_NAME --org-domain $ORG import -q OUT/msgtrk                      # the folder (EX01/, EX02/)"
echo "mailtrail --data-dir D --timezone $TZ_NAME --org-domain $ORG import -q OUT/m365/extended_report.csv"
echo "bench/maillog.sh $PF_LINES                                                                   # the Postfix reference, same run"
echo '```'
echo
echo "Each import into a fresh data directory, input in the page cache; wall and CPU (user+sys) from \`/usr/bin/time\`, peak RSS its maximum resident set. Load average at start $LOAD_START, at the end $LOAD_END."
echo
echo "| input | lines / rows | bytes | wall (s) | CPU (s) | per second | peak RSS (MiB) | ÷ Postfix reference | database |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
echo "| Postfix log (reference, \`bench/maillog.sh\`) | $PF_NLINES lines | | $PF_SECS | $PF_CPU | **$PF_RATE** | $PF_RSS | 1.00× | |"
for r in "${ROWS_MD[@]}"; do echo "$r"; done
echo
echo "Cost curve (10× the input): MSGTRK $(curve msgtrk); M365 $(curve m365)."
echo
echo "| input | count | generator (truth file) | \`mailtrail stats\` | |"
echo "|---|---|---:|---:|---|"
for c in "${CHECKS_MD[@]}"; do echo "$c"; done
echo
if [ "$FAILED" = 0 ]; then
    echo "Every count matches what the generator wrote; no input was rejected."
else
    echo "**Some counts differ from the generator's truth** (see \`$W\`)."
fi
echo
say "done (work dir $W; generated inputs removed unless BENCH_KEEP=1)"
