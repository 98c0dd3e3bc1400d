#!/usr/bin/env python3
"""Per-statement timings behind bench/console.sh: the SQL the console runs for
each request class (copied from crates/store/src/sqlite.rs: Store::count,
Store::search, load_message, Store::dashboard), timed one statement at a time
on an idle store, median of RUNS, in ms; then what two proposed changes would
cost (page 1 walked in time order; `from:` by an exact B-tree instead of the
FTS phrase, on a scratch copy when one is given).

Usage: bench/console_sql.py DATA_DIR/mailtrail.db [RUNS] [STORE_JSON] [SCRATCH_COPY]
  STORE_JSON: $BENCH_WORK/console-N/run/store.json written by bench/console.sh
  SCRATCH_COPY: a writable copy of the database (it gets two indexes)
Needs SQLite >= 3.43 (FTS5 contentless_delete), as the store bundles: the
Python package pysqlite3-binary when the system's sqlite3 is older.
"""
import json, statistics, sys, time
try:
    import pysqlite3 as sqlite3
except ImportError:
    import sqlite3
if tuple(map(int, sqlite3.sqlite_version.split("."))) < (3, 43, 0):
    sys.exit(f"SQLite {sqlite3.sqlite_version} cannot read the store's FTS5 tables (needs 3.43+): pip install pysqlite3-binary")

db = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
store = json.load(open(sys.argv[3])) if len(sys.argv) > 3 else None
scratch = sys.argv[4] if len(sys.argv) > 4 else None

def conn():
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    c.execute("PRAGMA cache_size=-16384")
    c.execute("PRAGMA mmap_size=1073741824")
    return c

C = conn()
def t(sql, params=(), fresh=False):
    out = []
    rows = None
    for _ in range(runs):
        c = conn() if fresh else C
        t0 = time.perf_counter()
        rows = c.execute(sql, params).fetchall()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out), rows

