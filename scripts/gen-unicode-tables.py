#!/usr/bin/env python3
"""Regenerates the Unicode tables in src/auth/names.rs.

    pip download confusable-homoglyphs==3.3.1 --no-deps -d /tmp/conf
    python3 -m zipfile -e /tmp/conf/confusable_homoglyphs-3.3.1-py2.py3-none-any.whl /tmp/conf
    python3 scripts/gen-unicode-tables.py /tmp/conf/confusable_homoglyphs/confusables.json
    rustfmt --edition 2024 src/auth/names.rs

Rewrites the text between the `BEGIN GENERATED` / `END GENERATED` marker
lines of src/auth/names.rs (the tables, and the test vectors in its test
module) and leaves the rest of the file alone. The output depends only on
the Unicode version of this Python's `unicodedata` (3.11: Unicode 14.0.0),
the confusables.json given (its hash is checked), RESERVED_NAMES in
names.rs and the hand-kept lists below, so running it twice changes
nothing. Run it again after changing RESERVED_NAMES: the look-alike table
holds only the letters those names need (a test in names.rs says so).

With a Python on a newer Unicode, check the hand-kept lists against that
version (EXPECTED_NFC_MAYBE is asserted and will say so), and the "14.0" in
the documentation and messages of names.rs (its tests check the version).

Data sources:
- `unicodedata` (UnicodeData.txt): general category, canonical combining
  class, decompositions, and NFKC/NFC normalization of single code points.
- Default_Ignorable_Code_Point, copied by hand from DerivedCoreProperties.txt
  (Unicode 14.0).
- Cf code points assigned after this Python's Unicode version, by hand.
- The look-alike fold for reserved names: Unicode's confusables.txt 15.1.0
  (UTS #39, Unicode Security Mechanisms). The machine that runs this may
  reach nothing but package registries, so it reads the copy that the PyPI
  package confusable-homoglyphs 3.3.1 carries as JSON (`pip download` above;
  the wheel is a zip file, `unzip` does as well). See CONFUSABLES_* below
  for what that file holds and how it was made.
"""

import hashlib
import itertools
import json
import pathlib
import random
import re
import sys
import unicodedata

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = ROOT / "src" / "auth" / "names.rs"
MAX = 0x110000

# DerivedCoreProperties.txt 14.0.0, Default_Ignorable_Code_Point.
DEFAULT_IGNORABLE = [
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
]

# Format characters (Cf) assigned after Unicode 14.0 (the gap at the end of
# the Egyptian Hieroglyph Format Controls block, filled in Unicode 15.0).
LATER_FORMAT = [(0x13439, 0x1343F)]

# Line and paragraph separators (Zl, Zp): invisible line breaks.
SEPARATORS = [(0x2028, 0x2029)]

# NFC_Quick_Check=Maybe as listed in DerivedNormalizationProps.txt 14.0.0;
# the derivation below must reproduce it exactly.
EXPECTED_NFC_MAYBE = [
    (0x0300, 0x0304), (0x0306, 0x030C), (0x030F, 0x030F), (0x0311, 0x0311),
    (0x0313, 0x0314), (0x031B, 0x031B), (0x0323, 0x0328), (0x032D, 0x032E),
    (0x0330, 0x0331), (0x0338, 0x0338), (0x0342, 0x0342), (0x0345, 0x0345),
    (0x0653, 0x0655), (0x093C, 0x093C), (0x09BE, 0x09BE), (0x09D7, 0x09D7),
    (0x0B3E, 0x0B3E), (0x0B56, 0x0B57), (0x0BBE, 0x0BBE), (0x0BD7, 0x0BD7),
    (0x0C56, 0x0C56), (0x0CC2, 0x0CC2), (0x0CD5, 0x0CD6), (0x0D3E, 0x0D3E),
    (0x0D57, 0x0D57), (0x0DCA, 0x0DCA), (0x0DCF, 0x0DCF), (0x0DDF, 0x0DDF),
    (0x102E, 0x102E), (0x1161, 0x1175), (0x11A8, 0x11C2), (0x1B35, 0x1B35),
    (0x3099, 0x309A), (0x110BA, 0x110BA), (0x11127, 0x11127),
    (0x1133E, 0x1133E), (0x11357, 0x11357), (0x114B0, 0x114B0),
    (0x114BA, 0x114BA), (0x114BD, 0x114BD), (0x115AF, 0x115AF),
    (0x11930, 0x11930),
]

