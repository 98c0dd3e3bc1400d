#!/usr/bin/env python3
"""Ground truth for bench/search.sh, computed independently of mailtrail.

Decodes every message file of a Maildir(++) with the standard library
(`email` with `policy.default`) and answers "which messages contain TERM":

  * text searched: the Subject, every text part that is not an attachment
    (text/html with tags stripped), and attachment file names;
  * text and term are NFKC-normalised and case-folded;
  * `sub:TERM`  - substring (used for Japanese phrases);
  * `word:TERM` - whole word: not preceded or followed by a letter or digit
    (Unicode categories L*/N*, the same word characters as SQLite FTS5
    unicode61 and Xapian), so `invoice_2026.pdf` contains `invoice`;
  * `from:ADDR` - an address of the From header equals ADDR (case-insensitive).

Messages are counted by Message-ID (files without one count on their own),
because mailtrail and notmuch both merge files that share a Message-ID.
Duplicated Message-IDs are reported.

Sub-commands:
  truth.py sender MAILDIR DOMAIN         most frequent From address in DOMAIN
  truth.py count MAILDIR OUTDIR TERM...  JSON summary on stdout; OUTDIR/<n>.ids
                                         holds the matching Message-IDs of the
                                         n-th term (0-based), one per line
  truth.py compare TRUTH_IDS OTHER_IDS MAILDIR [N]
                                         recall / excess of OTHER against TRUTH,
                                         and up to N missed / excess messages with
                                         their file and where the term occurs
"""

import collections
import email
import email.policy
import html.parser
import json
import os
import re
import sys
import unicodedata
import zipfile
import io

FALLBACK = {
    "shift_jis": ["cp932", "shift_jis_2004"],
    "sjis": ["cp932"],
    "x-sjis": ["cp932"],
    "iso-2022-jp": ["iso2022_jp_ext", "iso2022_jp_2004", "iso2022_jp_3"],
    "euc-jp": ["euc_jis_2004"],
}


def norm(s):
    return unicodedata.normalize("NFKC", s).casefold()


