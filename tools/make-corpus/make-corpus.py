#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the Routescope parallel corpus and the demo-model training text
from gettext catalogs (.mo) and the debian-handbook shipped in Debian.

Standard library only.  Run as:

    /usr/bin/python3 tools/make-corpus/make-corpus.py \
        --workdir /work/build-data --out data/corpus

Outputs
  <out>/parallel.tsv          id<TAB>lang<TAB>text, held-out evaluation set
  <out>/SOURCES.md            provenance: package versions, licences, counts
  <workdir>/train/train.txt   shuffled training text (one segment per line),
                              excluding everything in parallel.tsv
  <workdir>/train/heldout.tsv copy of parallel.tsv
  <workdir>/train/READY       line count of train.txt (written last)
  <workdir>/train/stats.json  per-language line/char counts

Downloads use `apt-get download` into <workdir>/debs (skipped when the .deb
is already there) and unpack with `dpkg-deb -x` into <workdir>/unpacked.
"""

import argparse
import collections
import functools
import hashlib
import html
import html.parser
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import unicodedata

# Packages whose gettext catalogs are used, in priority order.  The order
# decides which package a held-out segment is attributed to (first package
# whose catalog has the English string in all target languages).
MO_PACKAGES = [
    ("gnucash-common", "gnucash"),
    ("evolution-common", "evo"),
    ("cinnamon-l10n", "cinn"),
    ("libgtk-3-common", "gtk3"),
    ("inkscape", "inks"),
    ("vlc-l10n", "vlc"),
    ("audacity-data", "aud"),
    ("pidgin-data", "pidg"),
    ("gimp-data", "gimp"),
    ("nautilus-data", "naut"),
    ("gedit-common", "gedit"),
    ("evince-common", "evin"),
    ("gnome-control-center-data", "gcc"),
    ("gnome-shell-common", "shell"),
    ("libglib2.0-data", "glib"),
    ("libgtk-4-common", "gtk4"),
    ("gnome-software-common", "gsw"),
    ("totem-common", "totem"),
    ("gnome-terminal-data", "term"),
    ("mutter-common", "mutter"),
    ("rhythmbox-data", "rhythm"),
    ("gnome-settings-daemon-common", "gsd"),
    ("gnome-disk-utility", "disks"),
]
HANDBOOK_PACKAGE = "debian-handbook"

# Licence of each package's material, read from usr/share/doc/PKG/copyright
# inside the .deb (checked by hand for Debian 12 "bookworm"; the script also
# prints what it finds in the copyright file so a changed licence is noticed).
LICENCES = {
    "gnucash-common": "GPL-2+",
    "evolution-common": "LGPL-2 or LGPL-3",
    "cinnamon-l10n": "GPL-2+",
    "libgtk-3-common": "LGPL-2+ (Files: po/*)",
    "inkscape": "GPL (version not stated; upstream GPL-2+/GPL-3+)",
    "vlc-l10n": "GPL-2+",
    "audacity-data": "CC-BY-3.0 or GPL-2+",
    "pidgin-data": "GPL-2+",
    "gimp-data": "GPL-3+ (Files: * also lists GPL-2+, LGPL-3+, MIT...)",
    "nautilus-data": "GPL-3+",
    "gedit-common": "GPL-2",
    "evince-common": "GPL-2+ (po/*.po: GPLv2h = GPL-2 or later)",
    "gnome-control-center-data": "GPL-2+ (Files: * also GPL-3+, LGPL-2+...)",
    "gnome-shell-common": "GPL-2+",
    "libglib2.0-data": "LGPL-2+ and LGPL-2.1+",
    "libgtk-4-common": "LGPL-2+ and LGPL-2.1+",
    "gnome-software-common": "GPL-2+",
    "totem-common": "GPL-2+ with GStreamer exception",
    "gnome-terminal-data": "GPL-3+",
    "mutter-common": "GPL-2+ (Files: * also GPL-3+, LGPL-2+...)",
    "rhythmbox-data": "GPL-2+ with GStreamer exception",
    "gnome-settings-daemon-common": "GPL-2+",
    "gnome-disk-utility": "GPL-2+",
    "debian-handbook": "GPL-2+ or CC-BY-SA-3.0",
}

# Held-out languages: locale directory -> corpus language code.
TARGETS = {"de": "de", "fr": "fr", "es": "es", "ru": "ru", "zh_CN": "zh",
           "ja": "ja", "ar": "ar", "hi": "hi"}
HELD_LANGS = ["en", "de", "fr", "es", "ru", "zh", "ja", "ar", "hi"]
N_HELDOUT = 2000
MAX_HELDOUT_CHARS = 300      # English length cap for held-out sentences
SHUFFLE_SEED = 20240601

# debian-handbook html directory -> language code used in train.txt
HANDBOOK_LANGS = {
    "ar-MA": "ar", "ca-ES": "ca", "cs-CZ": "cs", "da-DK": "da", "de-DE": "de",
    "el-GR": "el", "en-US": "en", "es-ES": "es", "fa-IR": "fa", "fr-FR": "fr",
    "hr-HR": "hr", "id-ID": "id", "it-IT": "it", "ja-JP": "ja", "ko-KR": "ko",
    "nb-NO": "nb", "nl-NL": "nl", "pl-PL": "pl", "pt-BR": "pt_BR",
    "ro-RO": "ro", "ru-RU": "ru", "sv-SE": "sv", "tr-TR": "tr", "vi-VN": "vi",
    "zh-CN": "zh", "zh-TW": "zh_TW",
}

# ---------------------------------------------------------------- scripts

def _script_of(ch):
    o = ord(ch)
    if o < 0x80:
        return "latin" if ch.isalpha() else None
    if 0x0400 <= o <= 0x052F:
        return "cyrillic"
    if 0x0600 <= o <= 0x06FF or 0x0750 <= o <= 0x077F or 0x08A0 <= o <= 0x08FF \
            or 0xFB50 <= o <= 0xFDFF or 0xFE70 <= o <= 0xFEFF:
        return "arabic"
    if 0x0900 <= o <= 0x097F or 0xA8E0 <= o <= 0xA8FF:
        return "devanagari"
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F:
        return "kana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF \
            or 0x20000 <= o <= 0x2FFFF:
        return "han"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    if 0x0370 <= o <= 0x03FF or 0x1F00 <= o <= 0x1FFF:
        return "greek"
    if 0x0590 <= o <= 0x05FF:
        return "hebrew"
    if ch.isalpha():
        name = unicodedata.name(ch, "")
        if name.startswith("LATIN"):
            return "latin"
        return "other"
    return None


def script_counts(s):
    c = collections.Counter()
    for ch in s:
        k = _script_of(ch)
        if k:
            c[k] += 1
    return c


# Languages (locale prefixes) written in a non-Latin script.  For these a
# "translation" consisting mostly of Latin letters is untranslated English.
NON_LATIN = set("""ab am ar as be bg bn bo brx ckb doi dz el fa gu he hi hy
ja ka kk km kn ko ks kok ky lo mai mhr mk ml mn mni mr my ne or os pa ps ru
rue sa sat sd shn si sr ta te tg th ti tt ug uk ur uz@cyrillic yi zh
zgh""".split())

ENGLISH_FUNCTION_WORDS = set("""the and is are this that with you your of
to for which not can from have has been should would could there these those
what when where who will""".split())
# words that are also common in de/fr/es etc. and must not count as English
_AMBIGUOUS = {"will", "die", "has"}
ENGLISH_FUNCTION_WORDS -= _AMBIGUOUS

WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*")


def english_ratio(s):
    words = [w.lower() for w in re.findall(r"\w+", s)]
    if not words:
        return 0.0
    return sum(1 for w in words if w in ENGLISH_FUNCTION_WORDS) / len(words)


def target_ok(loc, text, en):
    """Is `text` a real translation of `en` into locale `loc`?"""
    if not text:
        return False
    if text.strip().lower() == en.strip().lower():
        return False
    sc = script_counts(text)
    letters = sum(sc.values())
    if letters == 0:
        return False
    base = loc.split("_")[0].split("@")[0]
    lang = TARGETS.get(loc)
    if lang == "ru":
        return sc["cyrillic"] >= 0.7 * letters
    if lang == "ar":
        return sc["arabic"] >= 0.7 * letters
    if lang == "hi":
        return sc["devanagari"] >= 0.7 * letters
    if lang == "zh":
        return sc["kana"] == 0 and sc["han"] >= 0.6 * letters
    if lang == "ja":
        return sc["kana"] > 0 and sc["kana"] + sc["han"] >= 0.6 * letters
    if base in NON_LATIN or loc in NON_LATIN:
        if loc.endswith("@latin"):
            pass
        else:
            return sc["latin"] <= 0.3 * letters
    if base == "sr" and "@latin" not in loc:
        return sc["cyrillic"] >= 0.7 * letters
    # Latin-script language: reject if it still reads like English.
    if sc["latin"] < 0.7 * letters:
        return False
    if english_ratio(text) > 0.12:
        return False
    ew = set(w.lower() for w in WORD_RE.findall(en))
    tw = [w.lower() for w in WORD_RE.findall(text)]
    if tw and sum(1 for w in tw if w in ew) / len(tw) > 0.6:
        return False
    return True


# ---------------------------------------------------------------- cleaning

ACCEL_PAREN_RE = re.compile(r"\s*[(（]\s*[_&]\s*[A-Za-z0-9]\s*[)）]")
FORMAT_RE = re.compile(
    r"%|\{[^}]*\}|\$\{|\$[A-Za-z_]|\\[a-z]|@[A-Za-z_]+@|\[\[|\]\]")
MARKUP_RE = re.compile(r"<[A-Za-z/!][^>]*>|&[#A-Za-z0-9]+;|[<>]")
URL_RE = re.compile(r"://|\bwww\.|\bhttps?\b|\bftp\.|@[A-Za-z0-9-]+\.[a-z]{2,}",
                    re.I)
PATH_RE = re.compile(
    r"(^|[\s\"'(])(~?/[\w.-]|\.\.?/|[A-Za-z]:\\)|\w/[\w.-]+/|"
    r"\b[\w-]+\.(png|jpe?g|gif|svg|txt|xml|html?|conf|cfg|ini|desktop|so|py|"
    r"sh|mo|po|json|ics|vcf|exe|dll|css|js|xcf|pdf|tar|gz|zip|deb|rc|c|h)\b",
    re.I)
ODD_RE = re.compile(r"[_|\\\t`^~=#*]|\s--\s|\b[A-Z_]{2,}_[A-Z]")


def strip_accel(s):
    s = ACCEL_PAREN_RE.sub("", s)
    # one GTK accelerator underscore, or Qt/wx '&' before a letter
    if s.count("_") == 1:
        s = re.sub(r"_(?=\w)", "", s, count=1)
    s = re.sub(r"&&", "&", s)
    s = re.sub(r"&(?=[^\W\d_])(?![#A-Za-z0-9]+;)", "", s)
    return s


def norm_ws(s):
    return re.sub(r"\s+", " ", s.replace("\u00a0", " ")).strip()


def clean(s):
    """Return the cleaned string, or None if the string must be dropped."""
    if not s or "\x00" in s:
        return None
    s = strip_accel(s)
    if FORMAT_RE.search(s) or MARKUP_RE.search(s) or URL_RE.search(s) \
            or PATH_RE.search(s) or ODD_RE.search(s):
        return None
    s = norm_ws(s)
    if not s:
        return None
    return s


@functools.lru_cache(maxsize=None)
def clean_en(s):
    s = clean(s)
    if s is None:
        return None
    if len(WORD_RE.findall(s)) < 4:
        return None
    if sum(1 for ch in s if ord(ch) < 128 or ch in "\u2019\u201c\u201d\u2026\u2013\u2014") < len(s):
        return None
    return s


SENT_RE = re.compile(r"^[A-Z][^\n]*[^.][.!?]$")


def is_sentence(s):
    return bool(SENT_RE.match(s)) and not s.endswith("...")


def normkey(s):
    """Loose key used to exclude near-copies of held-out text from training."""
    return re.sub(r"[\W_]+", "", s.lower())


# ---------------------------------------------------------------- .mo

def read_mo(path):
    """Yield (msgid, msgstr) pairs of a GNU .mo file (singular only)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        e = "<"
    elif magic == 0xDE120495:
        e = ">"
    else:
        return
    _rev, n, oo, ot = struct.unpack(e + "4I", data[4:20])
    raw = []
    for i in range(n):
        ol, oofs = struct.unpack(e + "2I", data[oo + 8 * i: oo + 8 * i + 8])
        tl, tofs = struct.unpack(e + "2I", data[ot + 8 * i: ot + 8 * i + 8])
        raw.append((data[oofs:oofs + ol], data[tofs:tofs + tl]))
    charset = "utf-8"
    for k, v in raw:
        if k == b"":
            m = re.search(rb"charset=([-\w]+)", v)
            if m:
                charset = m.group(1).decode("ascii")
    for k, v in raw:
        if k == b"" or b"\x00" in k:      # header, plural entries
            continue
        if b"\x04" in k:                  # msgctxt
            k = k.split(b"\x04", 1)[1]
        try:
            yield k.decode(charset), v.decode(charset)
        except (UnicodeDecodeError, LookupError):
            try:
                yield k.decode("utf-8"), v.decode("utf-8")
            except UnicodeDecodeError:
                continue