# --- Unicode's confusables (UTS #39) ---------------------------------------
# The look-alike fold for reserved names comes from confusables.txt, read
# from the confusables.json of the PyPI package confusable-homoglyphs (see
# the top of this file). Its `update` command builds that JSON from
# https://www.unicode.org/Public/security/latest/confusables.txt: for each
# line `source ; prototype ; MA # ( s → p ) NAME → NAME` it lists p under s
# and s under p, as {"c": character(s), "n": name(s)}, with right-to-left
# characters wrapped in U+200E as in the comment it parses. Version 3.3.1
# (2024-01-30) was built from confusables.txt 15.1.0, the latest then: the
# JSON records no version, but the Scripts.txt data of the same run (its
# categories.json) holds the Unicode 15.1 additions U+2EBF0..U+2EE5D and
# U+31EF. The hash below pins the file.
CONFUSABLES_PACKAGE = "confusable-homoglyphs 3.3.1"
CONFUSABLES_UNICODE = "15.1.0"
CONFUSABLES_SHA256 = "2d8b4774cd9dc6f233a18681bc00423ae270037437f276fc6a8b80630941fe7d"

USAGE = ("usage: python3 scripts/gen-unicode-tables.py PATH/confusables.json\n"
         "(from the PyPI package confusable-homoglyphs 3.3.1: see the top of "
         "this script)")
if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
    sys.exit(USAGE)
CONFUSABLES_JSON = pathlib.Path(sys.argv[1])
try:
    CONFUSABLES_RAW = CONFUSABLES_JSON.read_bytes()
except OSError as e:
    sys.exit(f"{e}\n{USAGE}")
_digest = hashlib.sha256(CONFUSABLES_RAW).hexdigest()
if _digest != CONFUSABLES_SHA256:
    sys.exit(
        f"{CONFUSABLES_JSON}: sha256 {_digest}, not that of the confusables.json of "
        f"{CONFUSABLES_PACKAGE} ({CONFUSABLES_SHA256}).\nFor another version, "
        "check which confusables.txt it was built from, then update "
        "CONFUSABLES_* here and the versions named in src/auth/names.rs.")


def reserved_names():
    """RESERVED_NAMES of names.rs, its constants looked up in src/auth."""
    text = TARGET.read_text()
    m = re.search(r"pub const RESERVED_NAMES: \[&str; \d+\] = \[(.*?)\];", text, re.S)
    if not m:
        sys.exit(f"{TARGET}: RESERVED_NAMES not found")
    consts = {}
    for rs in sorted(TARGET.parent.glob("*.rs")):
        for name, value in re.findall(r'pub const (\w+): &str = "([^"\\]*)";', rs.read_text()):
            consts[name] = value
    names = []
    for item in m.group(1).split(","):
        item = item.strip()
        if item.startswith('"') and item.endswith('"') and "\\" not in item:
            names.append(item[1:-1])
        elif item in consts:
            names.append(consts[item])
        elif item:
            sys.exit(f"{TARGET}: cannot read reserved name {item!r}")
    return names


def is_surrogate(cp):
    return 0xD800 <= cp <= 0xDFFF


def to_ranges(cps):
    out = []
    for cp in sorted(cps):
        if out and out[-1][1] + 1 == cp:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return [tuple(r) for r in out]


def expand(ranges):
    s = set()
    for a, b in ranges:
        s.update(range(a, b + 1))
    return s


def split(ranges, limit):
    """Ranges no longer than `limit` code points."""
    out = []
    for a, b in ranges:
        while b - a + 1 > limit:
            out.append((a, a + limit - 1))
            a += limit
        out.append((a, b))
    return out


def cat(cp):
    return unicodedata.category(chr(cp))


def ccc(cp):
    return unicodedata.combining(chr(cp))


ALL = [cp for cp in range(MAX) if not is_surrogate(cp)]

# --- invisible: Default_Ignorable_Code_Point ∪ Cf ∪ Zl ∪ Zp ---------------
invisible = expand(DEFAULT_IGNORABLE) | expand(LATER_FORMAT) | expand(SEPARATORS)
invisible |= {cp for cp in ALL if cat(cp) == "Cf"}
INVISIBLE = to_ranges(invisible)

# --- NFKC_Quick_Check=No: code points NFKC changes ------------------------
nfkc_no = {cp for cp in ALL if unicodedata.normalize("NFKC", chr(cp)) != chr(cp)}
NFKC_NO = to_ranges(nfkc_no)

