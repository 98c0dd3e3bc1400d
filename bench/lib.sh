# shellcheck shell=bash
# Common helpers for bench/*.sh (sourced, not run).
#
# Environment:
#   MAILTRAIL      mailtrail binary (default: $CARGO_TARGET_DIR/release/mailtrail,
#                  else /var/tmp/mailtrail-target/release/mailtrail, else target/release/mailtrail)
#   BENCH_WORK     work directory for generated data (default /var/tmp/bench-work)
#   BENCH_NO_INSTALL=1  never call apt-get

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
BENCH_WORK=${BENCH_WORK:-/var/tmp/bench-work}
TZ_NAME=Asia/Tokyo
ORG=example.co.jp
SEED=1
EMPLOYEES=2000
DAYS=30

die() { echo "error: $*" >&2; exit 1; }
say() { printf '\n== %s\n' "$*" >&2; }

find_mailtrail() {
    if [ -n "${MAILTRAIL:-}" ]; then :
    elif [ -n "${CARGO_TARGET_DIR:-}" ] && [ -x "$CARGO_TARGET_DIR/release/mailtrail" ]; then
        MAILTRAIL=$CARGO_TARGET_DIR/release/mailtrail
    elif [ -x /var/tmp/mailtrail-target/release/mailtrail ]; then
        MAILTRAIL=/var/tmp/mailtrail-target/release/mailtrail
    elif [ -x "$REPO_DIR/target/release/mailtrail" ]; then
        MAILTRAIL=$REPO_DIR/target/release/mailtrail
    else
        die "no mailtrail binary: cargo build --release -p mailtrail (or set MAILTRAIL=...)"
    fi
    [ -x "$MAILTRAIL" ] || die "MAILTRAIL=$MAILTRAIL is not executable"
    export MAILTRAIL
}

# mt DATA_DIR ARGS...: mailtrail with the benchmark's global flags
mt() {
    local d=$1; shift
    "$MAILTRAIL" --data-dir "$d" --timezone "$TZ_NAME" --org-domain "$ORG" "$@"
}

# need_tools CMD... : install the Debian peers when a command is missing
need_tools() {
    local missing=() c
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "${BENCH_NO_INSTALL:-0}" = 1 ] && die "missing: ${missing[*]} (BENCH_NO_INSTALL=1)"
    local pkgs=(pflogsumm maildir-utils notmuch hyperfine time python3 sqlite3)
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    say "installing ${pkgs[*]} (missing: ${missing[*]})"
    $sudo apt-get install -y "${pkgs[@]}" >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y "${pkgs[@]}" >&2; }
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die "$c still missing after apt-get install"; done
}

# timed OUTFILE CMD...: run CMD with GNU time; OUTFILE gets "seconds maxrss_kib user_s sys_s".
# stdout of CMD goes to OUTFILE.out, stderr to OUTFILE.err.
timed() {
    local out=$1; shift
    if ! /usr/bin/time -f '%e %M %U %S' -o "$out" "$@" >"$out.out" 2>"$out.err"; then
        echo "command failed: $*" >&2
        tail -20 "$out.err" >&2
        return 1
    fi
}
t_secs() { awk '{print $1}' "$1"; }
t_rss_mib() { awk '{printf "%.0f", $2/1024}' "$1"; }
t_cpu() { awk '{printf "%.2f", $3+$4}' "$1"; }

# rate N SECONDS -> N/s, integer
rate() { awk -v n="$1" -v s="$2" 'BEGIN{ if (s<=0) s=0.01; printf "%.0f", n/s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b<=0) print "n/a"; else printf "%.2f", a/b }'; }
# bytes of files (apparent size), summed
bytes_of() { local s=0 f; for f in "$@"; do [ -e "$f" ] && s=$((s + $(stat -c %s "$f"))); done; echo "$s"; }
bytes_tree() { if [ -e "$1" ]; then du -sb "$1" | awk '{print $1}'; else echo 0; fi; }
human() { numfmt --to=iec --suffix=B "$1"; }

# warm the page cache with a tree, so the first tool timed does not pay for cold reads
warm() { find "$1" -type f -print0 | xargs -0 cat >/dev/null; }

# Markdown table of the machine and the tool versions
machine_md() {
    local cpu mem
    cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
    mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
    echo "| | |"
    echo "|---|---|"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| nproc | $(nproc) |"
    echo "| CPU | $cpu |"
    echo "| memory | $mem |"
    echo "| kernel | $(uname -sr) |"
    echo "| disk (work dir) | $(df -h --output=source,fstype,avail "$BENCH_WORK" | tail -1 | awk '{print $1" "$2", "$3" free"}') |"
    echo "| mailtrail | $("$MAILTRAIL" --version) ($(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO_DIR" && [ -n "$(git --no-optional-locks status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ] && echo ', dirty tree')) |"
    command -v pflogsumm >/dev/null && echo "| pflogsumm | $(dpkg-query -W -f '${Version}' pflogsumm 2>/dev/null || echo '?') |"
    command -v mu >/dev/null && echo "| mu | $(mu --version | head -1 | sed 's/.*version //') |"
    command -v notmuch >/dev/null && echo "| notmuch | $(notmuch --version | sed 's/notmuch //') (Xapian $(dpkg-query -W -f '${Version}' 'libxapian30' 2>/dev/null || echo '?')) |"
    command -v hyperfine >/dev/null && echo "| hyperfine | $(hyperfine --version | sed 's/hyperfine //') |"
    echo "| python3 | $(python3 --version | sed 's/Python //') |"
    echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
}