total = C.execute("SELECT ifnull(max(id),0) FROM messages").fetchone()[0]
cap = max(total // 20, 1)

def union(field_targets, expr):
    parts, params = [], []
    for table, cols in field_targets:
        params.append(expr if not cols else f"{cols} : {expr}")
        parts.append(f"SELECT rowid FROM {table} WHERE {table} MATCH ?")
    return " UNION ".join(parts), params

ANY = [("fts_meta", ""), ("fts_body", "")]
FROM = [("fts_meta", "sender")]

def search_text(label, targets, expr):
    u, p = union(targets, expr)
    r = {}
    r["count"], rows = t(f"SELECT count(*) FROM ({u})", p)
    n = rows[0][0]
    r["probe"], rows = t(f"SELECT count(*) FROM (SELECT 1 FROM messages m WHERE m.id IN ({u}) LIMIT {cap})", p)
    common = rows[0][0] >= cap
    plus = "+" if common else ""
    r["page"], ids = t(f"SELECT m.id FROM messages m WHERE {plus}m.id IN ({u}) ORDER BY m.sort_time DESC, m.id DESC LIMIT 50 OFFSET 0", p)
    for table, cols in targets:
        e = expr if not cols else f"{cols} : {expr}"
        r[f"match {table}"], rows = t(f"SELECT count(*) FROM {table} WHERE {table} MATCH ?", (e,))
    r["load 50"] = load([i for (i,) in ids])
    print(f"{label}: {n} matches, {'common (walk in time order)' if common else 'rare (drive by matches)'}; "
          + ", ".join(f"{k} {v:.1f}" for k, v in r.items()))

def load(ids):
    t0 = time.perf_counter()
    for i in ids:
        C.execute("""SELECT id, message_id, date, first_seen, direction, envelope_from, from_addr,
                    from_name, reply_to_addr, reply_to_name, subject, size, auth, client_ip,
                    systems, content_hash, preview FROM messages WHERE id = ?""", (i,)).fetchall()
        C.execute("SELECT address, kind, display_name FROM recipients WHERE message = ?", (i,)).fetchall()
        C.execute("""SELECT time, recipient, status, detail, system, relay, client_ip, client_host, local_id,
                     original_recipient FROM deliveries WHERE message = ? ORDER BY time, seq""", (i,)).fetchall()
        C.execute("""SELECT filename, content_type, size, blake3, encrypted, inner_names
                     FROM attachments WHERE message = ? ORDER BY position""", (i,)).fetchall()
    return (time.perf_counter() - t0) * 1000

def micros(d, tz=9):
    import datetime as dt
    return int(dt.datetime.combine(dt.date.fromisoformat(d), dt.time(), dt.timezone(dt.timedelta(hours=tz))).timestamp() * 1e6)

print(f"store {db}: {total} max id, probe cap {cap}")
ms, _ = t("SELECT count(*) FROM sqlite_schema", fresh=True)
print(f"open a read-only connection + read the schema: {ms:.1f}")

for w in ["invoice", "meeting", "confidential", "schedule"]:
    search_text(f"word {w}", ANY, f'"{w}"')
for label, e in [("社外秘", '"社外 外秘"'), ("見積書", '"見積 積書"'), ("顧客リスト", '"顧客 客リ リス スト"'), ("議事録", '"議事 事録"')]:
    search_text(f"japanese {label}", ANY, e)
if store:
    for q in store["queries"]["address"]:
        a = q.split(":", 1)[1]
        toks = " ".join(a.replace("@", " ").replace(".", " ").replace("-", " ").replace("_", " ").split())
        search_text(f"address {a}", FROM, f'"{toks}"')
    for f, to in store["periods"]:
        import datetime as dt
        lo, hi = micros(f), micros(str(dt.date.fromisoformat(to) + dt.timedelta(days=1)))
        r = {}
        r["count"], rows = t("SELECT count(*) FROM messages m WHERE (m.sort_time >= ? AND m.sort_time < ?)", (lo, hi))
        n = rows[0][0]
        r["probe"], rows = t(f"SELECT count(*) FROM (SELECT 1 FROM messages m WHERE (m.sort_time >= ? AND m.sort_time < ?) LIMIT {cap})", (lo, hi))
        r["page"], ids = t("SELECT m.id FROM messages m WHERE (m.sort_time >= ? AND m.sort_time < ?) ORDER BY m.sort_time DESC, m.id DESC LIMIT 50", (lo, hi))
        r["load 50"] = load([i for (i,) in ids])
        print(f"period {f}..{to}: {n} messages; " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()))
    # Dashboard: every statement of SqliteStore::dashboard for the first period.
    f, to = store["periods"][0]
    import datetime as dt
    lo, hi = micros(f), micros(str(dt.date.fromisoformat(to) + dt.timedelta(days=1)))
    d = {}
    t0 = time.perf_counter()
    day = dt.date.fromisoformat(f)
    while day <= dt.date.fromisoformat(to):
        a, b = micros(str(day)), micros(str(day + dt.timedelta(days=1)))
        C.execute("SELECT direction, count(*) FROM messages m WHERE m.sort_time >= ? AND m.sort_time < ? GROUP BY direction ORDER BY 1", (a, b)).fetchall()
        day += dt.timedelta(days=1)
    d["per day (30 range scans)"] = (time.perf_counter() - t0) * 1000
    stmts = {
        "top senders": """SELECT a, count(DISTINCT id) FROM (
                 SELECT m.id, m.from_addr AS a FROM messages m
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2 AND m.from_addr IS NOT NULL
                 UNION
                 SELECT m.id, m.envelope_from FROM messages m
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2 AND m.envelope_from IS NOT NULL)
             WHERE a != '' GROUP BY a ORDER BY 2 DESC, 1 LIMIT ?3""",
        "top recipients": """SELECT a, count(DISTINCT id) FROM (
                 SELECT m.id, r.address AS a FROM messages m JOIN recipients r ON r.message = m.id
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2
                 UNION
                 SELECT m.id, d.recipient FROM messages m JOIN deliveries d ON d.message = m.id
                 WHERE m.sort_time >= ?1 AND m.sort_time < ?2)
             WHERE a != '' GROUP BY a ORDER BY 2 DESC, 1 LIMIT ?3""",
        "top domains (all rows, read until 10 external)": """SELECT dom, count(DISTINCT id) FROM (
                 SELECT id, lower(substr(a, instr(a, '@') + 1)) AS dom FROM (
                     SELECT m.id, m.from_addr AS a FROM messages m
                     WHERE m.sort_time >= ?1 AND m.sort_time < ?2
                     UNION ALL
                     SELECT m.id, m.envelope_from FROM messages m
                     WHERE m.sort_time >= ?1 AND m.sort_time < ?2
                     UNION ALL
                     SELECT m.id, r.address FROM messages m JOIN recipients r ON r.message = m.id
                     WHERE m.sort_time >= ?1 AND m.sort_time < ?2
                     UNION ALL
                     SELECT m.id, d.recipient FROM messages m JOIN deliveries d ON d.message = m.id
                     WHERE m.sort_time >= ?1 AND m.sort_time < ?2)
                 WHERE a IS NOT NULL AND instr(a, '@') > 0)
             WHERE dom != '' AND ?3 > 0 GROUP BY dom ORDER BY 2 DESC, 1""",
        "largest attachments": """SELECT a.message, a.filename, a.content_type, a.size, a.blake3
             FROM messages m JOIN attachments a ON a.message = m.id
             WHERE m.sort_time >= ?1 AND m.sort_time < ?2
             ORDER BY a.size DESC, a.message DESC, a.position LIMIT ?3""",
        "by status": """SELECT d.status, count(DISTINCT m.id) FROM messages m
             JOIN deliveries d ON d.message = m.id
             WHERE m.sort_time >= ?1 AND m.sort_time < ?2 AND ?3 > 0 GROUP BY d.status""",
        "failing recipients": """SELECT d.recipient, count(DISTINCT m.id) FROM messages m
             JOIN deliveries d ON d.message = m.id
             WHERE m.sort_time >= ?1 AND m.sort_time < ?2 AND d.status IN ('bounced', 'rejected', 'failed', 'expired')
               AND d.recipient != ''
             GROUP BY d.recipient ORDER BY 2 DESC, 1 LIMIT ?3""",
        "failing domains": """SELECT lower(substr(d.recipient, instr(d.recipient, '@') + 1)) AS dom,
                    count(DISTINCT m.id) FROM messages m
             JOIN deliveries d ON d.message = m.id
             WHERE m.sort_time >= ?1 AND m.sort_time < ?2 AND d.status IN ('bounced', 'rejected', 'failed', 'expired')
               AND instr(d.recipient, '@') > 0
             GROUP BY dom ORDER BY 2 DESC, 1 LIMIT ?3""",
    }
    for k, sql in stmts.items():
        d[k], _ = t(sql, (lo, hi, 10))
    n = C.execute("SELECT count(*) FROM messages WHERE sort_time >= ? AND sort_time < ?", (lo, hi)).fetchone()[0]
    print(f"dashboard {f}..{to} ({n} messages): " + ", ".join(f"{k} {v:.1f}" for k, v in d.items())
          + f"; sum {sum(d.values()):.1f}")
    for k in ("top recipients", "top domains (all rows, read until 10 external)"):
        plan = C.execute("EXPLAIN QUERY PLAN " + stmts[k], (lo, hi, 10)).fetchall()
        print(f"  plan of {k}: " + " | ".join(r[-1] for r in plan))