# --- primary composites and NFC_Quick_Check=Maybe -------------------------
composites = []  # (composite, first, second)
for cp in ALL:
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        continue
    parts = [int(x, 16) for x in d.split()]
    if len(parts) == 2 and unicodedata.normalize("NFC", chr(parts[0]) + chr(parts[1])) == chr(cp):
        composites.append((cp, parts[0], parts[1]))
SECONDS = sorted({s for _, _, s in composites})
HANGUL_V = range(0x1161, 0x1176)
HANGUL_T = range(0x11A8, 0x11C3)
nfc_maybe = set(SECONDS) | set(HANGUL_V) | set(HANGUL_T)
assert to_ranges(nfc_maybe) == EXPECTED_NFC_MAYBE, "NFC_QC=Maybe derivation changed"
assert not nfc_maybe & nfkc_no
by_composite = {c: (f, s) for c, f, s in composites}
for c, f, s in composites:
    # What names.rs relies on: composites and their first parts are
    # starters that NFC keeps; second parts never decompose and are not
    # themselves first parts of a chain that starts with a Maybe.
    assert ccc(c) == 0 and ccc(f) == 0, hex(c)
    assert unicodedata.normalize("NFC", chr(f)) == chr(f), hex(c)
    assert unicodedata.decomposition(chr(s)) == "", hex(c)
    assert c in nfkc_no or f not in nfkc_no, hex(c)
    base = f
    while base in by_composite:
        base = by_composite[base][0]
    assert base not in nfc_maybe, hex(c)
assert len(SECONDS) <= 64
# names.rs refuses the Maybe marks of the Combining Diacritical Marks block
# (U+0300..U+036F) and the Hangul V and T jamo wherever they appear, and
# settles the other Maybe characters exactly; it needs the compositions of
# those others only. A composite outside that set is then taken whole, which
# is exact as long as no composite inside it has a first part outside it.
DIACRITICS = range(0x0300, 0x0370)
exact = [(c, f, s) for c, f, s in composites if s not in DIACRITICS]
exact_composites = {c for c, _, _ in exact}
for c, f, s in exact:
    assert f not in by_composite or f in exact_composites, hex(c)
COMPOSITE_RUNS = to_ranges(exact_composites)

# --- canonical combining classes ------------------------------------------
ccc_runs = []
for cp in ALL:
    v = ccc(cp)
    if not v:
        continue
    if ccc_runs and ccc_runs[-1][1] == cp - 1 and ccc_runs[-1][2] == v and cp - ccc_runs[-1][0] < 8:
        ccc_runs[-1][1] = cp
    else:
        ccc_runs.append([cp, cp, v])

# --- unassigned (Cn) outside the invisible ranges --------------------------
# Short ranges as spans, the few long ones (planes 4 to 13 among them) apart.
unassigned = to_ranges(cp for cp in ALL if cat(cp) == "Cn" and cp not in invisible)
UNASSIGNED = [(a, b) for a, b in unassigned if b - a < 2048]
UNASSIGNED_LONG = [(a, b) for a, b in unassigned if b - a >= 2048]

# --- look-alikes: confusables.txt, for the letters of the reserved names ----
def unwrap(s):
    """A character or sequence of confusables.json, without the U+200E marks
    around right-to-left ones."""
    if len(s) > 2 and s[0] == s[-1] == "\u200E":
        return s[1:-1]
    return s


CONFUSABLES = {unwrap(k): [unwrap(e["c"]) for e in v]
               for k, v in json.loads(CONFUSABLES_RAW).items()}
graph = {}
for k, vs in CONFUSABLES.items():
    for v in vs:
        graph.setdefault(k, set()).add(v)
        graph.setdefault(v, set()).add(k)


def confusable_class(x):
    """The characters (and sequences) with the skeleton of `x`."""
    seen, todo = {x}, [x]
    while todo:
        for y in graph.get(todo.pop(), ()):
            if y not in seen:
                seen.add(y)
                todo.append(y)
    # confusables.txt maps each source code point to a prototype, which is
    # never itself a source: a class is a star around its prototype.
    centers = [y for y in seen if graph.get(y, set()) == seen - {y}]
    assert centers, x
    assert len(seen) <= 2 or all(len(graph[y]) == 1 for y in seen - {centers[0]}), x
    return frozenset(seen)


