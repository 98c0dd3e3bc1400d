#!/usr/bin/env bash
# The web console under load: `mailtrail serve` on a store of MESSAGES messages,
# wrk at 20 connections with a signed-in administrator's session, one request
# class at a time (search page and JSON API for a word, a Japanese phrase, an
# address and a 30-day period; the message page; the 30-day dashboard).
# Usage: bench/console.sh [MESSAGES...]   (default: 100000 1000000, the cost curve)
# Writes bench/results/RESULTS-<date>-console.md and prints it; progress on stderr.
# Fails (exit 1, results left in $BENCH_WORK/console-results.partial.md) when any
# answer was not 2xx or a socket error occurred.
#
# Environment (besides lib.sh's):
#   CONSOLE_DURATION=20    seconds of each loaded wrk run
#   CONSOLE_CONNS=20       wrk connections (the "20 concurrent users")
#   CONSOLE_THREADS=2      wrk threads
#   CONSOLE_SOLO=5         seconds of the one-connection run before it (service time; 0: none;
#                          4× for the dashboard)
#   CONSOLE_SLOW=60        seconds of the dashboard runs (loaded 30-day, one-connection 365-day)
#   CONSOLE_DAYS=365       days of mail in the store (a 30-day period is then a twelfth of it)
#   CONSOLE_START=2025-11-01  first day of the mail (fixed: same seed, same bytes, same dates)
#   CONSOLE_BODIES=10      one message in CONSOLE_BODIES also comes from a Maildir (body, attachments)
#   CONSOLE_REBUILD=0      1 rebuilds the cached store even when it is valid
#   CONSOLE_LINES_PER_MESSAGE_X10=93  log lines generated per message wanted, times 10
#   CONSOLE_BUILD_ONLY=0   1 only builds (or checks) the cached stores, no load
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(100000 1000000)
for n in "${SIZES[@]}"; do
    case $n in ''|*[!0-9]*) die "MESSAGES must be a number, got '$n'";; esac
done
DURATION=${CONSOLE_DURATION:-20}
CONNS=${CONSOLE_CONNS:-20}
THREADS=${CONSOLE_THREADS:-2}
SOLO=${CONSOLE_SOLO:-5}
SLOW=${CONSOLE_SLOW:-60}
CDAYS=${CONSOLE_DAYS:-365}
START=${CONSOLE_START:-2025-11-01}
BODIES=${CONSOLE_BODIES:-10}
# Measured: 9.06 log lines per message (noise, retries, bounces and rejects
# included) with 2,000 employees over 365 days and 300,000 lines; 9.3 leaves a
# margin. Small stores need more (noise is per day, not per message).
LINES_PER_MESSAGE_X10=${CONSOLE_LINES_PER_MESSAGE_X10:-93}

find_mailtrail
need_tools python3
need_console_tools() {
    local missing=() c
    for c in wrk curl; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
    [ -x /usr/bin/time ] || missing+=(time)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "${BENCH_NO_INSTALL:-0}" = 1 ] && die "missing: ${missing[*]} (Debian packages; BENCH_NO_INSTALL=1)"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    say "installing ${missing[*]}"
    $sudo apt-get install -y "${missing[@]}" >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y "${missing[@]}" >&2; } \
        || die "cannot install ${missing[*]}: install the Debian packages (apt-get install ${missing[*]}) and run again"
    for c in wrk curl; do command -v "$c" >/dev/null 2>&1 || die "$c still missing after apt-get install"; done
}
need_console_tools
LUA=$BENCH_DIR/console.lua
[ -r "$LUA" ] || die "missing $LUA"
mkdir -p "$BENCH_WORK" "$BENCH_DIR/results"
CLK_TCK=$(getconf CLK_TCK)

