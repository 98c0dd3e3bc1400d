#!/usr/bin/env bash
# Postfix log: pflogsumm vs `mailtrail import` on the same generated maillog.
# Usage: bench/maillog.sh [LINES]   (default 1000000; the lead also runs 10000000)
# Prints a Markdown section on stdout; progress on stderr.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

LINES=${1:-1000000}
case $LINES in ''|*[!0-9]*) die "LINES must be a number, got '$LINES'";; esac

find_mailtrail
need_tools pflogsumm python3
W=$BENCH_WORK/maillog-$LINES
rm -rf "$W"
mkdir -p "$W"

say "generating ~$LINES Postfix log lines in $W/gen"
mt "$W/unused" generate --postfix-lines "$LINES" --employees "$EMPLOYEES" --days "$DAYS" --seed "$SEED" "$W/gen" >&2
LOG=$W/gen/maillog
NLINES=$(wc -l <"$LOG")
LOGBYTES=$(stat -c %s "$LOG")
warm "$LOG"

say "pflogsumm ($NLINES lines)"
timed "$W/pflogsumm.time" pflogsumm "$LOG"
cp "$W/pflogsumm.time.out" "$W/pflogsumm.txt"

say "mailtrail import ($NLINES lines)"
timed "$W/mailtrail.time" "$MAILTRAIL" --data-dir "$W/data" --timezone "$TZ_NAME" --org-domain "$ORG" import -q "$LOG"
cat "$W/mailtrail.time.out" >&2
mt "$W/data" stats --format json >"$W/stats.json"
DBBYTES=$(bytes_of "$W/data"/mailtrail.db*)

# pflogsumm "Grand Totals" -> key=value; deferred is the message count before "(N deferrals)".
# Above 512k pflogsumm prints int(n/1024) followed by "k" (above 512m, "m"): compare at that precision.
awk '/^Grand Totals/ {g=1} g && /^ *[0-9]+[km]? +(received|delivered|deferred|bounced|rejected)/ {
        print $2"="$1 } /^Per-Day/ {exit}' "$W/pflogsumm.txt" >"$W/pflogsumm.totals"

PS=$(t_secs "$W/pflogsumm.time"); MS=$(t_secs "$W/mailtrail.time")
PR=$(rate "$NLINES" "$PS"); MR=$(rate "$NLINES" "$MS")

echo "## Postfix log: $NLINES lines ($(human "$LOGBYTES"))"
echo
echo '```sh'
echo "mailtrail --timezone $TZ_NAME --org-domain $ORG generate --postfix-lines $LINES --employees $EMPLOYEES --days $DAYS --seed $SEED OUT"
echo "pflogsumm OUT/maillog > /dev/null"
echo "mailtrail --data-dir D --timezone $TZ_NAME --org-domain $ORG import -q OUT/maillog   # parse, correlate, store, searchable"
echo '```'
echo
echo "| tool | time (s) | CPU user+sys (s) | lines/s | peak RSS (MiB) | output |"
echo "|---|---:|---:|---:|---:|---|"
echo "| pflogsumm | $PS | $(t_cpu "$W/pflogsumm.time") | $PR | $(t_rss_mib "$W/pflogsumm.time") | text report |"
echo "| mailtrail import | $MS | $(t_cpu "$W/mailtrail.time") | $MR | $(t_rss_mib "$W/mailtrail.time") | database $(human "$DBBYTES") ($(awk -v d="$DBBYTES" -v l="$LOGBYTES" 'BEGIN{printf "%.2f", d/l}')× the log) |"
echo
echo "mailtrail ÷ pflogsumm throughput: **$(ratio "$MR" "$PR")×** (pflogsumm only counts; mailtrail also stores every message and delivery, searchable)."
echo
echo "| count | pflogsumm Grand Totals | mailtrail stats | |"
echo "|---|---:|---:|---|"
MISMATCH=0
for k in received delivered deferred bounced rejected; do
    p=$(awk -F= -v k="$k" '$1==k {print $2}' "$W/pflogsumm.totals")
    m=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["deliveries"].get(sys.argv[2], "?"))' "$W/stats.json" "$k")
    case $p in
        *k) m_cmp="$((m / 1024))k"; note=" (pflogsumm prints units of 1024)";;
        *m) m_cmp="$((m / 1048576))m"; note=" (pflogsumm prints units of 1024²)";;
        *) m_cmp=$m; note="";;
    esac
    if [ "$p" = "$m_cmp" ]; then v="MATCH$note"; else v="**MISMATCH**$note"; MISMATCH=1; fi
    echo "| $k | ${p:-?} | $m | $v |"
done
echo
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("mailtrail: %d messages; expired %s; quarantined input %s (not in pflogsumm'"'"'s totals)." % (s["messages"], s["deliveries"].get("expired","?"), s.get("rejects","?")))' "$W/stats.json"
echo
[ "$MISMATCH" = 0 ] || echo "Counts differ: see $W/pflogsumm.txt and $W/stats.json." >&2
if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$W/gen"; fi
say "done (work dir $W; data kept for inspection, maillog removed unless BENCH_KEEP=1)"