def skeleton(x):
    """The prototype of `x`'s class, when it can be told (UTS #39 skeleton of
    a single character or of a prototype); None when the JSON does not say
    which of two characters is the prototype."""
    cls = confusable_class(x)
    if len(cls) == 1:
        return x
    multi = [y for y in cls if len(y) > 1]
    if multi:  # sources are single code points
        assert len(multi) == 1, x
        return multi[0]
    if len(cls) > 2:
        return next(y for y in cls if len(graph[y]) == len(cls) - 1)
    ascii_ = [y for y in cls if y.isascii()]
    return ascii_[0] if len(ascii_) == 1 else None


def small_capital(letter):
    try:
        return unicodedata.lookup("LATIN LETTER SMALL CAPITAL " + letter.upper())
    except KeyError:
        return None


def holdable(cp):
    """A name may hold it: assigned in this Unicode, NFKC keeps it, visible,
    not a control, not ':' and not white space."""
    c = chr(cp)
    return (cp not in nfkc_no and cp not in invisible and cat(cp) not in ("Cn", "Cc", "Cs")
            and c != ":" and not c.isspace())


RESERVED = reserved_names()
assert RESERVED and all(n.isascii() and n.isalpha() for n in RESERVED), RESERVED
# Each letter of a reserved name counts in lower and upper case: the
# skeletons of both (UTS #39: `m` is `rn`, `I` is `l`).
LETTERS = sorted({c.lower() for n in RESERVED for c in n})
FORMS = {}
for letter in LETTERS:
    FORMS[letter] = (skeleton(letter), skeleton(letter.upper()))
    for s in FORMS[letter]:
        assert s and s.isascii() and s.isalpha(), (letter, s)
        # names.rs takes an ASCII character outside the table as itself.
        assert all(skeleton(c) == c for c in s), (letter, s)
LETTER_OF = {s: letter for letter, forms in FORMS.items() for s in forms}
VARIANTS = set()
for name in RESERVED:
    assert len(name) <= 16
    VARIANTS.update("".join(p) for p in itertools.product(*(FORMS[c.lower()] for c in name)))

fold = {}  # code point -> the skeleton (ASCII letters) it stands for


def add(cls, target):
    for y in sorted(cls):
        if len(y) != 1 or y == target or not holdable(ord(y)):
            continue
        assert fold.setdefault(ord(y), target) == target, (hex(ord(y)), fold[ord(y)], target)


# 1. Every class whose prototype occurs in a reserved name in some mix of
#    cases: the skeleton of each letter in either case (`s`, `S`, `rn`, `M`,
#    ...), the letters of a sequence (`r`, `n`), and a sequence that would
#    span letters (`st`: NFKC-only, so nothing).
pieces = {p for p in set(graph) | set("".join(VARIANTS))
          if p.isascii() and p.isalpha() and skeleton(p) == p and any(p in v for v in VARIANTS)}
for p in sorted(pieces):
    add(confusable_class(p), p)
# 2. A small capital is its capital: the class of the letter's Latin small
#    capital (`ᴛ`, with Greek `τ`, Cyrillic `т`, Cherokee `ꭲ`) stands for the
#    upper case letter, unless confusables.txt already puts it with the
#    letter (`ꜱ` is `s`).
for letter in LETTERS:
    sc = small_capital(letter)
    if sc is None:
        continue
    s = skeleton(sc)
    if s is not None and s.isascii():
        assert s in FORMS[letter], (letter, s)
    else:
        add(confusable_class(sc), FORMS[letter][1])
# 3. Cherokee small letters are drawn as small capitals of the capitals:
#    each stands for what its capital stands for. confusables.txt has most
#    of them already (`ꮪ` is `s`, `ꭲ` is `ᴛ`); it must not disagree.
for cp, target in sorted(fold.items()):
    if 0x13A0 <= cp <= 0x13F5:
        small = ord(chr(cp).lower())
        assert small != cp and cat(small) == "Ll", hex(cp)
        if small in fold:
            assert LETTER_OF.get(fold[small], fold[small]) == LETTER_OF.get(target, target), hex(cp)
        else:
            assert len(confusable_class(chr(small))) == 1, hex(small)
            fold[small] = target
for cp, target in fold.items():
    assert holdable(cp) and target.isascii() and target.isalpha(), hex(cp)
