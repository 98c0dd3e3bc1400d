#!/usr/bin/env python3
"""Load generator and probes for bench/serve.sh (Python 3 standard library only).

Runs one phase against an already running `mailtrail serve` and writes the
numbers as JSON (everything, with samples) and as a shell file of flat
`KEY=value` lines that serve.sh sources. Progress goes to stderr.

  loadgen.py smtp   --smtp ADDR --http ADDR --pid PID --data-dir D --mailtrail BIN \
                    --messages M --conns C --out PREFIX [...]
  loadgen.py syslog --syslog-tcp ADDR --http ADDR --pid PID --data-dir D --mailtrail BIN \
                    --maillog FILE --conns K --out PREFIX [...]

What is measured (both phases):

- the server's CPU (utime+stime from /proc/PID/stat) between the start and
  the end of the load, its peak (VmHWM) and current (VmRSS) resident memory
  from /proc/PID/status, RSS and queue depths sampled every 0.1 s;
- a search prober: `mailtrail search --count Q` for a bare word and for a
  from: address, one after the other every --probe-interval seconds, timed
  as process wall time (start-up, open, query, exit) while the load runs,
  and five times each once the load is over (idle);
- this process's own CPU and that of the search processes it started
  (getrusage), since on a small machine they compete with the server.

smtp: N threads, one connection each, send pre-built ~20 KB MIME messages
(multipart/mixed, Japanese text in UTF-8 or ISO-2022-JP, a base64 PDF/XLSX
attachment of 12-15 KB, unique Message-ID, From/To/Cc, and one envelope
recipient not named in the headers: a Bcc). A 4xx reply is retried after
--retry-delay seconds (like an MTA, faster), counted per code; a 5xx is
counted and the message given up. Rate = messages answered 250 / (last 250 -
first MAIL FROM). Searchable after 250: every --sample-interval seconds the
checker takes the next message to be answered 250 and runs
`search --count bcc:ADDR` (its unique envelope-only recipient) until it is 1.

syslog: the maillog (lines without <PRI> get <22>) is framed with RFC 6587
octet counting (or LF, --framing newline) into K files (split by Postfix
queue id, so each queue file's lines keep their order on one connection) and
sent with sendfile(2) on K TCP connections, as fast as the server reads.
Accepted = when mailtrail_syslog_tcp_lines_total has counted every bulk line
(if the server closes the connections before, the missing lines are
reported as lost); stored = the last change of
mailtrail_records_stored_total once the input is over, both queues are empty
and the counter has not moved for --settle seconds. Meanwhile a probe flow
(5 Postfix lines, current time stamp, unique Message-ID and recipient, host
"mxprobe") goes out every --probe-interval seconds on its own connection
until the input is over; a checker runs one `search --format json` for all
outstanding probes (to:A OR to:B ...) every --poll-interval seconds and
notes, per probe, the end of the first query that returned it. The latency
is from the send of the flow's last line to that moment, so it includes up
to one query's duration and one poll interval.
"""

import argparse
import base64
import json
import os
import queue
import random
import re
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone

try:
    from zoneinfo import ZoneInfo

    TOKYO = ZoneInfo("Asia/Tokyo")
