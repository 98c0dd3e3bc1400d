#!/usr/bin/env bash
# Search: notmuch (XAPIAN_CJK_NGRAM=1) vs mailtrail on the Maildir of bench/maildir.sh,
# latency (hyperfine medians) and recall against bench/truth.py.
# Usage: bench/search.sh [MESSAGES]   (default 20000; reuses $BENCH_WORK/maildir-MESSAGES
#        when bench/maildir.sh made it, else generates and imports it first, untimed)
# Environment: RUNS (hyperfine runs per command, default 20)
# Prints a Markdown section on stdout; progress on stderr.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MSGS=${1:-20000}
case $MSGS in ''|*[!0-9]*) die "MESSAGES must be a number, got '$MSGS'";; esac
RUNS=${RUNS:-20}

find_mailtrail
need_tools notmuch hyperfine python3
W=$BENCH_WORK/maildir-$MSGS
MD=$W/gen/Maildir
if [ "$(cat "$W/READY" 2>/dev/null)" != "$MSGS" ] || [ ! -d "$MD" ] || [ ! -d "$W/data" ]; then
    say "no imported Maildir of $MSGS messages in $W: generating and importing (untimed)"
    rm -rf "$W"; mkdir -p "$W"
    mt "$W/unused" generate --maildir-messages "$MSGS" --employees "$EMPLOYEES" --days "$DAYS" --seed "$SEED" "$W/gen" >&2
    mt "$W/data" import -q "$MD" >&2
    echo "$MSGS" >"$W/READY"
fi
S=$W/search
rm -rf "$S"
mkdir -p "$S/notmuch-db"

# Private notmuch configuration: mail_root is the Maildir, the Xapian database lives
# outside it so that the Maildir stays byte-identical for the other tools.
export NOTMUCH_CONFIG=$S/notmuch-config XAPIAN_CJK_NGRAM=1
cat >"$NOTMUCH_CONFIG" <<EOF
[database]
path=$S/notmuch-db
mail_root=$MD
[new]
tags=
ignore=maildirfolder
[search]
exclude_tags=
[maildir]
synchronize_flags=false
[user]
name=bench
primary_email=bench@example.invalid
EOF
warm "$MD"
say "notmuch new (XAPIAN_CJK_NGRAM=1)"
timed "$S/notmuch-new.time" notmuch new --quiet
NMDB=$(bytes_tree "$S/notmuch-db")
NFILES=$(find "$MD" -path '*/cur/*' -type f -o -path '*/new/*' -type f | wc -l)

SENDER=$(python3 "$BENCH_DIR/truth.py" sender "$MD" "$ORG")
# label | truth term | mailtrail query | notmuch query
QUERIES=(
    "English word|word:invoice|invoice|invoice"
    "Japanese phrase|sub:顧客リスト|顧客リスト|\"顧客リスト\""
    "Japanese phrase|sub:社外秘|社外秘|\"社外秘\""
    "sender address|from:$SENDER|from:$SENDER|from:$SENDER"
)
TERMS=()
for q in "${QUERIES[@]}"; do IFS='|' read -r _ t _ _ <<<"$q"; TERMS+=("$t"); done

say "ground truth (bench/truth.py over $NFILES files)"
python3 "$BENCH_DIR/truth.py" count "$MD" "$S/truth" "${TERMS[@]}" >"$S/truth.json"
cat "$S/truth.json" >&2

# hyperfine -N runs without a shell; arguments are split shell-style, so quote once.
MTQ="$MAILTRAIL --data-dir $W/data --timezone $TZ_NAME --org-domain $ORG search"
median() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.1f" % (x["median"]*1000) for x in r))' "$1"; }