# ---------------------------------------------------------------- debs

def fetch(pkgs, debdir, unpackdir):
    os.makedirs(debdir, exist_ok=True)
    os.makedirs(unpackdir, exist_ok=True)
    have = {f.split("_")[0]: f for f in os.listdir(debdir) if f.endswith(".deb")}
    missing = [p for p in pkgs if p not in have]
    if missing:
        print("apt-get download", " ".join(missing), file=sys.stderr)
        subprocess.run(["apt-get", "download"] + missing, cwd=debdir, check=True)
    info = {}
    for f in sorted(os.listdir(debdir)):
        if not f.endswith(".deb"):
            continue
        p = f.split("_")[0]
        if p not in pkgs:
            continue
        deb = os.path.join(debdir, f)
        ver = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                             capture_output=True, text=True).stdout.strip()
        dest = os.path.join(unpackdir, p)
        stamp = os.path.join(dest, ".unpacked-" + f)
        if not os.path.exists(stamp):
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            subprocess.run(["dpkg-deb", "-x", deb, dest], check=True)
            open(stamp, "w").close()
        info[p] = {"deb": f, "version": ver, "dir": dest}
    for p in pkgs:
        if p not in info:
            sys.exit("package %s was not downloaded" % p)
    return info


def copyright_licences(pkgdir, pkg):
    """License: lines of the package's copyright file (for the log)."""
    cands = [os.path.join(pkgdir, "usr/share/doc", pkg, "copyright")]
    docs = os.path.join(pkgdir, "usr/share/doc")
    if os.path.isdir(docs):
        cands += [os.path.join(docs, d, "copyright") for d in sorted(os.listdir(docs))]
    for c in cands:
        if os.path.isfile(c):
            with open(c, encoding="utf-8", errors="replace") as f:
                txt = f.read()
            lic = []
            for m in re.finditer(r"^License:\s*(\S.*)$", txt, re.M):
                if m.group(1) not in lic:
                    lic.append(m.group(1).strip())
            if not lic:
                lic = sorted(set(re.findall(
                    r"\b(L?GPL(?:-[0-9.]+\+?)?|GNU (?:Lesser |Library )?General Public License)",
                    txt)))
            return c, lic
    link = os.path.join(docs, pkg)
    if os.path.islink(link):
        return "-> " + os.readlink(link), []
    return None, []


