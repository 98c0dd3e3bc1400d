#!/usr/bin/env bash
# `mailtrail serve` under load on loopback: SMTP journal ingest (~20 KB MIME
# messages, 250 only after fsync) and syslog over TCP (octet counting), with a
# search prober, searchable-latency probes, CPU and memory of the server.
# Usage: bench/serve.sh [MESSAGES] [LINES]   (defaults 10000 and 2000000)
# Prints a Markdown section on stdout; progress on stderr.
#
# Environment (besides lib.sh's):
#   SERVE_SMTP_CONNS=8       concurrent SMTP connections
#   SERVE_SYSLOG_CONNS=1     TCP connections for the bulk syslog stream (split by queue id)
#   SERVE_SYSLOG_FRAMING=octet  RFC 6587 framing of the syslog stream: octet (LEN SP MSG) or newline
#   SERVE_PROBE_INTERVAL=0.5 seconds between search probes and between probe flows
#   SERVE_WORD=confidential  bare word for the search prober
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MSGS=${1:-10000}
LINES=${2:-2000000}
case $MSGS in ''|*[!0-9]*) die "MESSAGES must be a number, got '$MSGS'";; esac
case $LINES in ''|*[!0-9]*) die "LINES must be a number, got '$LINES'";; esac
SMTP_CONNS=${SERVE_SMTP_CONNS:-8}
SYSLOG_CONNS=${SERVE_SYSLOG_CONNS:-1}
FRAMING=${SERVE_SYSLOG_FRAMING:-octet}
case $FRAMING in octet|newline) ;; *) die "SERVE_SYSLOG_FRAMING must be octet or newline, got '$FRAMING'";; esac
INTERVAL=${SERVE_PROBE_INTERVAL:-0.5}
WORD=${SERVE_WORD:-confidential}

find_mailtrail
need_tools python3
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "python3 >= 3.9 needed (random.randbytes)"
LOADGEN=$BENCH_DIR/loadgen.py
[ -r "$LOADGEN" ] || die "missing $LOADGEN"
W=$BENCH_WORK/serve-$MSGS-$LINES
rm -rf "$W"
mkdir -p "$W"