SERVER_PID=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local i
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap 'stop_sampler; stop_server' EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the store
# build_store N: a data dir with at least N messages in $BENCH_WORK/console-N,
# reused when it was built with the same settings. Sets D (data dir), BUILD_NOTE.
build_store() {
    local n=$1 w=$BENCH_WORK/console-$1
    local lines=$((n * LINES_PER_MESSAGE_X10 / 10)) md=$((n / BODIES))
    local key="messages>=$n lines=$lines year=${START%%-*} maildir=$md days=$CDAYS start=$START seed=$SEED employees=$EMPLOYEES tz=$TZ_NAME org=$ORG"
    D=$w/data
    if [ "${CONSOLE_REBUILD:-0}" != 1 ] && [ "$(head -1 "$w/READY" 2>/dev/null)" = "$key" ] && [ -d "$D" ]; then
        local have
        have=$(mt "$D" stats --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
        if [ "$have" -ge "$n" ]; then
            say "reusing the store of $have messages in $D ($(sed -n 2p "$w/READY"))"
            BUILD_NOTE="cached store, $(sed -n 2p "$w/READY")"
            return 0
        fi
    fi
    say "building a store of >= $n messages in $w: $lines log lines, $md of the messages also in a Maildir"
    rm -rf "$w"
    mkdir -p "$w"
    timed "$w/generate.time" "$MAILTRAIL" --timezone "$TZ_NAME" --org-domain "$ORG" generate \
        --postfix-lines "$lines" --maildir-messages "$md" --employees "$EMPLOYEES" \
        --days "$CDAYS" --start "$START" --seed "$SEED" "$w/gen"
    cat "$w/generate.time.out" >&2
    # Log and Maildir in one import: a message seen in both becomes one.
    timed "$w/import.time" "$MAILTRAIL" --data-dir "$D" --timezone "$TZ_NAME" --org-domain "$ORG" \
        import -q --year "${START%%-*}" "$w/gen/maillog" "$w/gen/Maildir"
    local have
    have=$(mt "$D" stats --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
    [ "$have" -ge "$n" ] || die "the store has $have messages, fewer than $n: raise CONSOLE_LINES_PER_MESSAGE_X10 (now $LINES_PER_MESSAGE_X10)"
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$w/gen"
    BUILD_NOTE="built $(date -u '+%Y-%m-%d %H:%M UTC') with $MAILTRAIL (sha256 $(sha256sum "$MAILTRAIL" | cut -c1-12)): generate $(t_secs "$w/generate.time") s, import $(t_secs "$w/import.time") s (peak RSS $(t_rss_mib "$w/import.time") MiB)"
    printf '%s\n%s\n' "$key" "$BUILD_NOTE" >"$w/READY"
}

# ---------------------------------------------------------------- the server
start_server() {
    local out=$1 i
    : >"$out/server.stdout"
    : >"$out/server.stderr"
    "$MAILTRAIL" --data-dir "$D" --timezone "$TZ_NAME" --org-domain "$ORG" \
        serve --http 127.0.0.1:0 --smtp 127.0.0.1:0 >"$out/server.stdout" 2>"$out/server.stderr" &
    SERVER_PID=$!
    ADDR=""
    for ((i = 0; i < 600; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$out/server.stderr" >&2; SERVER_PID=""; die "mailtrail serve exited at start-up"; }
        ADDR=$(awk '$1=="listening" && $2=="http" {print $3}' "$out/server.stdout")
        [ -n "$ADDR" ] && return 0
        sleep 0.1
    done
    die "mailtrail serve printed no 'listening http' line within 60 s (see $out/server.*)"
}

# sign_in OUT: an administrator's session; sets COOKIE
sign_in() {
    local out=$1 pw csrf code
    pw=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
    printf '%s' "$pw" | mt "$D" user add bench --role administrator >&2
    rm -f "$out/jar"
    curl -sS -c "$out/jar" -b "$out/jar" -o "$out/login.html" "http://$ADDR/login"
    csrf=$(sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p' "$out/login.html" | head -1)
    [ -n "$csrf" ] || die "no csrf token in the sign-in form (see $out/login.html)"
    code=$(curl -sS -c "$out/jar" -b "$out/jar" -o /dev/null -w '%{http_code} %{redirect_url}' \
        --data-urlencode user=bench --data-urlencode "password=$pw" --data-urlencode "csrf=$csrf" \
        "http://$ADDR/login")
    case $code in 303\ */search*|302\ */search*) ;; *) die "sign-in answered '$code', expected a redirect to /search";; esac
    COOKIE="mt_session=$(awk '$6=="mt_session" {print $7}' "$out/jar")"
    [ "$COOKIE" != "mt_session=" ] || die "no mt_session cookie after sign-in"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "http://$ADDR/api/v1/stats")
    [ "$code" = 200 ] || die "/api/v1/stats with the session answered $code"
}

# ---------------------------------------------------------------- request classes
# make_paths OUT: one file of request paths per class in OUT/paths/, and OUT/store.json
make_paths() {
    local out=$1
    mkdir -p "$out/paths"
    python3 - "$D/mailtrail.db" "$out" "$START" "$CDAYS" "$ORG" <<'PY'
import datetime as dt, json, sqlite3, sys, urllib.parse
db, out, start, days, org = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
q = lambda sql, *a: con.execute(sql, a).fetchall()
last = dt.date.fromisoformat(start) + dt.timedelta(days=days - 1)   # last day of mail
# Four 30-day periods: the last 30 days of the store, and three earlier ones 60 days apart.
periods = []
for j in range(4):
    to = last - dt.timedelta(days=60 * j)
    frm = to - dt.timedelta(days=29)
    if frm >= dt.date.fromisoformat(start):
        periods.append((frm, to))
words = ["invoice", "meeting", "confidential", "schedule"]
japanese = ["社外秘", "見積書", "顧客リスト", "議事録"]
# Senders of the organisation by number of messages: the busiest, and ranks 10, 100, 1000.
senders = [a for (a,) in q(
    "SELECT a FROM (SELECT coalesce(from_addr, envelope_from) AS a FROM messages) "
    "WHERE a LIKE ? GROUP BY a ORDER BY count(*) DESC, a", "%@" + org)]
addresses = [senders[i] for i in (0, 9, 99, 999) if i < len(senders)]
queries = {
    "word": words,
    "japanese": japanese,
    "address": ["from:" + a for a in addresses],
    "period": [f"after:{f} before:{t + dt.timedelta(days=1)}" for f, t in periods],
}
enc = lambda s: urllib.parse.quote(s, safe="")
def write(name, paths):
    with open(f"{out}/paths/{name}", "w") as f:
        f.write("\n".join(paths) + "\n")
for cls, qs in queries.items():
    write("search-" + cls, [f"/search?q={enc(x)}" for x in qs])
    write("api-" + cls, [f"/api/v1/search?q={enc(x)}" for x in qs])
# Message pages: 200 ids spread evenly over the store, of log-only messages and of
# messages with a body (from the Maildir: decoded, sanitised, attachments listed).
def spread(sql, k=200):
    ids = [i for (i,) in q(sql)]
    step = max(1, len(ids) // k)
    return ids[::step][:k]
log_ids = spread("SELECT id FROM messages WHERE content_hash IS NULL ORDER BY id")
body_ids = spread("SELECT id FROM messages WHERE content_hash IS NOT NULL ORDER BY id")
write("message-log", [f"/message/{i}" for i in log_ids])
write("message-body", [f"/message/{i}" for i in body_ids])
write("dashboard-30d", [f"/dashboard?from={f}&to={t}" for f, t in periods])
write("dashboard-365d", [f"/dashboard?from={last - dt.timedelta(days=364)}&to={last}"])
first, lastt = q("SELECT min(sort_time), max(sort_time) FROM messages WHERE sort_time > 0")[0]
per_period = [q("SELECT count(*) FROM messages WHERE sort_time >= ? AND sort_time < ?",
                int(dt.datetime.combine(f, dt.time(), dt.timezone(dt.timedelta(hours=9))).timestamp() * 1e6),
                int(dt.datetime.combine(t + dt.timedelta(days=1), dt.time(), dt.timezone(dt.timedelta(hours=9))).timestamp() * 1e6))[0][0]
              for f, t in periods]
json.dump({
    "messages": q("SELECT count(*) FROM messages")[0][0],
    "with_body": q("SELECT count(*) FROM messages WHERE content_hash IS NOT NULL")[0][0],
    "attachments": q("SELECT count(*) FROM attachments")[0][0],
    "recipients": q("SELECT count(*) FROM recipients")[0][0],
    "deliveries": q("SELECT count(*) FROM deliveries")[0][0],
    "first": dt.datetime.fromtimestamp(first / 1e6, dt.timezone.utc).isoformat(timespec="minutes"),
    "last": dt.datetime.fromtimestamp(lastt / 1e6, dt.timezone.utc).isoformat(timespec="minutes"),
    "queries": queries,
    "periods": [[str(f), str(t)] for f, t in periods],
    "messages_per_period": per_period,
    "log_ids": [log_ids[0], log_ids[-1]] if log_ids else [],
    "body_ids": [body_ids[0], body_ids[-1]] if body_ids else [],
}, open(f"{out}/store.json", "w"), ensure_ascii=False, indent=1)
PY
}

# match_counts OUT CLASS: "min–max" of the API's count over the class's queries
match_counts() {
    local out=$1 cls=$2 p c counts=()
    while read -r p; do
        [ -n "$p" ] || continue
        c=$(curl -sS -H "Cookie: $COOKIE" "http://$ADDR${p}&limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
        counts+=("$c")
    done <"$out/paths/api-$cls"
    printf '%s\n' "${counts[@]}" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END{printf "%\047d–%\047d", lo, hi}'
}

# rr A B: B/A as "N.NN×", or n/a when either is not a number (a run without answers)
rr() { case "$1$2" in *'>'*|*none*|'') echo "n/a";; *) echo "$(ratio "$2" "$1")×";; esac; }

audit_count() {
    python3 -c 'import sqlite3,sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("SELECT count(*) FROM audit_log").fetchone()[0])' "$D/mailtrail.db"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
vm() { awk -v k="$1:" '$1==k {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status"; }

# run_wrk OUT CLASS CONNS THREADS SECS: one wrk run; OUT/CLASS-cCONNS.{json,txt,time}, server CPU in .cpu
run_wrk() {
    local out=$1 cls=$2 c=$3 t=$4 s=$5 base t0 t1 w0 w1
    base=$out/$cls-c$c
    t0=$(cpu_ticks); w0=$(date +%s.%N)
    CONSOLE_PATHS=$out/paths/$cls CONSOLE_COOKIE=$COOKIE \
        /usr/bin/time -f '%e %M %U %S' -o "$base.time" \
        wrk -t"$t" -c"$c" -d"${s}s" --timeout 60s --latency -s "$LUA" "http://$ADDR" >"$base.txt" 2>&1 \
        || { cat "$base.txt" >&2; die "wrk failed ($cls, $c connections)"; }
    t1=$(cpu_ticks); w1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v w0="$w0" -v w1="$w1" -v hz="$CLK_TCK" \
        'BEGIN{printf "%.2f", (b-a)/hz/(w1-w0)}' >"$base.cpu"
    sed -n 's/^CONSOLE_RESULT //p' "$base.txt" >"$base.json"
    [ -s "$base.json" ] || { cat "$base.txt" >&2; die "no CONSOLE_RESULT line from wrk ($cls)"; }
}

# jf FILE KEY: a field of a result
jf() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
bad_of() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["non2xx"]+j["connect_errors"]+j["read_errors"]+j["write_errors"]+j["timeouts"])' "$1"; }

# class name | label | target ms (p95; "-" none) | loaded run (1) or one connection only (0) | slow (1: SLOW seconds)
CLASSES=(
    "search-word|search page, a word|200|1|0"
    "search-japanese|search page, a Japanese phrase|200|1|0"
    "search-address|search page, an address (from:)|200|1|0"
    "search-period|search page, a 30-day period|200|1|0"
    "api-word|API search, a word|200|1|0"
    "api-japanese|API search, a Japanese phrase|200|1|0"
    "api-address|API search, an address (from:)|200|1|0"
    "api-period|API search, a 30-day period|200|1|0"
    "message-log|message page, log-only message|100|1|0"
    "message-body|message page, message with body|100|1|0"
    "dashboard-30d|dashboard, 30 days|500|1|1"
    "dashboard-365d|dashboard, 365 days (whole store; no target)|-|0|1"
)
FAILED=0

# The server's memory every 0.5 s while the load runs: peak anonymous and
# file-backed resident memory (VmHWM counts every mapping of the database
# file, once per read connection's memory map).
SAMPLER_PID=""
start_sampler() {
    local out=$1
    (
        anon=0 file=0
        while kill -0 "$SERVER_PID" 2>/dev/null; do
            read -r a f < <(awk '$1=="RssAnon:" {a=$2} $1=="RssFile:" {f=$2} END{print a+0, f+0}' "/proc/$SERVER_PID/status" 2>/dev/null || echo "0 0")
            [ "$a" -gt "$anon" ] && anon=$a
            [ "$f" -gt "$file" ] && file=$f
            echo "$anon $file" >"$out/memory.peak"
            sleep 0.5
        done
    ) &
    SAMPLER_PID=$!
}
stop_sampler() {
    [ -n "$SAMPLER_PID" ] || return 0
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
}

# bench_size N: one size; appends its Markdown section to $TMP; records P95_<class>_<N>, SOLO50_<class>_<N>
bench_size() {
    local n=$1 out=$BENCH_WORK/console-$1/run
    build_store "$n"
    rm -rf "$out"; mkdir -p "$out/data"
    # The run works on a copy of the database (the blobs, only read, are
    # shared): the sign-in, sessions and the audit entries of every request
    # stay out of the cached store, so each run starts from the same state.
    cp "$D"/mailtrail.db* "$out/data/"
    ln -s "$D/blobs" "$out/data/blobs"
    D=$out/data
    local audit0
    audit0=$(audit_count)
    say "warming the page cache with the store"
    warm "$D"
    start_server "$out"
    say "server pid $SERVER_PID on $ADDR"
    sign_in "$out"
    make_paths "$out"
    local dbb blobs rows=() solo_rows=() load0 load1 spec cls label target loaded slow r m
    dbb=$(bytes_of "$D"/mailtrail.db*)
    blobs=$(bytes_tree "$D/blobs")
    declare -A matches
    for m in word japanese address period; do matches[$m]=$(match_counts "$out" "$m"); done
    say "warm-up: every path once"
    local f p
    for f in "$out"/paths/*; do
        case $f in *dashboard-365d) continue;; esac
        while read -r p; do
            curl -sS -o /dev/null -H "Cookie: $COOKIE" "http://$ADDR$p"
        done <"$f"
    done
    start_sampler "$out"
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    for spec in "${CLASSES[@]}"; do
        IFS='|' read -r cls label target loaded slow <<<"$spec"
        local la solo_secs secs
        la=$(cut -d' ' -f1 /proc/loadavg)
        solo_secs=$SOLO; secs=$DURATION
        if [ "$slow" = 1 ]; then solo_secs=$((SOLO * 4)); secs=$SLOW; fi
        [ "$loaded" = 0 ] && solo_secs=$SLOW
        local solo_p50="" solo_p95=""
        if [ "$solo_secs" != 0 ]; then
            say "$n: $cls, 1 connection, ${solo_secs}s"
            run_wrk "$out" "$cls" 1 1 "$solo_secs"
            solo_p50=$(jf "$out/$cls-c1.json" p50_ms); solo_p95=$(jf "$out/$cls-c1.json" p95_ms)
            [ "$(jf "$out/$cls-c1.json" requests)" != 0 ] || { solo_p50="none in ${solo_secs} s"; solo_p95=""; }
            [ "$(bad_of "$out/$cls-c1.json")" = 0 ] || { FAILED=1; echo "non-2xx or errors in $cls (1 connection): $(cat "$out/$cls-c1.json")" >&2; }
            printf -v "SOLO50_${cls//-/_}_$n" '%s' "$solo_p50"
        fi
        if [ "$loaded" = 1 ]; then
            say "$n: $cls, $CONNS connections, ${secs}s"
            run_wrk "$out" "$cls" "$CONNS" "$THREADS" "$secs"
            r=$out/$cls-c$CONNS.json
            local bad p95 done verdict
            bad=$(bad_of "$r")
            done=$(jf "$r" requests)
            [ "$bad" = 0 ] || { FAILED=1; echo "non-2xx or errors in $cls: $(cat "$r")" >&2; }
            p95=$(jf "$r" p95_ms)
            if [ "$done" -lt "$CONNS" ]; then
                # Fewer answers than connections: most requests were still running when wrk stopped.
                p95="> ${secs}000"
                verdict="**not met** (only $done answers in $secs s)"
            elif awk -v p="$p95" -v t="$target" 'BEGIN{exit !(p < t)}'; then verdict=met
            else verdict="**not met**"; fi
            [ "$bad" = 0 ] || verdict="$verdict; **$bad not 2xx**"
            printf -v "P95_${cls//-/_}_$n" '%s' "$p95"
            rows+=("| $label | < $target | $solo_p50 | $(jf "$r" p50_ms) | **$p95** | $(jf "$r" p99_ms) | $(jf "$r" max_ms) | $(jf "$r" rps) | $done | $bad | $secs | $(cat "$out/$cls-c$CONNS.cpu") | $(awk '{printf "%.2f", ($3+$4)/$1}' "$out/$cls-c$CONNS.time") | $la | $verdict |")
        else
            r=$out/$cls-c1.json
            rows_solo_p95=$(jf "$r" p95_ms)
            [ "$(jf "$r" requests)" != 0 ] || rows_solo_p95="> ${solo_secs}000"
            printf -v "P95_${cls//-/_}_$n" '%s' "$rows_solo_p95"
            solo_rows+=("| $label | $solo_secs | $(jf "$r" requests) | $(jf "$r" p50_ms) | $rows_solo_p95 | $(jf "$r" max_ms) | $(bad_of "$r") | $(cat "$out/$cls-c1.cpu") | $la |")
        fi
    done
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    local hwm rss peak_anon peak_file
    hwm=$(vm VmHWM); rss=$(vm VmRSS)
    stop_sampler
    read -r peak_anon peak_file <"$out/memory.peak"
    peak_anon=$((peak_anon / 1024)); peak_file=$((peak_file / 1024))
    local web_errors
    web_errors=$(grep -c 'mailtrail web' "$out/server.stderr" || true)
    stop_server
    local audited
    audited=$(($(audit_count) - audit0))
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -f "$D"/mailtrail.db*

    local sj=$out/store.json
    {
        echo "## Web console under load: $(printf "%'d" "$(jf "$sj" messages)") messages"
        echo
        echo "Store: $(printf "%'d" "$(jf "$sj" messages)") messages ($(printf "%'d" "$(jf "$sj" with_body)") with a body and attachments from the Maildir), $(printf "%'d" "$(jf "$sj" recipients)") recipients, $(printf "%'d" "$(jf "$sj" deliveries)") deliveries, $(printf "%'d" "$(jf "$sj" attachments)") attachments, $(jf "$sj" first) → $(jf "$sj" last) UTC; database $(human "$dbb") ($((dbb / $(jf "$sj" messages))) bytes/message), blobs $(human "$blobs"). ${BUILD_NOTE}."
        echo
        echo "Queries (each class cycles through its list; matches = the API's \`count\` for each):"
        echo
        python3 - "$sj" "${matches[word]}" "${matches[japanese]}" "${matches[address]}" "${matches[period]}" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
for (cls, qs), m in zip(j["queries"].items(), sys.argv[2:]):
    print(f"- {cls}: " + ", ".join(f"`{q}`" for q in qs) + f" ({m} matches)")
print(f"- message pages: 200 log-only messages (ids {j['log_ids'][0]}…{j['log_ids'][-1]}) and 200 with a body (ids {j['body_ids'][0]}…{j['body_ids'][-1]}), spread evenly over the store")
print("- dashboard, 30 days: " + ", ".join(f"{f} → {t} ({n:,} messages)" for (f, t), n in zip(j["periods"], j["messages_per_period"])))
PY
        echo
        echo "wrk $CONNS connections ($THREADS threads), ${DURATION} s per class (dashboard ${SLOW} s), latency in ms; \"1 conn p50\" is a run on one connection just before (${SOLO} s; dashboard $((SOLO * 4)) s): the time of one request without queueing. \"answers\" counts the requests completed (wrk drops those still running when it stops). Server CPU in cores (of $(nproc)), wrk's own CPU beside it (same machine)."
        echo
        echo "| class | target p95 | 1 conn p50 | p50 | p95 | p99 | max | req/s | answers | non-2xx + errors | s | server CPU | wrk CPU | load (1 min) | target |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        printf '%s\n' "${rows[@]}"
        echo
        if [ ${#solo_rows[@]} -gt 0 ]; then
            echo "Without a target, one connection only:"
            echo
            echo "| class | s | answers | p50 | p95 | max | non-2xx + errors | server CPU | load (1 min) |"
            echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
            printf '%s\n' "${solo_rows[@]}"
            echo
        fi
        echo "Server memory: peak anonymous RSS $peak_anon MiB (sampled every 0.5 s; heap, SQLite page caches), peak file-backed RSS $peak_file MiB and VmHWM $hwm MiB (the database file's pages, counted once per read connection's memory map: page cache, not memory of the process's own), RSS at the end $rss MiB. The run wrote $(printf "%'d" "$audited") audit entries (one per request, to a copy of the store). $web_errors error line(s) on the server's stderr$( [ "$web_errors" = 0 ] || echo ": $(sed -n 's/^mailtrail web[a-z ]*: //p' "$out/server.stderr" | sort | uniq -c | sort -rn | head -3 | awk '{c=$1; $1=""; sub(/^ /, ""); printf "%s %s ×%s", sep, $0, c; sep=";"}')"). Load average $load0 before the first class, $load1 after the last."
        echo
    } >>"$TMP"
}

OUT=$BENCH_DIR/results/RESULTS-$(date +%Y-%m-%d)-console.md
[ -e "$OUT" ] && OUT=$BENCH_DIR/results/RESULTS-$(date +%Y-%m-%d-%H%M)-console.md
TMP=$BENCH_WORK/console-results.partial.md
{
    echo "# mailtrail web console benchmark, $(date +%Y-%m-%d)"
    echo
    echo "Generated with \`bench/console.sh ${SIZES[*]}\`: \`mailtrail generate --postfix-lines (9.3 × N) --maildir-messages (N / $BODIES) --employees $EMPLOYEES --days $CDAYS --start $START --seed $SEED\` imported in one \`mailtrail import\`, then \`mailtrail serve --http 127.0.0.1:0 --smtp 127.0.0.1:0\` on it, an administrator signed in with curl, and per request class \`wrk -t$THREADS -c$CONNS -d${DURATION}s --timeout 60s -s bench/console.lua\` with the session cookie (bench/console.lua counts every answer that is not 2xx)."
    echo
    echo "## Machine"
    echo
    machine_md
    echo "| binary under test | \`$MAILTRAIL\` (sha256 $(sha256sum "$MAILTRAIL" | cut -c1-12), $(date -u -r "$MAILTRAIL" '+%Y-%m-%d %H:%M UTC')) |"
    echo "| wrk | $(wrk --version 2>&1 | head -1 | awk '{print $2}') |"
    echo
} >"$TMP"

if [ "${CONSOLE_BUILD_ONLY:-0}" = 1 ]; then
    for n in "${SIZES[@]}"; do build_store "$n"; echo "$n: $D ($BUILD_NOTE)"; done
    rm -f "$TMP"
    exit 0
fi
for n in "${SIZES[@]}"; do
    bench_size "$n"
done

if [ ${#SIZES[@]} -ge 2 ]; then
    small=${SIZES[0]} big=${SIZES[${#SIZES[@]}-1]}
    {
        echo "## Cost curve: $(printf "%'d" "$small") → $(printf "%'d" "$big") messages (ms)"
        echo
        echo "| class | 1 conn p50, $(printf "%'d" "$small") | 1 conn p50, $(printf "%'d" "$big") | ratio | p95 at $CONNS conns, $(printf "%'d" "$small") | p95 at $CONNS conns, $(printf "%'d" "$big") | ratio |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        for spec in "${CLASSES[@]}"; do
            IFS='|' read -r cls label _ loaded _ <<<"$spec"
            a=P95_${cls//-/_}_$small; b=P95_${cls//-/_}_$big
            c=SOLO50_${cls//-/_}_$small; d=SOLO50_${cls//-/_}_$big
            [ -n "${!a:-}" ] && [ -n "${!b:-}" ] || continue
            if [ "$loaded" = 0 ]; then
                echo "| $label (1 connection: p50, p95) | ${!c:-} | ${!d:-} | $(rr "${!c:-}" "${!d:-}") | ${!a} | ${!b} | $(rr "${!a}" "${!b}") |"
            else
                echo "| $label | ${!c:-} | ${!d:-} | $(rr "${!c:-}" "${!d:-}") | ${!a} | ${!b} | $(rr "${!a}" "${!b}") |"
            fi
        done
        echo
    } >>"$TMP"
fi
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)." >>"$TMP"

if [ "$FAILED" != 0 ]; then
    cat "$TMP"
    die "some answers were not 2xx or failed (see above); results left in $TMP, not in bench/results"
fi
mv "$TMP" "$OUT"
cat "$OUT"
echo >&2
echo "wrote $OUT" >&2
