#!/usr/bin/env bash
# Monitoring rules: what 1,000 enabled rules cost ingest, and a retro-hunt.
# Usage: bench/rules.sh [MESSAGES] [RULES]   (default 20000 1000)
#
# Ingest: the same generated Maildir imported twice, once with no rules and
# once followed by `mailtrail rules run` with RULES generated rules (a mix of
# keyword, regex, recipient-domain, size, external-count, off-hours and
# first-contact rules, all enabled). Throughput with rules counts import and
# evaluation one after the other (on a 2-core machine `serve` runs them side
# by side, so this is the pessimistic figure).
# Prints a Markdown section on stdout; progress on stderr.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MSGS=${1:-20000}
RULES=${2:-1000}
case $MSGS$RULES in ''|*[!0-9]*) die "MESSAGES and RULES must be numbers";; esac

find_mailtrail
need_tools python3
W=$BENCH_WORK/rules-$MSGS
mkdir -p "$W"
MD=$BENCH_WORK/maildir-$MSGS/gen/Maildir
if [ ! -d "$MD" ]; then
    say "generating $MSGS Maildir messages"
    mt "$W/unused" generate --maildir-messages "$MSGS" --employees "$EMPLOYEES" --days "$DAYS" --seed "$SEED" "$BENCH_WORK/maildir-$MSGS/gen" >&2
fi
warm "$MD"

say "generating $RULES rules"
python3 - "$RULES" "$W/rules.toml" "$W/one-rule.toml" <<'PY'
import random, sys
n, out, one = int(sys.argv[1]), sys.argv[2], sys.argv[3]
random.seed(1)
ja = "見積 請求書 契約 会議 社外秘 機密 極秘 顧客 名簿 予算 提案 納期 発注 検収 議事録 人事 給与 評価 採用 退職 出張 経費 売上 利益 計画 資料 報告 確認 依頼 案件 品質 不具合 対応 仕様 設計 試験 移行 障害 保守 更新".split()
en = "quote invoice contract meeting confidential secret customer list budget proposal deadline order minutes salary review hiring travel expense revenue plan report request project quality defect spec design test migration outage update".split()
domains = "gmail.com yahoo.co.jp outlook.jp icloud.com docomo.ne.jp ezweb.ne.jp au.com softbank.ne.jp hotmail.com aol.com partner.example client.example".split()
kinds = ["keywords"] * 50 + ["regex"] * 5 + ["domain"] * 15 + ["size"] * 10 + ["external"] * 10 + ["off_hours"] * 5 + ["first_contact"] * 5
# Like a real policy, most rules rarely match: a keyword rule watches words
# that are seldom written (a project code name), a domain rule free-mail
# recipients *and* a keyword, and so on.
rules = []
def kw(n):
    return "[" + ", ".join(f'"{w}{random.randint(10, 99)}"' for w in random.sample(ja, n - 1) + random.sample(en, 1)) + "]"
for i in range(n):
    k = random.choice(kinds)
    head = f'[[rule]]\nid = "bench-{i:04d}"\nname = "bench rule {i}"\n'
    if k == "keywords":
        cond = f'[[rule.condition]]\ntype = "keywords"\nwords = {kw(3)}\n'
    elif k == "regex":
        cond = f'[[rule.condition]]\ntype = "regex"\npatterns = ["案件番号[0-9]{{{random.randint(3, 6)}}}"]\n'
    elif k == "domain":
        cond = ('[[rule.condition]]\ntype = "recipient_domain"\ndomains = [' + ", ".join(f'"{d}"' for d in random.sample(domains, 3)) + "]\n"
                + f'[[rule.condition]]\ntype = "keywords"\nwords = {kw(2)}\n')
    elif k == "size":
        cond = f'[[rule.condition]]\ntype = "attachment_size"\nmin_bytes = {random.randint(5, 50) * 1000000}\n'
    elif k == "external":
        cond = f'[[rule.condition]]\ntype = "external_recipients"\nmin = {random.randint(10, 50)}\n'
    elif k == "off_hours":
        cond = f'[[rule.condition]]\ntype = "off_hours"\n[[rule.condition]]\ntype = "keywords"\nwords = {kw(2)}\n'
    else:
        cond = '[[rule.condition]]\ntype = "first_contact"\n[[rule.condition]]\ntype = "attachment_size"\nmin_bytes = 20000000\n'
    rules.append(head + cond + '[[rule.action]]\ntype = "alert"\nseverity = "low"\n')
open(out, "w").write("\n".join(rules))
open(one, "w").write('[[rule]]\nid = "confidential"\n[[rule.condition]]\ntype = "keywords"\nwords = ["社外秘"]\n[[rule.action]]\ntype = "alert"\nseverity = "high"\n')
PY
mt "$W/check" rules check --rules "$W/rules.toml" >/dev/null

run_case() { # NAME RULEFILE|-  -> sets T_IMPORT T_RUN
    local name=$1 rules=$2
    rm -rf "$W/data-$name"
    say "$name: import"
    timed "$W/$name-import.time" "$MAILTRAIL" --data-dir "$W/data-$name" --timezone "$TZ_NAME" --org-domain "$ORG" import -q "$MD"
    T_IMPORT=$(t_secs "$W/$name-import.time")
    T_RUN=0
    if [ "$rules" != - ]; then
        say "$name: rules run"
        timed "$W/$name-run.time" "$MAILTRAIL" --data-dir "$W/data-$name" --timezone "$TZ_NAME" --org-domain "$ORG" rules run --rules "$rules"
        cat "$W/$name-run.time.out" >&2
        T_RUN=$(t_secs "$W/$name-run.time")
    fi
}