print()
print('proposed changes:')
copy = scratch
def tc(c, sql, p=()):
    xs = []
    for _ in range(5):
        t0 = time.perf_counter(); r = c.execute(sql, p).fetchall(); xs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(xs), r
U = "SELECT rowid FROM fts_meta WHERE fts_meta MATCH ?1 UNION SELECT rowid FROM fts_body WHERE fts_body MATCH ?1"
for w in ['"invoice"', '"meeting"', '"社外 外秘"', '"顧客 客リ リス スト"']:
    n = C.execute(f"SELECT count(*) FROM ({U})", (w,)).fetchone()[0]
    a, ra = tc(C, f"SELECT m.id FROM messages m WHERE m.id IN ({U}) ORDER BY m.sort_time DESC, m.id DESC LIMIT 50", (w,))
    b, rb = tc(C, f"SELECT m.id FROM messages m WHERE +m.id IN ({U}) ORDER BY m.sort_time DESC, m.id DESC LIMIT 50", (w,))
    print(f"page 1 of {w} ({n} matches): driven by matches (today's plan below total/20) {a:.1f} ms; "
          f"walking messages_sort newest first {b:.1f} ms; same ids: {ra == rb}")
if copy:
    W = sqlite3.connect(copy)
    t0 = time.perf_counter()
    W.execute("CREATE INDEX IF NOT EXISTS messages_from ON messages(from_addr)")
    W.execute("CREATE INDEX IF NOT EXISTS messages_envelope_from ON messages(envelope_from)")
    W.commit()
    print(f"building two address indexes on the copy: {(time.perf_counter() - t0) * 1000:.0f} ms")
    for a in [q.split(":", 1)[1] for q in (store["queries"]["address"] if store else [])]:
        toks = " ".join(a.replace("@", " ").replace(".", " ").split())
        f, rf = tc(W, "SELECT count(*) FROM (SELECT rowid FROM fts_meta WHERE fts_meta MATCH ?)", (f'sender : "{toks}"',))
        i, ri = tc(W, "SELECT count(*) FROM (SELECT id FROM messages WHERE from_addr = ?1 UNION SELECT id FROM messages WHERE envelope_from = ?1)", (a,))
        print(f"from:{a}: FTS phrase over sender {f:.1f} ms ({rf[0][0]} rows); B-tree on from_addr/envelope_from {i:.2f} ms ({ri[0][0]} rows)")