SKELETONS = sorted(set(fold.values()))
assert len(SKELETONS) < 256 and all(len(s) <= 8 for s in SKELETONS)

# names.rs folds case with char::to_lowercase plus ß/ẞ -> ss. For code points
# a name may hold (NFKC keeps them, not invisible), that is all of
# NFKC_Casefold that can reach ASCII letters: check it.
for cp in ALL:
    if cp < 0x80 or cp in nfkc_no or cp in invisible:
        continue
    folded = unicodedata.normalize("NFKC", chr(cp).casefold())
    if folded.isascii():
        assert cp in (0x00DF, 0x1E9E) and folded == "ss", hex(cp)


# --- output ---------------------------------------------------------------
def h(cp):
    return f"0x{cp:04X}"


def rows(items, per_line, indent="    "):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append(indent + " ".join(x + "," for x in items[i:i + per_line]))
    return "\n".join(lines)


def span_table(name, doc, ranges, per_line=4):
    items = [f"span({h(a)}, {h(b)})" for a, b in split(ranges, 2048)]
    return (f"{doc}\n#[rustfmt::skip]\nstatic {name}: [u32; {len(items)}] = [\n"
            f"{rows(items, per_line)}\n];\n")


version = unicodedata.unidata_version
out = []
out.append(f"/// The Unicode version of the tables below.\npub const UNICODE_VERSION: &str = \"{version}\";\n")
items = [f"({h(a)}, {h(b)})" for a, b in INVISIBLE]
out.append(
    "/// Default_Ignorable_Code_Point ∪ general category Cf ∪ Zl ∪ Zp, as\n"
    "/// inclusive ranges.\n#[rustfmt::skip]\n"
    f"static INVISIBLE: [(u32, u32); {len(items)}] = [\n{rows(items, 4)}\n];\n")
out.append(span_table(
    "NFKC_NO",
    "/// NFKC_Quick_Check=No: the code points that NFKC changes.",
    NFKC_NO))
out.append(span_table(
    "UNASSIGNED",
    "/// General category Cn (noncharacters included) outside the invisible\n"
    "/// ranges: the ranges of fewer than 2048 code points.",
    UNASSIGNED))
items = [f"({h(a)}, {h(b)})" for a, b in UNASSIGNED_LONG]
out.append(
    "/// The other ranges of [`UNASSIGNED`].\n#[rustfmt::skip]\n"
    f"static UNASSIGNED_LONG: [(u32, u32); {len(items)}] = [\n{rows(items, 4)}\n];\n")
items = [f"run({h(a)}, {h(b)}, {v})" for a, b, v in ccc_runs]
out.append(
    "/// Canonical combining classes other than 0, as runs of at most 8 code\n"
    "/// points sharing a class.\n#[rustfmt::skip]\n"
    f"static CCC: [u32; {len(items)}] = [\n{rows(items, 4)}\n];\n")
items = [h(s) for s in SECONDS]
out.append(
    "/// The second parts of canonical compositions: with the Hangul V and T\n"
    "/// jamo, NFC_Quick_Check=Maybe, the characters that may join the one\n"
    "/// before them.\n"
    f"#[rustfmt::skip]\nconst SECONDS: [u32; {len(items)}] = [\n{rows(items, 8)}\n];\n")
items = [f"span({h(a)}, {h(b)})" for a, b in COMPOSITE_RUNS]
out.append(
    "/// The primary composites whose second part lies outside U+0300..U+036F\n"
    "/// (all others, Hangul included, come from parts names may not hold), as\n"
    "/// runs; the n-th composite's parts are `COMPOSITIONS[n]`.\n"
    f"#[rustfmt::skip]\nstatic COMPOSITES: [u32; {len(items)}] = [\n{rows(items, 4)}\n];\n")
lines = []
for a, b in COMPOSITE_RUNS:
    group = [f"pair({h(by_composite[c][0])}, {h(by_composite[c][1])})" for c in range(a, b + 1)]
    lines.append(f"    // U+{a:04X}..=U+{b:04X}")
    lines.append(rows(group, 4))
out.append(
    "/// The canonical decomposition (first, second) of each primary composite,\n"
    "/// in the order of [`COMPOSITES`].\n"
    f"#[rustfmt::skip]\nstatic COMPOSITIONS: [u32; {len(exact)}] = [\n" + "\n".join(lines) + "\n];\n")