run_case none -
NONE_IMPORT=$T_IMPORT
run_case one "$W/one-rule.toml"
ONE_IMPORT=$T_IMPORT; ONE_RUN=$T_RUN
ONE_OUT=$(cat "$W/one-run.time.out")
run_case many "$W/rules.toml"
MANY_IMPORT=$T_IMPORT; MANY_RUN=$T_RUN
MANY_OUT=$(cat "$W/many-run.time.out")
MANY_RSS=$(t_rss_mib "$W/many-run.time")

# ---------------------------------------------------------------- serve
# `mailtrail serve` receiving journal copies over SMTP (bench/loadgen.py,
# the load of bench/serve.sh), with no rules and with the RULES rules: the
# ingest rate, and whether evaluation kept up (messages still waiting for
# the rules when the load ends, and how long until none wait).
SERVE_MSGS=${RULES_SERVE_MESSAGES:-3000}
serve_case() { # NAME CONFIG -> SERVE_RATE, SERVE_BACKLOG, SERVE_DRAIN
    local name=$1 config=$2 i
    local d=$W/serve-$name-data out=$W/serve-$name
    rm -rf "$d"
    : >"$out.stdout"; : >"$out.stderr"
    "$MAILTRAIL" --config "$config" --data-dir "$d" --timezone "$TZ_NAME" --org-domain "$ORG" \
        serve --smtp 127.0.0.1:0 --http 127.0.0.1:0 >"$out.stdout" 2>"$out.stderr" &
    local pid=$!
    local smtp="" http=""
    for ((i = 0; i < 300; i++)); do
        smtp=$(awk '$1=="listening" && $2=="smtp" {print $3}' "$out.stdout")
        http=$(awk '$1=="listening" && $2=="http" {print $3}' "$out.stdout")
        [ -n "$smtp" ] && [ -n "$http" ] && break
        sleep 0.1
    done
    [ -n "$smtp" ] || die "serve did not start (see $out.stderr)"
    say "serve, $name: $SERVE_MSGS SMTP messages"
    python3 "$BENCH_DIR/loadgen.py" smtp --pid "$pid" --http "$http" --data-dir "$d" --mailtrail "$MAILTRAIL" \
        --timezone "$TZ_NAME" --org-domain "$ORG" --out "$out" --smtp "$smtp" --messages "$SERVE_MSGS" --conns 8 >&2
    . "$out.env"
    SERVE_RATE=$SMTP_RATE
    SERVE_BACKLOG=$(sqlite3 "$d/mailtrail.db" 'SELECT count(*) FROM eval_pending')
    local t0 t1
    t0=$(date +%s.%N)
    for ((i = 0; i < 1200; i++)); do
        [ "$(sqlite3 "$d/mailtrail.db" 'SELECT count(*) FROM eval_pending')" = 0 ] && break
        sleep 0.1
    done
    t1=$(date +%s.%N)
    SERVE_DRAIN=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
    SERVE_ALERTS=$(sqlite3 "$d/mailtrail.db" 'SELECT count(*) FROM alerts')
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
need_tools sqlite3
printf '[policy]\n' >"$W/serve-none.toml"
printf '[policy]\nrules = ["rules.toml"]\n' >"$W/serve-many.toml"
serve_case none "$W/serve-none.toml"
S_NONE_RATE=$SERVE_RATE
serve_case many "$W/serve-many.toml"
S_MANY_RATE=$SERVE_RATE; S_MANY_BACKLOG=$SERVE_BACKLOG; S_MANY_DRAIN=$SERVE_DRAIN; S_MANY_ALERTS=$SERVE_ALERTS

tp() { awk -v n="$MSGS" -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", n/(a+b)}'; }
drop() { awk -v base="$1" -v x="$2" 'BEGIN{printf "%.1f%%", 100*(1-x/base)}'; }
TP_NONE=$(tp "$NONE_IMPORT" 0)
TP_ONE=$(tp "$ONE_IMPORT" "$ONE_RUN")
TP_MANY=$(tp "$MANY_IMPORT" "$MANY_RUN")

echo "## Monitoring rules: $RULES enabled rules over $MSGS Maildir messages"
echo
echo '```sh'
echo "mailtrail --data-dir D import -q Maildir                       # no rules"
echo "mailtrail --data-dir D import -q Maildir && mailtrail --data-dir D rules run --rules RULES.toml"
echo '```'
echo
echo "| rules | import s | evaluation s | messages/s (import + evaluation) | throughput drop |"
echo "|---|---|---|---|---|"
echo "| none | $NONE_IMPORT | – | $TP_NONE | – |"
echo "| 1 keyword rule | $ONE_IMPORT | $ONE_RUN | $TP_ONE | $(drop "$TP_NONE" "$TP_ONE") |"
echo "| $RULES generated rules | $MANY_IMPORT | $MANY_RUN | $TP_MANY | $(drop "$TP_NONE" "$TP_MANY") |"
echo
echo "\`mailtrail serve\` receiving $SERVE_MSGS journal copies over SMTP (bench/loadgen.py, 8 connections, every message fsync'ed before 250):"
echo
echo "| rules | messages/s stored | throughput drop | waiting for the rules when the load ended | drained after | alerts |"
echo "|---|---|---|---|---|---|"
echo "| none | $S_NONE_RATE | – | – | – | – |"
echo "| $RULES generated rules | $S_MANY_RATE | $(drop "$S_NONE_RATE" "$S_MANY_RATE") | $S_MANY_BACKLOG | ${S_MANY_DRAIN} s | $S_MANY_ALERTS |"
echo
echo "Evaluation output: 1 rule: \`$ONE_OUT\`; $RULES rules: \`$MANY_OUT\` (peak RSS $MANY_RSS MiB)."
echo
machine_md