SERVER_PID=""
stop_server() {
    # stop_server: SIGTERM the running server, wait (30 s, then SIGKILL); sets STOP_SECS
    [ -n "$SERVER_PID" ] || return 0
    local t0 i
    t0=$(date +%s.%N)
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "server $SERVER_PID still running 30 s after SIGTERM: SIGKILL" >&2
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null && SERVER_RC=0 || SERVER_RC=$?
    STOP_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    SERVER_PID=""
}
LG_PID=""
cleanup() {
    if [ -n "$LG_PID" ]; then kill -TERM "$LG_PID" 2>/dev/null || true; wait "$LG_PID" 2>/dev/null || true; fi
    stop_server
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# loadgen ARGS...: bench/loadgen.py in the background, waited for (so a signal stops it at once)
loadgen() {
    python3 "$LOADGEN" "$@" >&2 &
    LG_PID=$!
    local rc=0
    wait "$LG_PID" || rc=$?
    LG_PID=""
    [ "$rc" = 0 ] || die "loadgen.py $1 failed (exit $rc)"
}

# start_server NAME ARGS... : mailtrail serve in $W/NAME-data; sets SERVER_PID, ADDR_<kind>
start_server() {
    local name=$1 i; shift
    local out=$W/$name-server
    # Created here, not by the background job's redirection, which may come
    # after the first look below.
    : >"$out.stdout"
    : >"$out.stderr"
    "$MAILTRAIL" --data-dir "$W/$name-data" --timezone "$TZ_NAME" --org-domain "$ORG" \
        serve "$@" --http 127.0.0.1:0 >"$out.stdout" 2>"$out.stderr" &
    SERVER_PID=$!
    ADDR_smtp=""; ADDR_syslog_tcp=""; ADDR_http=""
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$out.stderr" >&2; SERVER_PID=""; die "mailtrail serve exited at start-up"; }
        ADDR_http=$(awk '$1=="listening" && $2=="http" {print $3}' "$out.stdout")
        ADDR_smtp=$(awk '$1=="listening" && $2=="smtp" {print $3}' "$out.stdout")
        ADDR_syslog_tcp=$(awk '$1=="listening" && $2=="syslog-tcp" {print $3}' "$out.stdout")
        if [ -n "$ADDR_http" ] && { [ "$name" != smtp ] || [ -n "$ADDR_smtp" ]; } \
            && { [ "$name" != syslog ] || [ -n "$ADDR_syslog_tcp" ]; }; then
            return 0
        fi
        sleep 0.1
    done
    die "mailtrail serve printed no listening lines within 30 s (see $out.stdout, $out.stderr)"
}

# lg_args NAME: loadgen.py's common arguments for the running server, in LG
lg_args() { LG=(--pid "$SERVER_PID" --http "$ADDR_http" --data-dir "$W/$1-data" --mailtrail "$MAILTRAIL"
    --timezone "$TZ_NAME" --org-domain "$ORG" --word "$WORD" --probe-interval "$INTERVAL" --out "$W/$1"); }

# ---------------------------------------------------------------- inputs
say "generating ~$LINES Postfix log lines in $W/gen"
mt "$W/unused" generate --postfix-lines "$LINES" --employees "$EMPLOYEES" --days 1 --seed "$SEED" "$W/gen" >&2
LOG=$W/gen/maillog
NLINES=$(wc -l <"$LOG")
LOGBYTES=$(stat -c %s "$LOG")
warm "$LOG"
say "expected messages: mailtrail import of the same log into a scratch data dir (untimed)"
mt "$W/expect-data" import -q "$LOG" >&2
EXPECT=$(mt "$W/expect-data" search --count '')
echo "import finds $EXPECT messages" >&2

# ---------------------------------------------------------------- phase 1: SMTP
say "phase 1: SMTP journal ingest, $MSGS messages on $SMTP_CONNS connections"
start_server smtp --smtp 127.0.0.1:0
lg_args smtp
loadgen smtp "${LG[@]}" --smtp "$ADDR_smtp" --messages "$MSGS" --conns "$SMTP_CONNS"
stop_server
SMTP_STOP=$STOP_SECS; SMTP_SERVER_RC=$SERVER_RC
SMTP_FINAL=$(mt "$W/smtp-data" search --count '')
SMTP_DB=$(bytes_of "$W/smtp-data"/mailtrail.db*)
SMTP_BLOBS=$(bytes_tree "$W/smtp-data/blobs")
. "$W/smtp.env"

# ---------------------------------------------------------------- phase 2: syslog
say "phase 2: syslog over TCP, $NLINES lines on $SYSLOG_CONNS connection(s), $FRAMING framing"
start_server syslog --syslog-tcp 127.0.0.1:0
lg_args syslog
loadgen syslog "${LG[@]}" --syslog-tcp "$ADDR_syslog_tcp" --maillog "$LOG" --conns "$SYSLOG_CONNS" --framing "$FRAMING"
stop_server
SYS_STOP=$STOP_SECS; SYS_SERVER_RC=$SERVER_RC
SYS_FINAL=$(mt "$W/syslog-data" search --count '')
SYS_FINAL_PROBES=$(mt "$W/syslog-data" search --count 'system:postfix@mxprobe')
. "$W/syslog.env"
rm -f "$W"/syslog-payload-*.bin

# ---------------------------------------------------------------- report
verdict() { # verdict OK_EXPR -> PASS/FAIL
    if awk "BEGIN{exit !($1)}"; then echo PASS; else echo "**FAIL**"; fi
}
search_verdict() { # search_verdict P95 MAX
    if [ -z "$1" ] || [ -z "$2" ]; then echo "n/a"
    elif awk -v m="$2" 'BEGIN{exit !(m < 100)}'; then echo PASS
    elif awk -v p="$1" 'BEGIN{exit !(p < 100)}'; then echo "p95 only (max ≥ 100 ms)"
    else echo "**FAIL**"; fi
}
nz() { [ -n "$1" ] && echo "$1" || echo 0; }

echo "## mailtrail serve under load (loopback): $MSGS SMTP messages, $NLINES syslog lines"
echo
echo '```sh'
echo "mailtrail --data-dir D --timezone $TZ_NAME --org-domain $ORG serve --smtp 127.0.0.1:0 --http 127.0.0.1:0          # phase 1, fresh D"
echo "python3 bench/loadgen.py smtp --messages $MSGS --conns $SMTP_CONNS ...   # ~${SMTP_MEAN_KIB} KiB MIME journal copies, 4xx retried"
echo "mailtrail --data-dir D --timezone $TZ_NAME --org-domain $ORG serve --syslog-tcp 127.0.0.1:0 --http 127.0.0.1:0    # phase 2, fresh D"
echo "mailtrail generate --postfix-lines $LINES --employees $EMPLOYEES --days 1 --seed $SEED OUT   # $NLINES lines, $(human "$LOGBYTES")"
echo "python3 bench/loadgen.py syslog --maillog OUT/maillog --conns $SYSLOG_CONNS --framing $FRAMING ...   # RFC 6587 $([ "$FRAMING" = octet ] && echo 'octet counting' || echo 'LF framing'), sendfile"
echo "mailtrail --data-dir D search --count QUERY   # prober, every ${INTERVAL}s during each phase: '$SMTP_Q_WORD', '$SMTP_Q_FROM' (SMTP), '$SYS_Q_FROM' (syslog)"
echo '```'
echo
echo "| requirement | target | measured | |"
echo "|---|---|---:|---|"
echo "| SMTP journal ingest, durable (250 after commit + fsync), ${SMTP_MEAN_KIB} KiB messages, $SMTP_CONNS connections | ≥ 300 msg/s | **$SMTP_RATE msg/s** ($SMTP_OK in ${SMTP_WALL} s) | $(verdict "$SMTP_RATE >= 300 && $SMTP_FAILED == 0") |"
if [ "$SYS_LOST" = 0 ] && [ "$SYS_STALLED" = 0 ]; then
    echo "| syslog TCP ($FRAMING framing), lines accepted by the server | ≥ 50,000 lines/s | **$SYS_ACC_RATE lines/s** ($SYS_LINES in ${SYS_ACC_WALL} s) | $(verdict "$(nz "$SYS_ACC_RATE") >= 50000") |"
    echo "| syslog TCP, end to end (every resulting message stored) | ≥ 50,000 lines/s | **$SYS_E2E_RATE lines/s** (${SYS_E2E_WALL} s) | $(verdict "$(nz "$SYS_E2E_RATE") >= 50000") |"
else
    echo "| syslog TCP ($FRAMING framing), lines accepted by the server | ≥ 50,000 lines/s | **$SYS_LOST of $SYS_LINES lines lost**: the server counted $SYS_COUNTED$([ "$SYS_STALLED" = 1 ] && echo ' and then stopped reading' || echo ' and closed the connection') | **FAIL** |"
    echo "| syslog TCP, end to end (every resulting message stored) | ≥ 50,000 lines/s | n/a (what was counted was stored ${SYS_E2E_WALL} s after the start) | **FAIL** |"
fi
echo "| search during SMTP ingest (process wall time), p50 / p95 / max | < 100 ms | $SMTP_SEARCH_P50_MS / **$SMTP_SEARCH_P95_MS** / $SMTP_SEARCH_MAX_MS ms (n=$SMTP_SEARCH_N) | $(search_verdict "$SMTP_SEARCH_P95_MS" "$SMTP_SEARCH_MAX_MS") |"
echo "| search during syslog ingest (process wall time), p50 / p95 / max | < 100 ms | $SYS_SEARCH_P50_MS / **$SYS_SEARCH_P95_MS** / $SYS_SEARCH_MAX_MS ms (n=$SYS_SEARCH_N) | $(search_verdict "$SYS_SEARCH_P95_MS" "$SYS_SEARCH_MAX_MS") |"
echo "| log line → searchable, during syslog ingest, p50 / p99 / max | p99 ≤ 2 s | $SYS_VISIBLE_P50_MS / **$SYS_VISIBLE_P99_MS** / $SYS_VISIBLE_MAX_MS ms ($SYS_VISIBLE_N probes, $SYS_PROBE_MISSING not found) | $(verdict "$(nz "$SYS_VISIBLE_P99_MS") <= 2000 && $SYS_PROBE_MISSING == 0 && $(nz "$SYS_VISIBLE_N") > 0") |"
echo "| SMTP 250 → searchable, p50 / p99 / max | p99 ≤ 2 s | $SMTP_VISIBLE_P50_MS / **$SMTP_VISIBLE_P99_MS** / $SMTP_VISIBLE_MAX_MS ms ($SMTP_VISIBLE_N samples, $SMTP_NOT_FOUND not found) | $(verdict "$(nz "$SMTP_VISIBLE_P99_MS") <= 2000 && $SMTP_NOT_FOUND == 0 && $(nz "$SMTP_VISIBLE_N") > 0") |"
echo
echo "| mailtrail serve | SMTP phase | syslog phase |"
echo "|---|---:|---:|"
echo "| load wall time (s) | $SMTP_WALL | $SYS_E2E_WALL (accepted after ${SYS_ACC_WALL:-n/a}, sendfile done after ${SYS_SEND_WALL:-n/a}) |"
echo "| server CPU user+sys (s) | $SMTP_CPU | $SYS_CPU |"
echo "| server CPU, average cores busy | $SMTP_CORES | $SYS_CORES |"
echo "| busiest server threads, CPU s (by thread name) | $SMTP_THREAD_CPU | $SYS_THREAD_CPU |"
echo "| peak RSS, VmHWM (MiB) | $SMTP_HWM | $SYS_HWM |"
echo "| RSS at the end of the load, VmRSS (MiB) | $SMTP_RSS | $SYS_RSS |"
echo "| threads | $SMTP_THREADS | $SYS_THREADS |"
echo "| records per store commit (group commit) | $SMTP_PER_COMMIT | $SYS_PER_COMMIT |"
echo "| max store queue depth (sampled every 0.1 s) | $SMTP_MAXQ | $SYS_MAXQ_STORE (line queue $SYS_MAXQ_LINES) |"
echo "| search p50 / p95 / max, word (ms) | $SMTP_SEARCH_W_P50_MS / $SMTP_SEARCH_W_P95_MS / $SMTP_SEARCH_W_MAX_MS | $SYS_SEARCH_W_P50_MS / $SYS_SEARCH_W_P95_MS / $SYS_SEARCH_W_MAX_MS |"
echo "| search p50 / p95 / max, from: (ms) | $SMTP_SEARCH_F_P50_MS / $SMTP_SEARCH_F_P95_MS / $SMTP_SEARCH_F_MAX_MS | $SYS_SEARCH_F_P50_MS / $SYS_SEARCH_F_P95_MS / $SYS_SEARCH_F_MAX_MS |"
echo "| search after the load, idle, p50 / max (ms) | $SMTP_IDLE_P50_MS / $SMTP_IDLE_MAX_MS | $SYS_IDLE_P50_MS / $SYS_IDLE_MAX_MS |"
echo "| load generator CPU (s) / search processes CPU (s) | $SMTP_LOADGEN_CPU / $SMTP_SEARCH_CPU | $SYS_LOADGEN_CPU / $SYS_SEARCH_CPU |"
echo "| SIGTERM → exit (s), exit status | $SMTP_STOP, $SMTP_SERVER_RC | $SYS_STOP, $SYS_SERVER_RC |"
echo "| database / blobs after the phase | $(human "$SMTP_DB") / $(human "$SMTP_BLOBS") | $(human "$(bytes_of "$W/syslog-data"/mailtrail.db*)") / – |"
echo
echo "Checks:"
echo
echo "- SMTP: $SMTP_OK of $SMTP_MESSAGES answered 250 ($SMTP_FAILED given up); 4xx replies retried after 1 s: $SMTP_RETRIES ($SMTP_TEMP); 5xx: $SMTP_PERM; connection errors: $SMTP_CONN_ERRORS. Server counters: $SMTP_METRIC_STORED stored, $SMTP_METRIC_REFUSED refused. Commit wait (end of DATA → 250) p50 $SMTP_COMMIT_P50 ms, p99 $SMTP_COMMIT_P99 ms."
echo "- SMTP: \`search --count ''\` = $SMTP_COUNT_ALL while running, $SMTP_FINAL after SIGTERM (expected $SMTP_OK: one message per unique Message-ID); the envelope-only recipient of a sample message: \`bcc:ADDR\` finds $SMTP_BCC_OK (expected 1), \`to:ADDR\` finds $SMTP_TO_BCC (\`search --help\`: \"to: also matches envelope recipients\")."
echo "- syslog: $SYS_RECORDS records stored when the counter settled (${SYS_RECORDS_AFTER} a few seconds later$([ "$SYS_RECORDS" != "$SYS_RECORDS_AFTER" ] && echo ' — **it moved: the end was called too early**')); messages searchable: $SYS_LIVE_COUNT while running, $SYS_FINAL after SIGTERM, which emits the queue files still open at the end of the log. Expected after SIGTERM: $EXPECT (\`mailtrail import\` of the same log) + $SYS_PROBES probe flows (found $SYS_FINAL_PROBES) = $((EXPECT + SYS_PROBES)) $([ "$SYS_FINAL" = "$((EXPECT + SYS_PROBES))" ] && echo MATCH || echo '**MISMATCH**'). Store errors: $SYS_STORE_ERRORS."
if [ "$SYS_LOST" != 0 ]; then
    echo "- **syslog lines lost** with $FRAMING framing: the server counted $SYS_COUNTED of $SYS_LINES lines, then closed the connection; the messages in the lost lines are missing above. \`SERVE_SYSLOG_FRAMING=newline bench/serve.sh $MSGS $LINES\` measures the syslog throughput with LF framing."
fi
echo "- Searchable latency is measured from the send of the probe flow's last line to the end of the first \`search --format json\` that returned it (one query for all outstanding probes, p50 $SYS_PROBE_QUERY_P50 ms), so it includes up to one query's duration and the 50 ms poll interval."
echo
echo "Notes: load generator, prober and server share the machine ($(nproc) cores); search latency is the whole \`mailtrail search --count\` process (start-up, open, query, exit). End to end = from the first byte sent to the last change of \`mailtrail_records_stored_total\`, called once every line was counted by \`mailtrail_syslog_tcp_lines_total\` (or the server had closed the connections), both queues were empty and the counter had not moved for 2 s; server CPU for the syslog phase is up to that last change (up to 'accepted': ${SYS_CPU_ACC:-n/a} s). Raw numbers: \`$W/smtp.json\`, \`$W/syslog.json\` (with a 0.1 s series of records, lines, queues, RSS)."
echo
say "done (work dir $W)"