class _Strip(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        if tag in ("br", "p", "div", "tr", "li"):
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def strip_html(s):
    p = _Strip()
    try:
        p.feed(s)
        p.close()
    except Exception:  # noqa: BLE001 - best effort
        return re.sub(r"<[^>]*>", " ", s)
    return "".join(p.out)


def part_text(part):
    try:
        return part.get_content()
    except Exception:  # noqa: BLE001 - unknown/wrong charset: fall back by hand
        pass
    raw = part.get_payload(decode=True) or b""
    cs = (part.get_content_charset() or "us-ascii").lower()
    for c in [cs] + FALLBACK.get(cs, []) + ["utf-8", "cp932"]:
        try:
            return raw.decode(c)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("utf-8", "replace")


def maildir_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if os.path.basename(dirpath) not in ("cur", "new"):
            continue
        for f in sorted(filenames):
            yield os.path.join(dirpath, f)


def parse(path):
    with open(path, "rb") as fh:
        return email.message_from_binary_file(fh, policy=email.policy.default)


def header_str(msg, name):
    try:
        v = msg[name]
        return "" if v is None else str(v)
    except Exception:  # noqa: BLE001 - malformed header
        raw = msg.get_all(name, failobj=[])
        return " ".join(str(x) for x in raw)


def from_addresses(msg):
    try:
        h = msg["from"]
        if h is None:
            return []
        return [a.addr_spec.lower() for a in h.addresses if a.addr_spec]
    except Exception:  # noqa: BLE001
        return re.findall(r"[\w.+-]+@[\w.-]+", header_str(msg, "from").lower())


def message_id(msg, path):
    mid = header_str(msg, "message-id").strip()
    mid = mid.strip("<>").strip()
    return mid or ("file:" + path)


def fields(msg):
    """(field name, normalised text) pairs of one message."""
    out = [("subject", norm(header_str(msg, "subject")))]
    for part in msg.walk():
        if part.is_multipart():
            continue
        fn = None
        try:
            fn = part.get_filename()
        except Exception:  # noqa: BLE001
            fn = None
        if fn:
            out.append(("filename", norm(fn)))
        disp = part.get_content_disposition()
        if disp == "attachment" or (fn and disp != "inline"):
            continue
        if part.get_content_maintype() != "text":
            continue
        t = part_text(part)
        if part.get_content_subtype() == "html":
            t = strip_html(t)
        out.append(("body:" + part.get_content_type(), norm(t)))
    return out


def word_re(term):
    return re.compile(r"(?<![^\W_])" + re.escape(term) + r"(?![^\W_])")


def matchers(terms):
    ms = []
    for t in terms:
        kind, _, val = t.partition(":")
        if kind == "sub":
            v = norm(val)
            ms.append(("sub", v, lambda text, v=v: v in text))
        elif kind == "word":
            r = word_re(norm(val))
            ms.append(("word", val, lambda text, r=r: r.search(text) is not None))
        elif kind == "from":
            ms.append(("from", val.lower(), None))
        else:
            sys.exit(f"truth.py: unknown term kind in {t!r} (use sub:, word:, from:)")
    return ms


def cmd_sender(root, domain):
    c = collections.Counter()
    for p in maildir_files(root):
        for a in from_addresses(parse(p)):
            if a.endswith("@" + domain.lower()):
                c[a] += 1
    if not c:
        sys.exit(f"truth.py: no From address in {domain} under {root}")
    print(c.most_common(1)[0][0])


def cmd_count(root, outdir, terms):
    ms = matchers(terms)
    hits = [set() for _ in ms]
    files_by_mid = collections.defaultdict(list)
    nfiles = 0
    errors = 0
    for p in maildir_files(root):
        nfiles += 1
        try:
            msg = parse(p)
            mid = message_id(msg, p)
            files_by_mid[mid].append(p)
            fl = fields(msg)
            froms = from_addresses(msg)
        except Exception as e:  # noqa: BLE001
            errors += 1
            print(f"truth.py: {p}: {e}", file=sys.stderr)
            continue
        for i, (kind, val, f) in enumerate(ms):
            if kind == "from":
                ok = val in froms
            else:
                ok = any(f(text) for _, text in fl)
            if ok:
                hits[i].add(mid)
    os.makedirs(outdir, exist_ok=True)
    for i, h in enumerate(hits):
        with open(os.path.join(outdir, f"{i}.ids"), "w", encoding="utf-8") as fh:
            for mid in sorted(h):
                fh.write(mid + "\n")
    dups = {m: fs for m, fs in files_by_mid.items() if len(fs) > 1}
    with open(os.path.join(outdir, "files_by_mid.json"), "w", encoding="utf-8") as fh:
        json.dump(files_by_mid, fh)
    print(
        json.dumps(
            {
                "files": nfiles,
                "unique_message_ids": len(files_by_mid),
                "duplicate_message_ids": len(dups),
                "files_with_duplicate_ids": sum(len(v) for v in dups.values()),
                "parse_errors": errors,
                "counts": {t: len(h) for t, h in zip(terms, hits)},
            },
            ensure_ascii=False,
        )
    )


def where(path, term):
    """Which fields of the file at path contain term (for diagnosis)."""
    kind, _, val = term.partition(":")
    msg = parse(path)
    if kind == "from":
        return "From: " + header_str(msg, "from")
    ms = matchers([term])
    f = ms[0][2]
    found = []
    for name, text in fields(msg):
        if f(text):
            v = norm(val)
            i = text.find(v) if kind == "sub" else (word_re(v).search(text).start())
            found.append(f"{name}: …{text[max(0, i - 30):i + len(v) + 30]!r}…")
    if not found and kind != "from":
        # not counted by the truth (see the docstring), but mailtrail indexes
        # the names of files inside zip attachments: say so when that is why
        for part in msg.walk():
            if part.is_multipart() or not (part.get_filename() or "").lower().endswith(".zip"):
                continue
            try:
                names = zipfile.ZipFile(io.BytesIO(part.get_payload(decode=True))).namelist()
            except Exception:  # noqa: BLE001
                continue
            found += [f"inside {part.get_filename()}: {n!r}" for n in names if f(norm(n))]
    return "; ".join(found) or "(term not in subject, text parts, attachment or zip member names)"


def cmd_compare(truth_ids, other_ids, root, n, term):
    def load(p):
        with open(p, encoding="utf-8") as fh:
            return {line.strip().strip("<>") for line in fh if line.strip()}

    t, o = load(truth_ids), load(other_ids)
    missed, excess = sorted(t - o), sorted(o - t)
    recall = 100.0 if not t else 100.0 * len(t & o) / len(t)
    print(f"truth={len(t)} found={len(o)} recall={recall:.1f}% missed={len(missed)} excess={len(excess)}")
    fbm_path = os.path.join(os.path.dirname(truth_ids), "files_by_mid.json")
    fbm = {}
    if os.path.exists(fbm_path):
        with open(fbm_path, encoding="utf-8") as fh:
            fbm = json.load(fh)
    for label, ids in (("missed", missed), ("excess", excess)):
        for mid in ids[:n]:
            files = fbm.get(mid, [])
            info = where(files[0], term) if files and term else ""
            print(f"  {label}: <{mid}> {files[0] if files else '(no file)'} {info}")


def main(argv):
    if len(argv) >= 3 and argv[0] == "sender":
        cmd_sender(argv[1], argv[2])
    elif len(argv) >= 4 and argv[0] == "count":
        cmd_count(argv[1], argv[2], argv[3:])
    elif len(argv) >= 4 and argv[0] == "compare":
        n = int(argv[4]) if len(argv) > 4 else 3
        term = argv[5] if len(argv) > 5 else ""
        cmd_compare(argv[1], argv[2], argv[3], n, term)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
