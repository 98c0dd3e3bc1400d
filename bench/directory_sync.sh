#!/usr/bin/env bash
# Directory sync of a 50,000-person company: the LDAP fetch from a private
# OpenLDAP slapd (loaded with slapadd; paged results of 1,000, as Active
# Directory's MaxPageSize) and the Microsoft Graph fetch from the local
# stand-in of the tests (pages of 999), each to a complete, normalised
# snapshot. The requirement is "50,000 employees in under 60 s".
# Usage: bench/directory_sync.sh [PEOPLE]   (default 50000)
# Runs the ignored `large_*` tests of crates/server/tests/directory_sync.rs
# in a release build; they check the snapshot (count, ids, managers,
# departments, groups, disabled accounts) and print their times.
# Prints a Markdown section on stdout; progress on stderr.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PEOPLE=${1:-50000}
case $PEOPLE in ''|*[!0-9]*) die "PEOPLE must be a number, got '$PEOPLE'";; esac

if ! command -v slapd >/dev/null 2>&1 && [ ! -x /usr/sbin/slapd ]; then
    [ "${BENCH_NO_INSTALL:-0}" = 1 ] && die "slapd is missing (apt-get install slapd ldap-utils; BENCH_NO_INSTALL=1)"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    say "installing slapd ldap-utils (no system instance is configured)"
    echo "slapd slapd/no_configuration boolean true" | $sudo debconf-set-selections
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils >&2 \
        || { $sudo apt-get update >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils >&2; }
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/mailtrail-target}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "building the directory sync tests (release)"
(cd "$REPO_DIR" && cargo test --release -p mailtrail-server --test directory_sync --no-run >&2)

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
say "syncing $PEOPLE people from slapd and from the Graph stand-in"
(cd "$REPO_DIR" && MAILTRAIL_DIRECTORY_PEOPLE=$PEOPLE cargo test --release -p mailtrail-server \
    --test directory_sync -- --ignored --nocapture --test-threads 1 large_ 2>&1) | tee "$OUT" >&2
grep -q '^test result: ok' "$OUT" || die "the large directory sync tests failed"

# "bench: ldap people=… sync=0.86s" (after the test's name with --nocapture)
field() { grep -o "bench: $1 .*" "$OUT" | sed -n "s/.* $2=\([^ ]*\).*/\1/p" | head -1; }
LDAP_LOAD=$(field ldap 'slapadd+start')
LDAP_SYNC=$(field ldap sync)
ENTRA_SYNC=$(field entra sync)
ENTRA_PAGES=$(field entra pages)
[ -n "$LDAP_SYNC" ] && [ -n "$ENTRA_SYNC" ] || die "no timings in the tests' output"

echo "## Directory sync: $PEOPLE people"
echo
echo '```sh'
echo "bench/directory_sync.sh $PEOPLE"
echo "# = MAILTRAIL_DIRECTORY_PEOPLE=$PEOPLE cargo test --release -p mailtrail-server --test directory_sync -- --ignored large_"
echo '```'
echo
echo "| source | what is fetched | time | people/s |"
echo "|---|---|---:|---:|"
echo "| LDAP (OpenLDAP $(dpkg-query -W -f '${Version}' slapd 2>/dev/null || echo '?'), loopback) | paged search, 1,000 per page; GUID, names, kana, romaji, 3 addresses, manager DN, 2 groups, flags, hire date | ${LDAP_SYNC%s} s | $(rate "$PEOPLE" "${LDAP_SYNC%s}") |"
echo "| Microsoft Graph (local stand-in) | \`/users\` with \$select and \$expand=manager: $ENTRA_PAGES pages (Graph's 100 a page with \$expand) | ${ENTRA_SYNC%s} s | $(rate "$PEOPLE" "${ENTRA_SYNC%s}") |"
echo
echo "Loading the LDAP server (slapadd of $PEOPLE entries, then start): ${LDAP_LOAD%s} s, not part of the sync."
echo "Both times include the client's whole work: decoding, DN normalisation,"
echo "manager resolution, group names, normalising and sorting the snapshot."
echo "The Graph stand-in runs in the same process on the same 2 cores, so it"
echo "measures the client, not Microsoft's latency: $ENTRA_PAGES pages × the"
echo "service's answer time come on top (\`manager = false\` needs a tenth of the pages)."
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo);"
echo "load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)."

# ---------------------------------------------------------------- applying
# What a sync or import then does in the store: `mailtrail directory import`
# of a CSV of the same size (the store half of `directory sync`, which
# applies its snapshot the same way): the first time (everyone added), the
# same list again (nothing changes), and next month's (1% changed).
find_mailtrail
W=$BENCH_WORK/directory-$PEOPLE
rm -rf "$W"
mkdir -p "$W"
python3 - "$PEOPLE" "$W" <<'PY'
import random, sys
n, w = int(sys.argv[1]), sys.argv[2]
random.seed(1)
family = "佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本".split()
given = "太郎 花子 一郎 次郎 三郎 美咲 翔太 陽菜 大輔 直美".split()
depts = [f"本社/{d}/{k}" for d in "営業部 開発部 総務部 人事部 経理部 製造部".split() for k in "第一課 第二課 第三課".split()]
def rows(changed):
    out = ["社員番号,氏名,メールアドレス,別名,部署,上長,在籍区分,入社日"]
    for i in range(n):
        dept = depts[i % len(depts)]
        status = "在籍"
        if i in changed:
            dept = depts[(i + 1) % len(depts)]
            status = "退職" if i % 2 else "在籍"
        out.append(f"{100000 + i},{family[i % 15]} {given[i % 10]},user{i}@example.co.jp,u{i}@example.co.jp,{dept},{100000 + i // 10},{status},2020/04/01")
    return "\r\n".join(out) + "\r\n"
open(f"{w}/month1.csv", "wb").write(rows(set()).encode("cp932"))
open(f"{w}/month2.csv", "wb").write(rows(set(random.sample(range(n), n // 100))).encode("cp932"))
PY
say "directory import: $PEOPLE people, three times"
timed "$W/first.time" "$MAILTRAIL" --data-dir "$W/data" directory import "$W/month1.csv"
timed "$W/again.time" "$MAILTRAIL" --data-dir "$W/data" directory import "$W/month1.csv"
timed "$W/next.time" "$MAILTRAIL" --data-dir "$W/data" directory import "$W/month2.csv"
echo
echo "Applying a list of $PEOPLE people in the store (\`mailtrail directory import\`, CP932 CSV):"
echo
echo "| import | report | time | peak RSS MiB |"
echo "|---|---|---:|---:|"
for k in first again next; do
    echo "| $k | $(head -1 "$W/$k.time.out") | $(t_secs "$W/$k.time") s | $(t_rss_mib "$W/$k.time") |"
done