except Exception:  # no tz database: Tokyo has no DST
    TOKYO = timezone(timedelta(hours=9))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[loadgen {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def hostport(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def pct(values, p):
    """Percentile by nearest rank (p in 0..100); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def summary(values):
    """Milliseconds summary of a list of seconds."""
    if not values:
        return {"n": 0}
    ms = [v * 1000.0 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(pct(ms, 95), 1),
        "p99_ms": round(pct(ms, 99), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


# ------------------------------------------------------------------ server side


class Server:
    """The mailtrail process under test: /proc and /metrics."""

    def __init__(self, pid, http, data_dir, mailtrail, tz, org):
        self.pid = pid
        self.http = http
        self.data_dir = data_dir
        self.mailtrail = mailtrail
        self.tz = tz
        self.org = org

    def alive(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime, stime are fields 14 and 15
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def memory_kib(self):
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        return out

    def thread_cpu(self):
        """{tid: (name, utime+stime seconds)} of the server's live threads."""
        out = {}
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return out
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                    raw = f.read()
            except OSError:
                continue
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            fields = raw.rsplit(")", 1)[1].split()
            out[tid] = (name, (int(fields[11]) + int(fields[12])) / CLK_TCK)
        return out

    def threads(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/task"))
        except OSError:
            return 0

    def metrics(self):
        with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            try:
                out[name.strip()] = float(value)
            except ValueError:
                pass
        return out

    def search(self, args):
        """Run `mailtrail search ARGS`; returns (wall seconds, rc, stdout)."""
        cmd = [self.mailtrail, "--data-dir", self.data_dir, "--timezone", self.tz,
               "--org-domain", self.org, "search"] + args
        t = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           cwd=os.path.dirname(self.data_dir) or "/")
        wall = time.perf_counter() - t
        if p.returncode != 0:
            log(f"search {args} failed (rc {p.returncode}): {p.stderr.decode(errors='replace').strip()[:300]}")
        return wall, p.returncode, p.stdout.decode(errors="replace")

    def count(self, query):
        wall, rc, out = self.search(["--count", query])
        try:
            n = int(out.strip())
        except ValueError:
            n = None
        return wall, rc, n


class Monitor(threading.Thread):
    """Samples /metrics and /proc every `interval` seconds."""

    def __init__(self, server, interval=0.1):
        super().__init__(daemon=True)
        self.server = server
        self.interval = interval
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.latest = None  # (t, metrics)
        self.series = []  # compact: t, records, tcp_lines, store_q, syslog_q, rss
        self.max = Counter()
        self.dead = False
        self.errors = 0

    def run(self):
        while not self.stop.is_set():
            t = time.perf_counter()
            if not self.server.alive():
                self.dead = True
                return
            try:
                m = self.server.metrics()
                mem = self.server.memory_kib()
            except Exception:
                self.errors += 1
                self.stop.wait(self.interval)
                continue
            with self.lock:
                self.latest = (t, m)
                row = (
                    round(t, 3),
                    int(m.get("mailtrail_records_stored_total", 0)),
                    int(m.get("mailtrail_syslog_tcp_lines_total", 0)),
                    int(m.get("mailtrail_store_queue_depth", 0)),
                    int(m.get("mailtrail_syslog_queue_depth", 0)),
                    mem.get("VmRSS", 0),
                )
                self.series.append(row)
                for k, v in (("store_queue_depth", row[3]), ("syslog_queue_depth", row[4]),
                             ("rss_kib", row[5])):
                    self.max[k] = max(self.max[k], v)
            self.stop.wait(max(0.0, self.interval - (time.perf_counter() - t)))

    def get(self):
        with self.lock:
            return self.latest


class SearchProber(threading.Thread):
    """Runs each query every `interval` seconds; records process wall times."""

    def __init__(self, server, queries, interval):
        super().__init__(daemon=True)
        self.server = server
        self.queries = queries
        self.interval = interval
        self.stop = threading.Event()
        self.samples = {q: [] for q in queries}
        self.failures = 0

    def run(self):
        nxt = time.perf_counter()
        while not self.stop.is_set():
            for q in self.queries:
                wall, rc, n = self.server.count(q)
                if rc == 0 and n is not None:
                    self.samples[q].append((wall, n))
                else:
                    self.failures += 1
            nxt += self.interval
            self.stop.wait(max(0.0, nxt - time.perf_counter()))

    def result(self):
        out = {"interval_s": self.interval, "failures": self.failures, "queries": {}}
        every = []
        for q, s in self.samples.items():
            walls = [w for w, _ in s]
            every += walls
            out["queries"][q] = dict(summary(walls), last_count=s[-1][1] if s else None)
        out["all"] = summary(every)
        return out


def idle_searches(server, queries, runs=5):
    walls = []
    per = {}
    for q in queries:
        w = []
        for _ in range(runs):
            wall, rc, n = server.count(q)
            if rc == 0:
                w.append(wall)
        per[q] = summary(w)
        walls += w
    return {"queries": per, "all": summary(walls)}


class Usage:
    """CPU of the server, of this process and of the processes it started."""

    def __init__(self, server):
        self.server = server
        self.t = time.perf_counter()
        self.cpu = server.cpu_seconds()
        self.tcpu = server.thread_cpu()
        self.me = resource.getrusage(resource.RUSAGE_SELF)
        self.kids = resource.getrusage(resource.RUSAGE_CHILDREN)

    def since(self, start):
        wall = self.t - start.t
        cpu = self.cpu - start.cpu

        def ru(a, b):
            return round((a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime), 2)

        by_name = Counter()
        busiest = Counter()
        count = Counter()
        for tid, (name, c) in self.tcpu.items():
            d = c - start.tcpu.get(tid, (name, 0.0))[1]
            by_name[name] += d
            busiest[name] = max(busiest[name], d)
            count[name] += 1
        return {
            "wall_s": round(wall, 3),
            "server_cpu_s": round(cpu, 2),
            # Threads alive at the end, summed by name (threads that ended meanwhile are missing).
            "server_threads_cpu_s": {k: {"cpu_s": round(v, 2), "threads": count[k],
                                         "busiest_thread_cpu_s": round(busiest[k], 2)}
                                     for k, v in by_name.most_common() if v >= 0.01},
            "server_cores": round(cpu / wall, 2) if wall > 0 else None,
            "loadgen_cpu_s": ru(self.me, start.me),
            "search_processes_cpu_s": ru(self.kids, start.kids),
        }


def threads_line(usage, top=4):
    t = usage["server_threads_cpu_s"]
    return ", ".join(f"{k} {v['cpu_s']} ({v['threads']} threads, busiest {v['busiest_thread_cpu_s']})"
                     if v["threads"] > 1 else f"{k} {v['cpu_s']}"
                     for k, v in list(t.items())[:top]) or "n/a"


def memory_result(server, monitor):
    mem = server.memory_kib()
    return {
        "vmhwm_mib": round(mem.get("VmHWM", 0) / 1024, 1),
        "vmrss_end_mib": round(mem.get("VmRSS", 0) / 1024, 1),
        "vmrss_max_sampled_mib": round(monitor.max["rss_kib"] / 1024, 1),
        "threads": server.threads(),
    }


def write_results(prefix, result, flat):
    with open(prefix + ".json", "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
    with open(prefix + ".env", "w") as f:
        for k, v in flat.items():
            v = "" if v is None else v
            f.write(f"{k}={shlex.quote(str(v))}\n")
    log(f"wrote {prefix}.json and {prefix}.env")


def flat_summary(prefix, s):
    out = {}
    for k in ("n", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        out[f"{prefix}_{k.upper()}"] = s.get(k)
    return out


# ------------------------------------------------------------------ messages

FAMILY = ["sato", "suzuki", "takahashi", "tanaka", "watanabe", "ito", "yamamoto", "nakamura",
          "kobayashi", "kato", "yoshida", "yamada", "sasaki", "yamaguchi", "matsumoto", "inoue",
          "kimura", "hayashi", "shimizu", "yamazaki", "mori", "abe", "ikeda", "hashimoto"]
GIVEN = ["taro", "hanako", "ken", "yuki", "daisuke", "megumi", "ryo", "ai", "hiroshi", "naoko",
         "takeshi", "yumi", "shota", "misaki", "kenta", "sakura", "manabu", "emi", "jun", "aya"]
PARTNERS = ["partner.example", "kyoto-soft.co.jp", "bluewave-systems.com", "sakura-trading.co.jp",
            "globex.example", "osaka-denki.co.jp", "acme-corp.example", "nagoya-logi.jp"]
SUBJECTS = [
    ("見積書の件", "ja"), ("【社外秘】新製品の価格表", "ja"), ("顧客リストの更新について", "ja"),
    ("Re: 打ち合わせの日程", "ja"), ("契約書ドラフト送付のご連絡", "ja"), ("請求書送付のお知らせ", "ja"),
    ("Confidential: Q3 figures", "en"), ("Invoice for November", "en"), ("Re: project status", "en"),
    ("Confidential - price list 2027", "en"), ("Meeting notes", "en"), ("Fw: 見積依頼", "ja"),
]
JA_LINES = [
    "いつもお世話になっております。", "株式会社サンプルの{name}です。",
    "先日ご依頼いただいた見積書を添付いたします。", "ご確認のほど、よろしくお願いいたします。",
    "社外秘の資料が含まれますので、取り扱いにはご注意ください。",
    "来週の打ち合わせの日程について、ご都合をお知らせください。",
    "顧客リストを更新しましたので共有いたします。", "ご不明な点がございましたら、お気軽にお問い合わせください。",
    "納期につきましては、別途ご相談させてください。", "以上、よろしくお願い申し上げます。",
]
EN_LINES = [
    "Dear {name},", "Please find attached the documents we discussed.",
    "This message and its attachment are confidential.", "Let me know if you have any questions.",
    "The invoice is due at the end of the month.", "Best regards,",
    "We would like to confirm the delivery schedule for next week.",
]
ATTACHMENTS = [
    ("見積書_2026-11.pdf", "application/pdf", b"%PDF-1.7\n"),
    ("invoice_2026-11.pdf", "application/pdf", b"%PDF-1.7\n"),
    ("顧客リスト.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK\x03\x04"),
    ("price_list_2027.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK\x03\x04"),
    ("契約書ドラフト.pdf", "application/pdf", b"%PDF-1.6\n"),
    ("meeting-notes.pdf", "application/pdf", b"%PDF-1.5\n"),
]


def person(rng, domain):
    return f"{rng.choice(GIVEN)}.{rng.choice(FAMILY)}{rng.choice(['', '', '', str(rng.randint(2, 9))])}@{domain}"


def b64_lines(data):
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def encoded_word(text, charset):
    if charset == "iso-2022-jp":
        raw = text.encode("iso2022_jp")
        return "=?ISO-2022-JP?B?" + base64.b64encode(raw).decode() + "?="
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def rfc2231(name):
    from urllib.parse import quote

    return "UTF-8''" + quote(name.encode(), safe="")


def build_message(rng, n, run, org, now):
    """One journal copy: (mail_from, [rcpt], stuffed DATA bytes ending '.\r\n', bcc address)."""
    outbound = rng.random() < 0.7
    sender = person(rng, org) if outbound or rng.random() < 0.3 else person(rng, rng.choice(PARTNERS))
    if outbound:
        to = [person(rng, rng.choice(PARTNERS)) for _ in range(rng.choice([1, 1, 2]))]
    else:
        to = [person(rng, org) for _ in range(rng.choice([1, 1, 2]))]
    cc = [person(rng, org)] if rng.random() < 0.4 else []
    bcc = f"audit.{run}.{n:07d}@records.example"
    subject, lang = rng.choice(SUBJECTS)
    charset = "us-ascii" if lang == "en" else rng.choice(["utf-8", "utf-8", "iso-2022-jp"])
    name = sender.split("@")[0].split(".")[0].capitalize()
    if lang == "ja":
        lines = [JA_LINES[0], JA_LINES[1].format(name=name)] + rng.sample(JA_LINES[2:], 4) + [
            "", "--", f"{name} / 営業部", "株式会社サンプル"]
    else:
        lines = [EN_LINES[0].format(name=to[0].split(".")[0].capitalize())] + rng.sample(EN_LINES[1:], 4) + [
            "", "--", name, "Sample Corp."]
    text = "\r\n".join(lines * rng.choice([2, 3, 4])) + "\r\n"
    if charset == "utf-8":
        body_headers = "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n"
        body = b64_lines(text.encode())
    elif charset == "iso-2022-jp":
        body_headers = "Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n"
        body = text.encode("iso2022_jp")
    else:
        body_headers = "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n"
        body = text.encode()
    subj = subject if lang == "en" else encoded_word(subject, "iso-2022-jp" if charset == "iso-2022-jp" else "utf-8")
    fname, ctype, magic = rng.choice(ATTACHMENTS)
    payload = magic + rng.randbytes(rng.randint(12000, 15000) - len(magic))
    if fname.isascii():
        disp = f'attachment; filename="{fname}"'
        ctname = f'name="{fname}"'
    else:
        disp = f"attachment; filename*={rfc2231(fname)}"
        ctname = f'name="{encoded_word(fname, "utf-8")}"'
    boundary = f"----=_Part_{n}_{rng.getrandbits(40):010x}"
    date = (now + timedelta(milliseconds=n)).strftime("%a, %d %b %Y %H:%M:%S +0900")
    from_name = encoded_word(f"{name} {'株式会社サンプル' if sender.endswith(org) else ''}".strip(), "utf-8")
    head = (
        f"Return-Path: <{sender}>\r\n"
        f"Received: from pc-{n % 2000:04d}.corp.{org} (pc-{n % 2000:04d}.corp.{org} [10.1.{n % 250}.{n % 200 + 1}])\r\n"
        f"\tby mx1.{org} (Postfix) with ESMTPSA id {n:010X}\r\n\tfor <{to[0]}>; {date}\r\n"
        f"From: {from_name} <{sender}>\r\n"
        f"To: {', '.join(to)}\r\n"
        + (f"Cc: {', '.join(cc)}\r\n" if cc else "")
        + f"Subject: {subj}\r\n"
        f"Date: {date}\r\n"
        f"Message-ID: <{run}.{n:07d}.{rng.getrandbits(32):08x}@mail.{org}>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"X-Mailer: Microsoft Outlook 16.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'
        f"\r\n"
        f"This is a multi-part message in MIME format.\r\n"
        f"--{boundary}\r\n"
        f"{body_headers}\r\n"
    ).encode()
    att = (
        f"\r\n--{boundary}\r\n"
        f"Content-Type: {ctype}; {ctname}\r\n"
        f"Content-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: {disp}\r\n\r\n"
    ).encode() + b64_lines(payload) + f"\r\n--{boundary}--\r\n".encode()
    data = head + body + att
    # Dot-stuffing (RFC 5321 4.5.2), then the end-of-data line.
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    return sender, to + cc + [bcc], data, bcc


# ------------------------------------------------------------------ SMTP client


class SmtpError(Exception):
    def __init__(self, stage, code, text):
        super().__init__(f"{stage}: {code} {text}")
        self.stage, self.code, self.text = stage, code, text


class SmtpConn:
    def __init__(self, addr, timeout):
        self.sock = socket.create_connection(hostport(addr), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rf = self.sock.makefile("rb")
        code, text = self.reply()
        if code != 220:
            raise SmtpError("greeting", code, text)
        code, text = self.cmd(b"EHLO loadgen.example.co.jp")
        if code != 250:
            raise SmtpError("EHLO", code, text)

    def reply(self):
        while True:
            line = self.rf.readline(4096)
            if not line:
                raise ConnectionError("connection closed by the server")
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), line[4:].decode(errors="replace").strip()

    def cmd(self, line):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.reply()
        except Exception:
            pass
        try:
            self.rf.close()
            self.sock.close()
        except Exception:
            pass


def smtp_phase(a):
    server = Server(a.pid, a.http, a.data_dir, a.mailtrail, a.timezone, a.org_domain)
    rng = random.Random(a.seed)
    run = f"{rng.getrandbits(24):06x}"
    now = datetime.now(TOKYO)
    t = time.perf_counter()
    msgs = [build_message(rng, n, run, a.org_domain, now) for n in range(a.messages)]
    sizes = [len(m[2]) for m in msgs]
    log(f"built {len(msgs)} messages in {time.perf_counter() - t:.1f}s, mean {statistics.fmean(sizes) / 1024:.1f} KiB")
    # The from: query: the most frequent sender of what we send.
    from_addr = Counter(m[0] for m in msgs).most_common(1)[0][0]
    queries = [a.word, f"from:{from_addr}"]

    lock = threading.Lock()
    nxt = iter(range(a.messages))
    stats = {"ok": 0, "perm_failed": 0, "retries": 0, "reconnects": 0}
    temp = Counter()  # "STAGE CODE" -> count (4xx, retried)
    perm = Counter()  # "STAGE CODE" -> count (5xx, given up)
    conn_errors = Counter()
    t_first = []
    t_last = [0.0]
    commit_wait = []  # end of DATA -> 250
    per_msg = []  # MAIL FROM -> 250 (successful attempt)
    want_sample = threading.Event()
    samples = queue.Queue()

    def sender(idx):
        conn = None
        first = True
        while True:
            with lock:
                n = next(nxt, None)
            if n is None:
                break
            mail_from, rcpts, data, bcc = msgs[n]
            attempts = 0
            while True:
                attempts += 1
                try:
                    if conn is None:
                        conn = SmtpConn(a.smtp, a.timeout)
                    t0 = time.perf_counter()
                    if first:
                        with lock:
                            t_first.append(t0)
                        first = False
                    code, text = conn.cmd(f"MAIL FROM:<{mail_from}> SIZE={len(data)}".encode())
                    if code != 250:
                        raise SmtpError("MAIL", code, text)
                    for r in rcpts:
                        code, text = conn.cmd(f"RCPT TO:<{r}>".encode())
                        if code not in (250, 251):
                            raise SmtpError("RCPT", code, text)
                    code, text = conn.cmd(b"DATA")
                    if code != 354:
                        raise SmtpError("DATA", code, text)
                    conn.sock.sendall(data)
                    t1 = time.perf_counter()
                    code, text = conn.reply()
                    t2 = time.perf_counter()
                    if code != 250:
                        raise SmtpError("end of DATA", code, text)
                    with lock:
                        stats["ok"] += 1
                        t_last[0] = max(t_last[0], t2)
                        commit_wait.append(t2 - t1)
                        per_msg.append(t2 - t0)
                    if want_sample.is_set():
                        with lock:
                            if want_sample.is_set():
                                want_sample.clear()
                                samples.put((n, bcc, t2))
                    break
                except SmtpError as e:
                    key = f"{e.stage} {e.code}"
                    if 400 <= e.code < 500 and attempts < a.max_attempts:
                        with lock:
                            temp[key] += 1
                            stats["retries"] += 1
                        if e.code == 421 or e.stage == "greeting":
                            conn.close() if conn else None
                            conn = None
                        else:
                            try:
                                conn.cmd(b"RSET")
                            except Exception:
                                conn = None
                        time.sleep(a.retry_delay)
                        continue
                    with lock:
                        perm[key if e.code >= 500 else key + " (gave up)"] += 1
                        stats["perm_failed"] += 1
                    try:
                        conn.cmd(b"RSET")
                    except Exception:
                        conn = None
                    break
                except (OSError, ConnectionError, ValueError) as e:
                    with lock:
                        conn_errors[type(e).__name__] += 1
                        stats["reconnects"] += 1
                    conn = None
                    if attempts >= a.max_attempts:
                        with lock:
                            perm["connection (gave up)"] += 1
                            stats["perm_failed"] += 1
                        break
                    time.sleep(a.retry_delay)
        if conn is not None:
            conn.close()

    searchable = []  # (seconds 250 -> found, queries needed)
    not_found = [0]
    stop_checker = threading.Event()

    def checker():
        while not stop_checker.is_set():
            want_sample.set()
            try:
                n, bcc, t250 = samples.get(timeout=0.5)
            except queue.Empty:
                continue
            tries = 0
            while True:
                tries += 1
                _, rc, cnt = server.count(f"bcc:{bcc}")
                if rc == 0 and cnt and cnt >= 1:
                    searchable.append((time.perf_counter() - t250, tries))
                    break
                if time.perf_counter() - t250 > a.found_timeout:
                    not_found[0] += 1
                    break
                time.sleep(a.poll_interval)
            # A bounded rate: the checker's processes compete with the server for the CPU.
            stop_checker.wait(a.sample_interval)
        want_sample.clear()

    monitor = Monitor(server)
    monitor.start()
    time.sleep(0.3)
    m0 = server.metrics()
    prober = SearchProber(server, queries, a.probe_interval)
    chk = threading.Thread(target=checker, daemon=True)
    u0 = Usage(server)
    prober.start()
    chk.start()
    log(f"sending {a.messages} messages on {a.conns} connections to {a.smtp}")
    threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(a.conns)]
    for th in threads:
        th.start()
    last_report = time.perf_counter()
    while any(th.is_alive() for th in threads):
        for th in threads:
            th.join(timeout=0.5)
        if monitor.dead:
            die("the mailtrail server died during the SMTP phase")
        if time.perf_counter() - last_report > 5:
            last_report = time.perf_counter()
            with lock:
                ok = stats["ok"]
            el = last_report - (min(t_first) if t_first else last_report)
            log(f"  {ok}/{a.messages} stored, {ok / el if el > 0 else 0:.0f} msg/s, retries {stats['retries']}")
    u1 = Usage(server)
    prober.stop.set()
    stop_checker.set()
    prober.join()
    chk.join(timeout=a.found_timeout + 5)
    m1 = server.metrics()
    mem = memory_result(server, monitor)
    monitor.stop.set()
    monitor.join()
    idle = idle_searches(server, queries)
    _, _, stored_count = server.count("")
    _, _, bcc_ok = server.count(f"bcc:{msgs[0][3]}")
    # `search --help`: "to: also matches envelope recipients"; the Bcc is one.
    _, _, to_bcc = server.count(f"to:{msgs[0][3]}")

    wall = (t_last[0] - min(t_first)) if t_first and t_last[0] else 0.0
    rate = stats["ok"] / wall if wall > 0 else 0.0
    delta = {k.replace("mailtrail_", ""): m1.get(k, 0) - m0.get(k, 0) for k in (
        "mailtrail_smtp_messages_stored_total", "mailtrail_smtp_messages_refused_total",
        "mailtrail_records_stored_total", "mailtrail_store_batches_total", "mailtrail_store_errors_total",
        "mailtrail_smtp_connections_total")}
    batches = delta["store_batches_total"]
    srch = summary([s for s, _ in searchable])
    usage = u1.since(u0)
    result = {
        "phase": "smtp",
        "messages": a.messages,
        "connections": a.conns,
        "mean_message_bytes": round(statistics.fmean(sizes)),
        "min_message_bytes": min(sizes),
        "max_message_bytes": max(sizes),
        "stored_250": stats["ok"],
        "perm_failed": stats["perm_failed"],
        "retries_4xx": stats["retries"],
        "temp_replies": dict(temp),
        "perm_replies": dict(perm),
        "connection_errors": dict(conn_errors),
        "wall_s": round(wall, 3),
        "rate_msg_s": round(rate, 1),
        "mbit_s": round(sum(sizes) * 8 / wall / 1e6, 1) if wall > 0 else None,
        "commit_wait": summary(commit_wait),
        "transaction": summary(per_msg),
        "searchable_after_250": srch,
        "searchable_queries_needed_max": max((t for _, t in searchable), default=None),
        "searchable_not_found": not_found[0],
        "metrics_delta": delta,
        "messages_per_commit": round(delta["records_stored_total"] / batches, 1) if batches else None,
        "max_store_queue_depth": monitor.max["store_queue_depth"],
        "search_under_load": prober.result(),
        "search_idle": idle,
        "queries": queries,
        "search_count_all": stored_count,
        "bcc_check": bcc_ok,
        "to_matches_bcc": to_bcc,
        "usage": usage,
        "memory": mem,
    }
    log(f"SMTP: {stats['ok']} stored in {wall:.1f}s = {rate:.0f} msg/s; 4xx retries {stats['retries']}, "
        f"failed {stats['perm_failed']}; search p95 {prober.result()['all'].get('p95_ms')} ms")
    flat = {
        "SMTP_MESSAGES": a.messages, "SMTP_CONNS": a.conns, "SMTP_OK": stats["ok"],
        "SMTP_FAILED": stats["perm_failed"], "SMTP_RETRIES": stats["retries"],
        "SMTP_TEMP": ", ".join(f"{k}×{v}" for k, v in temp.items()) or "none",
        "SMTP_PERM": ", ".join(f"{k}×{v}" for k, v in perm.items()) or "none",
        "SMTP_CONN_ERRORS": sum(conn_errors.values()),
        "SMTP_MEAN_KIB": round(statistics.fmean(sizes) / 1024, 1),
        "SMTP_WALL": round(wall, 2), "SMTP_RATE": round(rate, 1),
        "SMTP_COMMIT_P50": result["commit_wait"].get("p50_ms"),
        "SMTP_COMMIT_P99": result["commit_wait"].get("p99_ms"),
        "SMTP_PER_COMMIT": result["messages_per_commit"],
        "SMTP_MAXQ": monitor.max["store_queue_depth"],
        "SMTP_NOT_FOUND": not_found[0],
        "SMTP_COUNT_ALL": stored_count, "SMTP_BCC_OK": bcc_ok, "SMTP_TO_BCC": to_bcc,
        "SMTP_METRIC_STORED": int(delta["smtp_messages_stored_total"]),
        "SMTP_METRIC_REFUSED": int(delta["smtp_messages_refused_total"]),
        "SMTP_Q_WORD": queries[0], "SMTP_Q_FROM": queries[1],
        "SMTP_CPU": usage["server_cpu_s"], "SMTP_CORES": usage["server_cores"],
        "SMTP_THREAD_CPU": threads_line(usage),
        "SMTP_LOADGEN_CPU": usage["loadgen_cpu_s"], "SMTP_SEARCH_CPU": usage["search_processes_cpu_s"],
        "SMTP_HWM": mem["vmhwm_mib"], "SMTP_RSS": mem["vmrss_end_mib"],
        "SMTP_THREADS": mem["threads"],
    }
    flat.update(flat_summary("SMTP_SEARCH", result["search_under_load"]["all"]))
    flat.update(flat_summary("SMTP_SEARCH_W", result["search_under_load"]["queries"][queries[0]]))
    flat.update(flat_summary("SMTP_SEARCH_F", result["search_under_load"]["queries"][queries[1]]))
    flat.update(flat_summary("SMTP_IDLE", idle["all"]))
    flat.update(flat_summary("SMTP_VISIBLE", srch))
    write_results(a.out, result, flat)


# ------------------------------------------------------------------ syslog

QID_RE = re.compile(rb"^(?:<\d+>)?\S+\s+\d+\s+\S+\s+\S+\s+[^:\s]+: ([0-9A-Za-z]+): ")


def frame(line, framing):
    """One syslog message on a TCP stream: RFC 6587 octet counting or LF (non-transparent)."""
    if framing == "octet":
        return b"%d " % len(line) + line
    return line + b"\n"


def prepare_payload(maillog, conns, outdir, framing):
    """Framed lines in `conns` files; returns (paths, lines, bytes, from_addr)."""
    files = [open(os.path.join(outdir, f"syslog-payload-{i}.bin"), "wb") for i in range(conns)]
    bufs = [[] for _ in range(conns)]
    counts = [0] * conns
    nbytes = 0
    senders = Counter()
    rr = 0
    from_re = re.compile(rb"qmgr\[\d+\]: [0-9A-Za-z]+: from=<([^>]+)>")
    with open(maillog, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\r\n")
            if not line:
                continue
            if not line.startswith(b"<"):
                line = b"<22>" + line
            if conns > 1:
                m = QID_RE.match(line)
                if m and m.group(1) != b"NOQUEUE":
                    i = zlib.crc32(m.group(1)) % conns
                else:
                    i = rr % conns
                    rr += 1
            else:
                i = 0
            m = from_re.search(line)
            if m:
                senders[m.group(1)] += 1
            framed = frame(line, framing)
            bufs[i].append(framed)
            counts[i] += 1
            nbytes += len(framed)
            if len(bufs[i]) >= 65536:
                files[i].write(b"".join(bufs[i]))
                bufs[i].clear()
    for i in range(conns):
        files[i].write(b"".join(bufs[i]))
        files[i].close()
    org = [s for s, _ in senders.most_common() if s.endswith(b"@example.co.jp")]
    top = (org or [s for s, _ in senders.most_common(1)] or [b"nobody@example.co.jp"])[0].decode()
    return [fh.name for fh in files], counts, nbytes, top


def probe_flow(n, run, t, framing):
    stamp = t.strftime("%b %e %H:%M:%S")
    qid = f"{0xA0000000 + n:X}"  # 8 hex digits, a Postfix short queue id
    rcpt = f"probe.{run}.{n:05d}@partner.example"
    mid = f"probe.{run}.{n:05d}@example.co.jp"
    host = "mxprobe"
    lines = [
        f"<22>{stamp} {host} postfix/smtpd[10]: {qid}: client=pc-7.corp.example.co.jp[10.1.0.7]",
        f"<22>{stamp} {host} postfix/cleanup[11]: {qid}: message-id=<{mid}>",
        f"<22>{stamp} {host} postfix/qmgr[12]: {qid}: from=<taro.yamada@example.co.jp>, size=20480, nrcpt=1 (queue active)",
        f"<22>{stamp} {host} postfix/smtp[13]: {qid}: to=<{rcpt}>, relay=mx.partner.example[192.0.2.25]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 99ZZ)",
        f"<22>{stamp} {host} postfix/qmgr[12]: {qid}: removed",
    ]
    data = b"".join(frame(l.encode(), framing) for l in lines)
    return rcpt, mid, data, len(lines)


def syslog_phase(a):
    server = Server(a.pid, a.http, a.data_dir, a.mailtrail, a.timezone, a.org_domain)
    outdir = os.path.dirname(os.path.abspath(a.out))
    t = time.perf_counter()
    paths, counts, nbytes, from_addr = prepare_payload(a.maillog, a.conns, outdir, a.framing)
    bulk = sum(counts)
    log(f"framed ({a.framing}) {bulk} lines ({nbytes / 1e6:.0f} MB) into {a.conns} connection(s) in {time.perf_counter() - t:.1f}s")
    for p in paths:  # page cache
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    queries = [a.word, f"from:{from_addr}"]
    run = f"{random.Random(a.seed).getrandbits(24):06x}"

    # Probes: sent by one thread, found by another.
    plock = threading.Lock()
    probes = {}  # mid -> {"rcpt", "sent", "found"}
    probe_lines = [0]
    stop_probes = threading.Event()
    probe_sock = socket.create_connection(hostport(a.syslog_tcp), timeout=30)
    probe_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def probe_sender():
        n = 0
        nxt = time.perf_counter()
        while not stop_probes.is_set():
            rcpt, mid, data, k = probe_flow(n, run, datetime.now(TOKYO), a.framing)
            probe_sock.sendall(data)
            ts = time.perf_counter()
            with plock:
                probes[mid] = {"rcpt": rcpt, "sent": ts, "found": None, "queries": 0}
                probe_lines[0] += k
            n += 1
            nxt += a.probe_interval
            stop_probes.wait(max(0.0, nxt - time.perf_counter()))

    stop_checker = threading.Event()
    check_walls = []

    def probe_checker():
        while True:
            with plock:
                waiting = {m: p for m, p in probes.items() if p["found"] is None
                           and time.perf_counter() - p["sent"] < a.found_timeout}
            if not waiting:
                if stop_checker.is_set():
                    return
                time.sleep(0.02)
                continue
            query = " OR ".join(f"to:{p['rcpt']}" for p in waiting.values())
            wall, rc, out = server.search(["--format", "json", "--limit", str(len(waiting) + 10), query])
            tf = time.perf_counter()
            check_walls.append(wall)
            seen = set()
            for line in out.splitlines():
                try:
                    seen.add(json.loads(line).get("message_id"))
                except ValueError:
                    pass
            with plock:
                for m in waiting:
                    probes[m]["queries"] += 1
                    if m in seen:
                        probes[m]["found"] = tf
            time.sleep(a.poll_interval)

    done_send = []
    closed = []  # when the server closed each bulk connection (after our EOF, or earlier)

    def bulk_sender(path):
        s = socket.create_connection(hostport(a.syslog_tcp), timeout=600)
        with open(path, "rb") as f:
            s.sendfile(f)
        s.shutdown(socket.SHUT_WR)
        done_send.append(time.perf_counter())
        # Keep the connection until the server closes it (it has read everything).
        try:
            s.settimeout(600)
            while s.recv(4096):
                pass
        except OSError:
            pass
        closed.append(time.perf_counter())
        s.close()

    monitor = Monitor(server)
    monitor.start()
    time.sleep(0.3)
    m0 = server.metrics()
    base_lines = m0.get("mailtrail_syslog_tcp_lines_total", 0)
    prober = SearchProber(server, queries, a.probe_interval)
    u0 = Usage(server)
    t0 = u0.t
    prober.start()
    threading.Thread(target=probe_sender, daemon=True).start()
    chk = threading.Thread(target=probe_checker, daemon=True)
    chk.start()
    log(f"sending {bulk} lines on {a.conns} TCP connection(s) to {a.syslog_tcp}, probes every {a.probe_interval}s")
    senders = [threading.Thread(target=bulk_sender, args=(p,), daemon=True) for p in paths]
    for th in senders:
        th.start()

    t_accepted = None
    t_stored = None
    last_records = None
    last_change = None
    change_cpu = u0.cpu
    last_report = t0
    accepted_usage = None
    input_over = None  # all bulk lines counted, or the server stopped counting them
    bulk_counted = 0
    last_bulk_change = t0
    lost = 0
    stalled = False
    deadline = t0 + a.max_seconds
    while True:
        time.sleep(0.05)
        now = time.perf_counter()
        if monitor.dead:
            die("the mailtrail server died during the syslog phase")
        if now > deadline:
            log(f"giving up after {a.max_seconds}s: accepted={t_accepted is not None}")
            break
        try:
            m = server.metrics()
        except Exception:
            continue
        with plock:
            pl = probe_lines[0]
        lines = m.get("mailtrail_syslog_tcp_lines_total", 0) - base_lines
        records = m.get("mailtrail_records_stored_total", 0)
        if records != last_records:
            last_records, last_change = records, now
            change_cpu = server.cpu_seconds()
        if lines - pl != bulk_counted:
            bulk_counted, last_bulk_change = lines - pl, now
        if input_over is None and lines - pl >= bulk:
            t_accepted = input_over = now
            accepted_usage = Usage(server)
            stop_probes.set()
            log(f"  all {bulk} lines accepted after {now - t0:.1f}s; waiting for the store")
        elif input_over is None and len(closed) == len(paths) and now - last_bulk_change >= a.settle:
            # The server closed every bulk connection without counting every line.
            input_over = now
            lost = int(bulk - bulk_counted)
            stop_probes.set()
            log(f"  WARNING: the server closed the bulk connection(s) after counting {int(bulk_counted)} "
                f"of {bulk} lines ({lost} lost); waiting for the store")
        elif input_over is None and now - max(last_bulk_change, last_change) > a.stall_timeout:
            stalled = True
            log(f"  giving up: no line counted and no record stored for {a.stall_timeout:.0f}s "
                f"({int(bulk_counted)} of {bulk} lines counted)")
            break
        if input_over is not None:
            with plock:
                outstanding = sum(1 for p in probes.values() if p["found"] is None
                                  and now - p["sent"] < a.found_timeout)
            quiet = (m.get("mailtrail_store_queue_depth", 0) == 0
                     and m.get("mailtrail_syslog_queue_depth", 0) == 0)
            if outstanding == 0 and quiet and now - last_change >= a.settle:
                t_stored = last_change
                break
        if now - last_report > 5:
            last_report = now
            log(f"  {now - t0:5.1f}s: {int(lines)} lines in ({lines / (now - t0):.0f}/s), "
                f"{int(records)} records stored, line queue {int(m.get('mailtrail_syslog_queue_depth', 0))}, "
                f"store queue {int(m.get('mailtrail_store_queue_depth', 0))}, probes sent {len(probes)}")
    u1 = Usage(server)
    stop_probes.set()
    prober.stop.set()
    stop_checker.set()
    prober.join()
    chk.join(timeout=a.found_timeout + 5)
    m1 = server.metrics()
    mem = memory_result(server, monitor)
    monitor.stop.set()
    monitor.join()
    idle = idle_searches(server, queries)
    _, _, live_count = server.count("")
    # Did anything arrive after we called it stored? (would mean the settle time was too short)
    records_after = server.metrics().get("mailtrail_records_stored_total", 0)

    send_wall = (max(done_send) - t0) if len(done_send) == len(paths) else None
    acc_wall = (t_accepted - t0) if t_accepted else None
    e2e_wall = (t_stored - t0) if t_stored else None
    lat = [p["found"] - p["sent"] for p in probes.values() if p["found"] is not None]
    missing = sum(1 for p in probes.values() if p["found"] is None)
    vis = summary(lat)
    usage_end = u1.since(u0)
    # CPU up to the moment everything was stored (u1 is taken settle seconds later; the
    # server is idle then apart from the searches).
    usage_acc = accepted_usage.since(u0) if accepted_usage else None
    delta = {k.replace("mailtrail_", ""): m1.get(k, 0) - m0.get(k, 0) for k in (
        "mailtrail_syslog_tcp_lines_total", "mailtrail_records_stored_total",
        "mailtrail_rejects_stored_total", "mailtrail_store_batches_total", "mailtrail_store_errors_total")}
    result = {
        "phase": "syslog",
        "bulk_lines": bulk,
        "bulk_bytes": nbytes,
        "connections": a.conns,
        "lines_per_connection": counts,
        "probe_flows": len(probes),
        "probe_lines": probe_lines[0],
        "send_wall_s": round(send_wall, 3) if send_wall else None,
        "accepted_wall_s": round(acc_wall, 3) if acc_wall else None,
        "stored_wall_s": round(e2e_wall, 3) if e2e_wall else None,
        "accepted_lines_s": round(bulk / acc_wall) if acc_wall else None,
        "stored_lines_s": round(bulk / e2e_wall) if e2e_wall and t_accepted else None,
        "framing": a.framing,
        "bulk_lines_counted": int(bulk_counted),
        "bulk_lines_lost": lost,
        "stalled": stalled,
        "server_closed_bulk_s": [round(c - t0, 3) for c in closed],
        "settle_s": a.settle,
        "records_at_stored": int(last_records or 0),
        "records_after_idle_searches": int(records_after),
        "search_count_all_live": live_count,
        "searchable_after_log": vis,
        "searchable_missing": missing,
        "probe_check_query": summary(check_walls),
        "metrics_delta": delta,
        "records_per_commit": round(delta["records_stored_total"] / delta["store_batches_total"], 1)
        if delta["store_batches_total"] else None,
        "max_store_queue_depth": monitor.max["store_queue_depth"],
        "max_syslog_queue_depth": monitor.max["syslog_queue_depth"],
        "search_under_load": prober.result(),
        "search_idle": idle,
        "queries": queries,
        "usage_until_accepted": usage_acc,
        "usage_until_end": usage_end,
        "memory": mem,
        "series": monitor.series,
    }
    log(f"syslog: accepted {result['accepted_lines_s']} lines/s, stored {result['stored_lines_s']} lines/s; "
        f"searchable p99 {vis.get('p99_ms')} ms ({missing} missing)")
    if records_after != last_records:
        log(f"WARNING: records stored grew from {last_records} to {records_after} after the end was called")
    # Server CPU from the start to the last change of the stored-records counter.
    stored_cpu = round(change_cpu - u0.cpu, 2)
    result["server_cpu_until_stored_s"] = stored_cpu
    flat = {
        "SYS_LINES": bulk, "SYS_MB": round(nbytes / 1e6), "SYS_CONNS": a.conns,
        "SYS_SEND_WALL": round(send_wall, 2) if send_wall else "",
        "SYS_ACC_WALL": round(acc_wall, 2) if acc_wall else "",
        "SYS_E2E_WALL": round(e2e_wall, 2) if e2e_wall else "",
        "SYS_ACC_RATE": result["accepted_lines_s"] or 0,
        "SYS_FRAMING": a.framing, "SYS_COUNTED": int(bulk_counted), "SYS_LOST": lost,
        "SYS_STALLED": int(stalled),
        "SYS_E2E_RATE": result["stored_lines_s"] or 0,
        "SYS_RECORDS": int(last_records or 0), "SYS_RECORDS_AFTER": int(records_after),
        "SYS_LIVE_COUNT": live_count,
        "SYS_PROBES": len(probes), "SYS_PROBE_MISSING": missing,
        "SYS_PROBE_QUERY_P50": result["probe_check_query"].get("p50_ms"),
        "SYS_PER_COMMIT": result["records_per_commit"],
        "SYS_MAXQ_STORE": monitor.max["store_queue_depth"],
        "SYS_MAXQ_LINES": monitor.max["syslog_queue_depth"],
        "SYS_STORE_ERRORS": int(delta["store_errors_total"]),
        "SYS_Q_WORD": queries[0], "SYS_Q_FROM": queries[1],
        "SYS_CPU_ACC": usage_acc["server_cpu_s"] if usage_acc else "",
        "SYS_CORES_ACC": usage_acc["server_cores"] if usage_acc else "",
        "SYS_CPU": stored_cpu, "SYS_WALL_END": usage_end["wall_s"],
        "SYS_CORES": round(stored_cpu / e2e_wall, 2) if e2e_wall else "",
        "SYS_THREAD_CPU": threads_line(usage_end),
        "SYS_LOADGEN_CPU": usage_end["loadgen_cpu_s"], "SYS_SEARCH_CPU": usage_end["search_processes_cpu_s"],
        "SYS_HWM": mem["vmhwm_mib"], "SYS_RSS": mem["vmrss_end_mib"], "SYS_THREADS": mem["threads"],
    }
    flat.update(flat_summary("SYS_SEARCH", result["search_under_load"]["all"]))
    flat.update(flat_summary("SYS_SEARCH_W", result["search_under_load"]["queries"][queries[0]]))
    flat.update(flat_summary("SYS_SEARCH_F", result["search_under_load"]["queries"][queries[1]]))
    flat.update(flat_summary("SYS_IDLE", idle["all"]))
    flat.update(flat_summary("SYS_VISIBLE", vis))
    write_results(a.out, result, flat)
    probe_sock.close()
    if t_stored is None:
        log("the syslog phase did not finish: see the numbers above")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="phase", required=True)

    def common(sp):
        sp.add_argument("--http", required=True, help="mailtrail's /metrics address")
        sp.add_argument("--pid", type=int, required=True, help="mailtrail serve's process id")
        sp.add_argument("--data-dir", required=True)
        sp.add_argument("--mailtrail", required=True, help="mailtrail binary")
        sp.add_argument("--timezone", default="Asia/Tokyo")
        sp.add_argument("--org-domain", default="example.co.jp")
        sp.add_argument("--out", required=True, help="writes OUT.json and OUT.env")
        sp.add_argument("--word", default="confidential", help="bare word for the search prober")
        sp.add_argument("--probe-interval", type=float, default=0.5)
        sp.add_argument("--found-timeout", type=float, default=60.0)
        sp.add_argument("--poll-interval", type=float, default=0.05,
                        help="pause between searches while waiting for a probe or sample")
        sp.add_argument("--seed", type=int, default=1)

    s = sub.add_parser("smtp")
    common(s)
    s.add_argument("--smtp", required=True)
    s.add_argument("--messages", type=int, default=6000)
    s.add_argument("--conns", type=int, default=8)
    s.add_argument("--retry-delay", type=float, default=1.0)
    s.add_argument("--sample-interval", type=float, default=0.2,
                   help="pause between searchable-after-250 samples")
    s.add_argument("--max-attempts", type=int, default=30)
    s.add_argument("--timeout", type=float, default=120.0)

    y = sub.add_parser("syslog")
    common(y)
    y.add_argument("--syslog-tcp", required=True)
    y.add_argument("--maillog", required=True)
    y.add_argument("--conns", type=int, default=1)
    y.add_argument("--settle", type=float, default=2.0)
    y.add_argument("--framing", choices=["octet", "newline"], default="octet")
    y.add_argument("--stall-timeout", type=float, default=60.0)
    y.add_argument("--max-seconds", type=float, default=1800.0)

    a = p.parse_args()
    a.data_dir = os.path.abspath(a.data_dir)
    if a.phase == "smtp":
        smtp_phase(a)
    else:
        syslog_phase(a)


if __name__ == "__main__":
    main()
