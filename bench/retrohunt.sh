#!/usr/bin/env bash
# Retro-hunt: one rule dry-run over every stored message (`mailtrail rules
# test RULE --since 36500d`), on the store bench/console.sh builds.
# Usage: bench/retrohunt.sh [MESSAGES]   (default 1000000; uses
# $BENCH_WORK/console-MESSAGES/data, built by bench/console.sh MESSAGES)
# Prints a Markdown section on stdout; progress on stderr.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MSGS=${1:-1000000}
find_mailtrail
D=$BENCH_WORK/console-$MSGS/data
[ -d "$D" ] || die "no store in $D: run bench/console.sh $MSGS first"
W=$BENCH_WORK/retrohunt-$MSGS
mkdir -p "$W"

# The store may be of an older schema: open it once, untimed, to migrate.
say "opening $D (migrating if needed)"
timed "$W/migrate.time" "$MAILTRAIL" --data-dir "$D" --timezone "$TZ_NAME" --org-domain "$ORG" rules run --rules "$REPO_DIR/crates/policy/data/rules/leakage.toml" || true
TOTAL=$(mt "$D" search --count '')

cat >"$W/rules.toml" <<'TOML'
[[rule]]
id = "keyword-confidential"
name = "社外秘・confidential anywhere"
[[rule.condition]]
type = "keywords"
words = ["社外秘", "confidential"]
[[rule.action]]
type = "alert"
severity = "high"

[[rule]]
id = "confidential-to-freemail"
name = "社外秘 to a free-mail address"
[rule.scope]
directions = ["outbound"]
[[rule.condition]]
type = "keywords"
lists = ["confidential"]
[[rule.condition]]
type = "recipient_domain"
lists = ["freemail", "carrier"]
[[rule.action]]
type = "alert"
severity = "high"

[[rule]]
id = "freemail-outbound"
name = "any mail to a free-mail address (no keyword: every outbound message is examined)"
[rule.scope]
directions = ["outbound"]
[[rule.condition]]
type = "recipient_domain"
lists = ["freemail", "carrier"]
[[rule.action]]
type = "alert"
severity = "low"

[[rule]]
id = "off-hours-any"
name = "any mail outside working hours (nothing narrows it: every message is examined)"
[[rule.condition]]
type = "off_hours"
[[rule.action]]
type = "alert"
severity = "low"
TOML

echo "## Retro-hunt: one rule over $TOTAL stored messages"
echo
echo '```sh'
echo "mailtrail --data-dir D rules test RULE --rules rules.toml --since 36500d --limit 0"
echo '```'
echo
echo "| rule | examined (after the index) | would match | wall s | CPU s | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for rule in keyword-confidential confidential-to-freemail freemail-outbound off-hours-any; do
    say "rules test $rule"
    for run in 1 2; do
        timed "$W/$rule.time" "$MAILTRAIL" --data-dir "$D" --timezone "$TZ_NAME" --org-domain "$ORG" \
            rules test "$rule" --rules "$W/rules.toml" --since 36500d --limit 0
    done
    tail -1 "$W/$rule.time.out" >&2
    LINE=$(tail -1 "$W/$rule.time.out")
    MATCHED=$(echo "$LINE" | sed -n 's/.*: \([0-9]*\) message(s) since.*/\1/p')
    EXAMINED=$(echo "$LINE" | sed -n 's/.*(\([0-9]*\) examined.*/\1/p')
    echo "| $rule | $EXAMINED | $MATCHED | $(t_secs "$W/$rule.time") | $(t_cpu "$W/$rule.time") | $(t_rss_mib "$W/$rule.time") |"
done
echo
echo "The second of two runs is shown (the first warms the page cache)."
echo
machine_md