items = [f'    look({h(cp)}, "{fold[cp]}"), // {chr(cp)} {unicodedata.name(chr(cp))}' for cp in sorted(fold)]
skeletons = ", ".join(f'"{s}"' for s in SKELETONS)
out.append(
    "/// What the characters of [`LOOKALIKES`] stand for.\n"
    f"const SKELETONS: [&str; {len(SKELETONS)}] = [{skeletons}];\n")
out.append(
    f"/// The characters a name may hold that Unicode's confusables.txt\n"
    f"/// {CONFUSABLES_UNICODE} (UTS #39) makes confusable with a letter of the reserved\n"
    f"/// names (`{''.join(LETTERS)}`) in lower or upper case or as a small capital, or with\n"
    "/// the letters of those skeletons (`rn` for `m`), with what they stand for;\n"
    "/// and the Cherokee small letters of such Cherokee capitals. See\n"
    "/// [`is_reserved_name`] and [`look`].\n"
    f"#[rustfmt::skip]\nstatic LOOKALIKES: [u32; {len(fold)}] = [\n" + "\n".join(items) + "\n];\n")
header = (
    f"// Sources: the unicodedata module of Python {sys.version_info[0]}.{sys.version_info[1]} (Unicode {version}), and\n"
    f"// for LOOKALIKES Unicode's confusables.txt {CONFUSABLES_UNICODE} (UTS #39), as the\n"
    f"// confusables.json of the PyPI package {CONFUSABLES_PACKAGE} (sha256\n"
    f"// {CONFUSABLES_SHA256}),\n"
    f"// for the reserved names {', '.join(RESERVED)}.\n")
tables = header + "\n".join(out)

# --- test vectors ---------------------------------------------------------
rng = random.Random(14)
sample = set()
interesting = sorted(invisible | nfkc_no | nfc_maybe | set(c for c, _, _ in composites))
while len(sample) < 200:
    cp = rng.randrange(MAX)
    if not is_surrogate(cp):
        sample.add(cp)
while len(sample) < 300:
    sample.add(rng.choice(interesting))
while len(sample) < 400:
    cp = rng.randrange(0x3400)  # the scripts names are mostly written in
    if not is_surrogate(cp):
        sample.add(cp)


def flags(cp):
    f = 0
    if cp in invisible:
        f |= 1
    if unicodedata.normalize("NFKC", chr(cp)) != chr(cp):
        f |= 2
    if cat(cp) == "Cn" and cp not in invisible:
        f |= 4
    return f


items = [f"({h(cp)}, {flags(cp)}, {ccc(cp)})" for cp in sorted(sample)]
vectors = ("    /// (code point, 1 = invisible | 2 = NFKC changes it | 4 = unassigned,\n"
           "    /// combining class), from Python's unicodedata directly.\n"
           f"    #[rustfmt::skip]\n    const CODE_POINTS: [(u32, u8, u8); {len(items)}] = [\n"
           f"{rows(items, 4, '        ')}\n    ];\n")

# Short strings over an alphabet that exercises composition, reordering and
# blocking, with whether NFKC leaves them unchanged (by full normalization).
alphabet = [
    "a", "e", "o", "u", "s", "\u00E2", "\u01CE", "\u1EA1", "\u1ECD", "\u00FC", "\u1E63",
    "\u0301", "\u0300", "\u0302", "\u0304", "\u0307", "\u0308", "\u030C", "\u0323",
    "\u0316", "\u0327", "\u0328", "\u0345", "\u0338", "\u05B0", "\u05B8",
    "\u0915", "\u0928", "\u093C", "\u093F",
    "\u09C7", "\u09BE", "\u09D7", "\u09B0", "\u0DD9", "\u0DCF", "\u0DCA", "\u0DDC",
    "\u1100", "\u1161", "\u11A8", "\uAC00", "\uAC01",
    "\u304B", "\u3099", "\u309A", "\u03C9", "\u0313", "\u1F60", "=",
]
strings = set()
while len(strings) < 300:
    n = rng.randrange(1, 5)
    strings.add("".join(rng.choice(alphabet) for _ in range(n)))
items = []
for s in sorted(strings):
    esc = "".join(c if c.isascii() else f"\\u{{{ord(c):04X}}}" for c in s)
    ok = unicodedata.normalize("NFKC", s) == s and not any(
        ord(c) in nfc_maybe and (ord(c) in DIACRITICS or 0x1100 <= ord(c) <= 0x11FF) for c in s)
    items.append(f"(\"{esc}\", {str(ok).lower()})")
