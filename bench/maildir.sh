#!/usr/bin/env bash
# Maildir: `mu init && mu index` vs `mailtrail import` on the same generated Maildir.
# Usage: bench/maildir.sh [MESSAGES]   (default 20000)
# Leaves $BENCH_WORK/maildir-MESSAGES/{gen/Maildir,data} for bench/search.sh.
# Prints a Markdown section on stdout; progress on stderr.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MSGS=${1:-20000}
case $MSGS in ''|*[!0-9]*) die "MESSAGES must be a number, got '$MSGS'";; esac

find_mailtrail
need_tools mu python3
W=$BENCH_WORK/maildir-$MSGS
rm -rf "$W"
mkdir -p "$W"

say "generating $MSGS Maildir messages in $W/gen"
mt "$W/unused" generate --maildir-messages "$MSGS" --employees "$EMPLOYEES" --days "$DAYS" --seed "$SEED" "$W/gen" >&2
MD=$W/gen/Maildir
NFILES=$(find "$MD" -path '*/cur/*' -type f -o -path '*/new/*' -type f | wc -l)
MDBYTES=$(find "$MD" -path '*/cur/*' -type f -printf '%s\n' -o -path '*/new/*' -type f -printf '%s\n' | awk '{s+=$1} END{print s+0}')
warm "$MD"

# mu >= 1.8: `mu init --maildir` then `mu index`; older mu: `mu index --maildir`.
MUVER=$(mu --version | head -1 | sed 's/.*version //')
MUH=$W/mu
mkdir -p "$MUH"
say "mu $MUVER: init + index ($NFILES files)"
if mu help init >/dev/null 2>&1; then
    MU_CMDS="mu init --maildir=DIR --muhome=H && mu index --muhome=H"
    timed "$W/mu-init.time" mu init --quiet --maildir="$MD" --muhome="$MUH"
    timed "$W/mu-index.time" mu index --quiet --muhome="$MUH"
else
    MU_CMDS="mu index --maildir=DIR --muhome=H"
    echo "0 0" >"$W/mu-init.time"
    timed "$W/mu-index.time" mu index --quiet --maildir="$MD" --muhome="$MUH"
fi
MUS=$(awk '{s+=$1} END{printf "%.2f", s}' "$W/mu-init.time" "$W/mu-index.time")
MURSS=$(awk '$2>m {m=$2} END{printf "%.0f", m/1024}' "$W/mu-init.time" "$W/mu-index.time")
MUDB=$(bytes_tree "$MUH/xapian")
MUN=$(mu find --muhome="$MUH" --fields=i '' 2>/dev/null | wc -l || true)

say "mailtrail import ($NFILES files)"
timed "$W/mailtrail.time" "$MAILTRAIL" --data-dir "$W/data" --timezone "$TZ_NAME" --org-domain "$ORG" import -q "$MD"
cat "$W/mailtrail.time.out" >&2
MTS=$(t_secs "$W/mailtrail.time")
MTN=$(mt "$W/data" stats --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
DB=$(bytes_of "$W/data"/mailtrail.db*)
WAL=$(bytes_of "$W/data"/mailtrail.db-wal "$W/data"/mailtrail.db-shm)
BLOBS=$(bytes_tree "$W/data/blobs")
DBPM=$((DB / MTN))
echo "$MSGS" >"$W/READY"

echo "## Maildir: $NFILES messages ($(human "$MDBYTES"), $((MDBYTES / NFILES)) bytes/message)"
echo
echo '```sh'
echo "mailtrail --timezone $TZ_NAME --org-domain $ORG generate --maildir-messages $MSGS --employees $EMPLOYEES --days $DAYS --seed $SEED OUT"
echo "$MU_CMDS      # DIR=OUT/Maildir"
echo "mailtrail --data-dir D --timezone $TZ_NAME --org-domain $ORG import -q OUT/Maildir"
echo '```'
echo
echo "| tool | time (s) | CPU user+sys (s) | messages/s | peak RSS (MiB) | messages stored |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| mu $MUVER (init + index) | $MUS | $(awk '{s+=$3+$4} END{printf "%.2f", s}' "$W/mu-init.time" "$W/mu-index.time") | $(rate "$NFILES" "$MUS") | $MURSS | $MUN |"
echo "| mailtrail import | $MTS | $(t_cpu "$W/mailtrail.time") | $(rate "$NFILES" "$MTS") | $(t_rss_mib "$W/mailtrail.time") | $MTN |"
echo
echo "mailtrail ÷ mu throughput: **$(ratio "$(rate "$NFILES" "$MTS")" "$(rate "$NFILES" "$MUS")")×**"
echo
echo "| storage | total | bytes/message |"
echo "|---|---:|---:|"
echo "| Maildir (input) | $(human "$MDBYTES") | $((MDBYTES / NFILES)) |"
echo "| mailtrail database (\`mailtrail.db*\`, incl. WAL $(human "$WAL")) | $(human "$DB") | $DBPM |"
echo "| mailtrail blobs (\`blobs/\`, compressed raw messages + attachments) | $(human "$BLOBS") | $((BLOBS / MTN)) |"
echo "| mu Xapian database (\`xapian/\`) | $(human "$MUDB") | $((MUDB / NFILES)) |"
echo
if [ "$DBPM" -le 4096 ]; then
    echo "Target \"index + database ≤ 4 KB per message beyond the compressed blobs\": **met** ($DBPM bytes/message)."
else
    echo "Target \"index + database ≤ 4 KB per message beyond the compressed blobs\": **not met** ($DBPM bytes/message)."
fi
echo
say "done (work dir $W, kept for bench/search.sh)"
