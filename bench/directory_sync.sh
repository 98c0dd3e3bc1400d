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