vectors += ("    /// Strings and whether a name may hold them: NFKC leaves them unchanged\n"
            "    /// (by Python's unicodedata.normalize) and they hold neither a Maybe\n"
            "    /// mark of U+0300..U+036F nor a Hangul V or T jamo.\n"
            f"    #[rustfmt::skip]\n    const STRINGS: [(&str, bool); {len(items)}] = [\n"
            f"{rows(items, 3, '        ')}\n    ];\n")


# The look-alike fold against confusables.json, read again directly: a
# character stands for what the reserved-name forms in its class stand for.
def near(x):
    return set(CONFUSABLES.get(x, ()))


def same_class(a, b):
    return a == b or b in near(a) or bool(near(a) & near(b))


def expected_fold(ch):
    for p in sorted(pieces):
        if same_class(ch, p):
            return "" if ch == p else p
    for letter in LETTERS:
        sc = small_capital(letter)
        if sc and same_class(ch, sc):
            return FORMS[letter][1]
    if 0xAB70 <= ord(ch) <= 0xABBF or 0x13F8 <= ord(ch) <= 0x13FD:
        return expected_fold(ch.upper())
    return ""


rng = random.Random(39)
looks = set(rng.sample(sorted(fold), min(40, len(fold))))
others = sorted(ord(x) for x in graph if len(x) == 1 and not x.isascii()
                and holdable(ord(x)) and ord(x) not in fold)
looks.update(rng.sample(others, 40))
while len(looks) < 120:
    cp = rng.randrange(0x3400)
    if not is_surrogate(cp) and holdable(cp) and not chr(cp).isascii():
        looks.add(cp)
# Letters of other scripts in the news (the old hand-kept table, reviews).
looks.update([0x006D, 0x00DF, 0x0263, 0x0274, 0x0280, 0x03B5, 0x03BC, 0x03C3, 0x0430,
              0x0433, 0x0441, 0x04BD, 0x054F, 0x0578, 0x057F, 0x10E7, 0xAB79, 0xABA5])
items = []
for cp in sorted(looks):
    want = expected_fold(chr(cp))
    assert want == fold.get(cp, ""), (hex(cp), want, fold.get(cp))
    items.append(f"({h(cp)}, \"{want}\")")
vectors += ("    /// Code points and what the look-alike fold makes of them (\"\" for\n"
            "    /// nothing), read again from confusables.json by the generator.\n"
            f"    #[rustfmt::skip]\n    const LOOKALIKE_SAMPLES: [(u32, &str); {len(items)}] = [\n"
            f"{rows(items, 5, '        ')}\n    ];\n"
            "    /// The letters of the reserved names that [`LOOKALIKES`] was made for.\n"
            f"    const LOOKALIKE_LETTERS: &str = \"{''.join(LETTERS)}\";\n")


def replace(text, tag, body):
    begin = f"// BEGIN GENERATED {tag}"
    end = f"// END GENERATED {tag}"
    try:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
    except ValueError:
        sys.exit(f"{TARGET}: missing the '{begin}' / '{end}' markers")
    indent = head[head.rfind("\n") + 1:]
    return f"{head}{begin} by scripts/gen-unicode-tables.py; do not edit.\n{body}{indent}{end}{tail}"


text = TARGET.read_text()
text = replace(text, "TABLES", tables)
text = replace(text, "VECTORS", vectors)
TARGET.write_text(text)
sizes = {
    "INVISIBLE": 8 * len(INVISIBLE), "NFKC_NO": 4 * len(split(NFKC_NO, 2048)),
    "UNASSIGNED": 4 * len(UNASSIGNED) + 8 * len(UNASSIGNED_LONG), "CCC": 4 * len(ccc_runs), "SECONDS": 4 * len(SECONDS),
    "COMPOSITES": 4 * len(COMPOSITE_RUNS), "COMPOSITIONS": 4 * len(exact),
    "LOOKALIKES": 4 * len(fold) + sum(16 + len(x) for x in SKELETONS),
}
print(f"Unicode {version}, confusables {CONFUSABLES_UNICODE}: {len(fold)} look-alikes; wrote {TARGET.relative_to(ROOT)}", file=sys.stderr)
for k, v in sizes.items():
    print(f"  {k:13} {v:6} bytes", file=sys.stderr)
print(f"  {'total':13} {sum(sizes.values()):6} bytes", file=sys.stderr)