TIMES=()
RECALL=()
DIAG=()
i=0
for q in "${QUERIES[@]}"; do
    IFS='|' read -r label term mq nq <<<"$q"
    say "$label: mailtrail '$mq' / notmuch '$nq'"
    hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$S/h$i-count.json" \
        "notmuch count '$nq'" "$MTQ --count '$mq'" >&2
    hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$S/h$i-list.json" \
        "notmuch search --limit=50 '$nq'" "$MTQ --limit 50 --format json '$mq'" >&2
    read -r nc mc <<<"$(median "$S/h$i-count.json")"
    read -r nl ml <<<"$(median "$S/h$i-list.json")"
    ncount=$(notmuch count "$nq")
    mcount=$(mt "$W/data" search --count "$mq")
    truth=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"][sys.argv[2]])' "$S/truth.json" "$term")
    notmuch search --output=messages "$nq" | sed 's/^id://' >"$S/nm$i.ids"
    mt "$W/data" search --limit 1000000000 --format json "$mq" |
        python3 -c 'import json,sys; [print(json.loads(l)["message_id"] or "") for l in sys.stdin]' >"$S/mt$i.ids"
    mcmp=$(python3 "$BENCH_DIR/truth.py" compare "$S/truth/$i.ids" "$S/mt$i.ids" "$MD" 3 "$term")
    ncmp=$(python3 "$BENCH_DIR/truth.py" compare "$S/truth/$i.ids" "$S/nm$i.ids" "$MD" 3 "$term")
    rc() { head -1 <<<"$1" | sed -E 's/.*recall=([0-9.]+%) missed=([0-9]+) excess=([0-9]+).*/\1|\2|\3/'; }
    IFS='|' read -r mrec mmiss mexc <<<"$(rc "$mcmp")"
    IFS='|' read -r nrec nmiss nexc <<<"$(rc "$ncmp")"
    TIMES+=("| $label \`$mq\` | $mc | $nc | $ml | $nl |")
    RECALL+=("| $label \`$mq\` | $truth | $mcount | $mrec | $mmiss | $mexc | $ncount | $nrec | $nmiss | $nexc |")
    if [ "$mmiss$mexc" != 00 ]; then
        DIAG+=("- mailtrail \`$mq\`: $(head -1 <<<"$mcmp")" "$(tail -n +2 <<<"$mcmp" | sed 's/^/    /')")
    fi
    if [ "$nmiss$nexc" != 00 ]; then
        DIAG+=("- notmuch \`$nq\`: $(head -1 <<<"$ncmp")" "$(tail -n +2 <<<"$ncmp" | sed 's/^/    /')")
    fi
    i=$((i + 1))
done

read -r DUPS DUPFILES UNIQ <<<"$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["duplicate_message_ids"], j["files_with_duplicate_ids"], j["unique_message_ids"])' "$S/truth.json")"

echo "## Search: $NFILES messages (Maildir of bench/maildir.sh $MSGS)"
echo
echo '```sh'
echo "NOTMUCH_CONFIG=private-config XAPIAN_CJK_NGRAM=1 notmuch new      # database.mail_root = OUT/Maildir"
echo "notmuch count QUERY                  vs  mailtrail --data-dir D search --count QUERY"
echo "notmuch search --limit=50 QUERY      vs  mailtrail --data-dir D search --limit 50 --format json QUERY"
echo "hyperfine -N --warmup 2 --runs $RUNS ...    # medians below"
echo '```'
echo
echo "notmuch new (indexing, for reference): $(t_secs "$S/notmuch-new.time") s, $(rate "$NFILES" "$(t_secs "$S/notmuch-new.time")") messages/s, peak RSS $(t_rss_mib "$S/notmuch-new.time") MiB, database $(human "$NMDB") ($((NMDB / NFILES)) bytes/message)."
echo
echo "Median latency (ms), warm cache:"
echo
echo "| query | mailtrail count | notmuch count | mailtrail 50 results (json) | notmuch search --limit=50 |"
echo "|---|---:|---:|---:|---:|"
printf '%s\n' "${TIMES[@]}"
echo
echo "Recall against bench/truth.py (subject, text parts, attachment names; NFKC + casefold; Japanese as substring, English as whole word, from: as address equality; messages counted by Message-ID: $UNIQ unique of $NFILES files, $DUPS Message-ID(s) on more than one file ($DUPFILES files), which mailtrail and notmuch both merge):"
echo
echo "| query | truth | mailtrail | recall | missed | excess | notmuch | recall | missed | excess |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${RECALL[@]}"
echo
if [ ${#DIAG[@]} -gt 0 ]; then
    echo "Differences (first few messages each; the field where truth.py sees the term):"
    echo
    printf '%s\n' "${DIAG[@]}"
    echo
fi
say "done (work dir $S)"