# ---------------------------------------------------------------- handbook

class ParaExtractor(html.parser.HTMLParser):
    """Collect text of <div class="para"> elements, skipping <pre> blocks."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paras = []
        self.stack = []        # tags opened inside the current para
        self.depth = 0         # >0 while inside a para div
        self.skip = 0
        self.buf = []

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "meta", "link", "hr", "col", "area"):
            if self.depth:
                self.buf.append(" ")
            return
        if self.depth:
            self.depth += 1
            if tag in ("pre", "table") or self.skip:
                self.skip += 1
            if tag in ("div", "p", "li", "dd", "dt", "td", "tr"):
                self.buf.append(" ")
            return
        cls = dict(attrs).get("class", "") or ""
        if tag == "div" and "para" in cls.split():
            self.depth = 1
            self.skip = 0
            self.buf = []

    def handle_endtag(self, tag):
        if tag in ("br", "img", "meta", "link", "hr", "col", "area"):
            return
        if not self.depth:
            return
        if self.skip:
            self.skip -= 1
        self.depth -= 1
        if self.depth == 0:
            self.paras.append(norm_ws("".join(self.buf)))

    def handle_data(self, data):
        if self.depth and not self.skip:
            self.buf.append(data)


def handbook_paragraphs(root):
    """{lang: [paragraph, ...]} aligned by position with English."""
    out = {}
    for d in sorted(os.listdir(root)):
        if d not in HANDBOOK_LANGS:
            continue
        paras = []
        for f in sorted(os.listdir(os.path.join(root, "en-US"))):
            if not f.endswith(".html"):
                continue
            p = os.path.join(root, d, f)
            if not os.path.exists(p):
                paras.append(None)
                continue
            ex = ParaExtractor()
            with open(p, encoding="utf-8") as fh:
                ex.feed(fh.read())
            paras.extend(ex.paras)
        out[HANDBOOK_LANGS[d]] = paras
    return out


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/work/build-data")
    ap.add_argument("--out", default="data/corpus")
    ap.add_argument("--n", type=int, default=N_HELDOUT)
    args = ap.parse_args()
    t0 = time.time()
    work = os.path.abspath(args.workdir)
    out = os.path.abspath(args.out)
    traindir = os.path.join(work, "train")
    os.makedirs(traindir, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    ready = os.path.join(traindir, "READY")
    if os.path.exists(ready):
        os.remove(ready)

    pkgs = [p for p, _ in MO_PACKAGES] + [HANDBOOK_PACKAGE]
    info = fetch(pkgs, os.path.join(work, "debs"), os.path.join(work, "unpacked"))
    tag = dict(MO_PACKAGES)

    # cat[(pkg, domain)][en] = {locale: cleaned translation}
    cat = collections.OrderedDict()
    raw_counts = collections.Counter()
    for pkg, _ in MO_PACKAGES:
        base = os.path.join(info[pkg]["dir"], "usr/share/locale")
        for dirpath, _dirs, files in sorted(os.walk(base)):
            for fn in sorted(files):
                if not fn.endswith(".mo"):
                    continue
                path = os.path.join(dirpath, fn)
                loc = os.path.relpath(path, base).split(os.sep)[0]
                if loc == "en" or loc.startswith(("en_", "en@")):
                    continue          # English variants: not translations
                dom = fn[:-3]
                d = cat.setdefault((pkg, dom), {})
                for mid, mstr in read_mo(path):
                    raw_counts[pkg] += 1
                    en = clean_en(mid)
                    if en is None:
                        continue
                    tr = clean(mstr)
                    if tr is None or not target_ok(loc, tr, en):
                        continue
                    d.setdefault(en, {})[loc] = tr
    print("catalogs parsed: %.1fs" % (time.time() - t0), file=sys.stderr)

    # ---- held-out selection
    need = list(TARGETS)
    cand = {}            # en -> (pkg, dom, {lang: text})
    for (pkg, dom), d in cat.items():
        for en, trs in d.items():
            if en in cand or not is_sentence(en) or len(en) > MAX_HELDOUT_CHARS:
                continue
            if all(loc in trs for loc in need):
                cand[en] = (pkg, dom, {TARGETS[l]: trs[l] for l in need})
    # also require translations to differ from each other sensibly (de/fr/es
    # identical to each other usually means copied English or a name)
    def hkey(en):
        return hashlib.sha1(en.encode("utf-8")).hexdigest()
    chosen = sorted(cand, key=hkey)[:args.n]
    print("held-out candidates: %d, chosen %d" % (len(cand), len(chosen)),
          file=sys.stderr)
    rows = []
    per_pkg = collections.Counter()
    for en in chosen:
        pkg, dom, trs = cand[en]
        per_pkg[pkg] += 1
        sid = "%s-%s" % (tag[pkg], hkey(en)[:10])
        rows.append((sid, "en", en))
        for lang in HELD_LANGS[1:]:
            rows.append((sid, lang, trs[lang]))
    rows.sort()
    ptsv = os.path.join(out, "parallel.tsv")
    with open(ptsv, "w", encoding="utf-8") as f:
        for r in rows:
            f.write("\t".join(r) + "\n")
    shutil.copyfile(ptsv, os.path.join(traindir, "heldout.tsv"))

    # ---- training text
    held_en = set(chosen)
    held_keys = set(normkey(t) for _, _, t in rows)
    lines = {}     # text -> lang (first seen)
    dropped = collections.Counter()

    def sentences(s):
        return [p for p in re.split(r"(?<=[.!?\u3002\uff01\uff1f\u0964\u061f])\s*", s) if p]
    by_first = collections.defaultdict(list)
    for _, _, h in rows:
        by_first[sentences(h)[0]].append(h)

    def contains_held(en):
        # a held-out text embedded (at a sentence boundary) in a longer string
        return any(h in en for p in sentences(en) for h in by_first.get(p, ()))

    def add(lang, text, source):
        if normkey(text) in held_keys or contains_held(text):
            dropped[source] += 1
            return
        if len(normkey(text)) < 2:
            return
        lines.setdefault(text, lang)

    for (pkg, dom), d in cat.items():
        for en, trs in d.items():
            if en in held_en or normkey(en) in held_keys or contains_held(en):
                dropped[pkg] += 1 + len(trs)
                continue
            add("en", en, pkg)
            for loc, tr in trs.items():
                add(TARGETS.get(loc, loc), tr, pkg)
    hb_root = os.path.join(info[HANDBOOK_PACKAGE]["dir"],
                           "usr/share/doc/debian-handbook/html")
    hb = handbook_paragraphs(hb_root)
    hb_en = hb.get("en", [])
    hb_counts = collections.Counter()
    for lang, paras in sorted(hb.items()):
        if len(paras) != len(hb_en):
            print("handbook %s: %d paragraphs vs %d English (kept unaligned)"
                  % (lang, len(paras), len(hb_en)), file=sys.stderr)
        for i, p in enumerate(paras):
            if not p or len(p) < 20:
                continue
            en = hb_en[i] if i < len(hb_en) else ""
            if lang != "en":
                if p == en:
                    continue            # untranslated paragraph
                loc = {"zh": "zh_CN", "ja": "ja", "ru": "ru", "ar": "ar"}.get(lang, lang)
                if lang in ("zh", "ja", "ru", "ar", "zh_TW", "ko", "el", "fa"):
                    sc = script_counts(p)
                    tot = sum(sc.values()) or 1
                    if sc["latin"] > 0.5 * tot:
                        continue        # mostly English (commands, names)
                elif english_ratio(p) > 0.12:
                    continue
            hb_counts[lang] += 1
            add(lang, p, HANDBOOK_PACKAGE)

    items = sorted(lines.items())
    random.Random(SHUFFLE_SEED).shuffle(items)
    tmp = os.path.join(traindir, "train.txt.tmp")
    stats = collections.defaultdict(lambda: [0, 0, 0])
    with open(tmp, "w", encoding="utf-8") as f:
        for text, lang in items:
            f.write(text + "\n")
            s = stats[lang]
            s[0] += 1
            s[1] += len(text)
            s[2] += len(text.encode("utf-8"))
    os.replace(tmp, os.path.join(traindir, "train.txt"))
    with open(os.path.join(traindir, "stats.json"), "w") as f:
        json.dump({"lines": len(items),
                   "per_lang": {k: {"lines": v[0], "chars": v[1], "bytes": v[2]}
                                for k, v in sorted(stats.items())},
                   "handbook_paragraphs": dict(sorted(hb_counts.items()))},
                  f, indent=1, sort_keys=True)
    with open(ready, "w") as f:
        f.write("%d\n" % len(items))
    print("train.txt: %d lines, %.1fs" % (len(items), time.time() - t0),
          file=sys.stderr)

    # ---- SOURCES.md
    with open(os.path.join(out, "SOURCES.md"), "w", encoding="utf-8") as f:
        f.write("# Sources of parallel.tsv\n\n")
        f.write("Generated by `tools/make-corpus/make-corpus.py` from Debian 12 "
                "(bookworm) binary packages; do not edit by hand.\n\n")
        f.write("Command:\n\n    /usr/bin/python3 tools/make-corpus/make-corpus.py "
                "--workdir /work/build-data --out data/corpus\n\n")
        f.write("`parallel.tsv` has %d ids x %d languages (%s) = %d lines. "
                "Format: `id<TAB>lang<TAB>text`, sorted by id then language. "
                "An id is `<package tag>-<first 10 hex digits of SHA-1 of the "
                "English text>`; all nine texts of an id come from the same "
                "gettext domain of the same package. Ids were chosen as the "
                "first %d by that SHA-1 among English complete sentences "
                "(capital first letter, final . ! or ?, at least 4 words, "
                "at most %d characters) translated into all eight other "
                "languages after cleaning (see README.md).\n\n"
                % (len(chosen), len(HELD_LANGS), ", ".join(HELD_LANGS),
                   len(rows), args.n, MAX_HELDOUT_CHARS))
        f.write("| package | tag | Debian version | licence | .mo files | "
                "ids in parallel.tsv |\n|---|---|---|---|---:|---:|\n")
        for pkg, t in MO_PACKAGES:
            nmo = sum(1 for (p, _d) in cat if p == pkg)
            nfiles = sum(1 for dp, _, fs in os.walk(os.path.join(
                info[pkg]["dir"], "usr/share/locale")) for x in fs if x.endswith(".mo"))
            f.write("| %s | %s | %s | %s | %d | %d |\n" % (
                pkg, t, info[pkg]["version"], LICENCES.get(pkg, "?"), nfiles,
                per_pkg[pkg]))
        f.write("| %s | - | %s | %s | - | 0 (training text only) |\n\n" % (
            HANDBOOK_PACKAGE, info[HANDBOOK_PACKAGE]["version"],
            LICENCES[HANDBOOK_PACKAGE]))
        f.write("Translations in gettext catalogs are distributed under the "
                "licence of the package they belong to. Licences were read "
                "from `usr/share/doc/<package>/copyright` inside each .deb "
                "(DEP-5 `Files: *` or `Files: po/*` stanza where present, "
                "otherwise the prose licence statement).\n\n"
                "The training text (`/work/build-data/train/train.txt`, not in "
                "the repository) is built by the same run from all other "
                "cleaned catalog segments plus debian-handbook paragraphs, "
                "excluding all held-out English msgids and all of their "
                "translations, every text equal to a parallel.tsv text after "
                "normalisation (lower-case, letters and digits only), and every "
                "text containing a parallel.tsv text at a sentence boundary.\n")

    for pkg in pkgs:
        c, lic = copyright_licences(info[pkg]["dir"], pkg)
        print("licence %-30s %s: %s" % (pkg, c and os.path.relpath(c, info[pkg]["dir"])
                                        if c and not c.startswith("->") else c,
                                        "; ".join(lic[:6])), file=sys.stderr)
    print("done in %.1fs" % (time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
