#!/usr/bin/env python3
"""Regenerates the Unicode tables in src/auth/names.rs.

    python3 scripts/gen-unicode-tables.py
    rustfmt --edition 2024 src/auth/names.rs

Rewrites the text between the `BEGIN GENERATED` / `END GENERATED` marker
lines of src/auth/names.rs (the tables, and the test vectors in its test
module) and leaves the rest of the file alone. The output depends only on
the Unicode version of this Python's `unicodedata` (3.11: Unicode 14.0.0)
and the hand-kept lists below, so running it twice changes nothing.

With a Python on a newer Unicode, check the hand-kept lists against that
version (EXPECTED_NFC_MAYBE is asserted and will say so), and the "14.0" in
the documentation and messages of names.rs (its tests check the version).

Data sources:
- `unicodedata` (UnicodeData.txt): general category, canonical combining
  class, decompositions, and NFKC/NFC normalization of single code points.
- Default_Ignorable_Code_Point, copied by hand from DerivedCoreProperties.txt
  (Unicode 14.0).
- Cf code points assigned after this Python's Unicode version, by hand.
- The look-alike fold for reserved names: chosen by hand (see LOOKALIKES).
"""

import pathlib
import random
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

# The look-alike fold used when comparing a name with the reserved names.
# Only letters that common sans-serif fonts draw the same as, or as a small
# capital of, a Latin letter; most pairs are in Unicode's confusables.txt.
# Left out on purpose: shapes that differ on a second look (Greek ε η σ ζ,
# Cyrillic ь г д), digits and punctuation, and ASCII-internal look-alikes
# (I/l/1, O/0, rn/m).
LOOKALIKES = {
    # Latin letters outside ASCII that NFKC keeps.
    "a": [0x0251, 0x1D00],          # ɑ, small capital A
    "b": [0x0299],                  # small capital B
    "c": [0x1D04],
    "d": [0x1D05],
    "e": [0x1D07],
    "g": [0x0261, 0x0262],          # script g, small capital G
    "h": [0x029C],
    "i": [0x0131, 0x0269, 0x026A],  # dotless i, iota, small capital I
    "j": [0x0237, 0x1D0A],
    "k": [0x1D0B],
    "l": [0x029F],
    "m": [0x1D0D],
    "n": [0x0274],
    "o": [0x1D0F],
    "p": [0x1D18],
    "r": [0x0280],
    "s": [0xA731],
    "t": [0x1D1B],
    "u": [0x1D1C],
    "v": [0x1D20],
    "w": [0x1D21],
    "y": [0x028F],
    "z": [0x1D22],
}
GREEK = {
    "a": [0x0391, 0x03B1], "b": [0x0392],
    "e": [0x0395], "h": [0x0397], "i": [0x0399, 0x03B9],
    "j": [0x037F, 0x03F3], "k": [0x039A, 0x03BA], "m": [0x039C],
    "n": [0x039D], "o": [0x039F, 0x03BF], "p": [0x03A1, 0x03C1],
    "t": [0x03A4, 0x03C4], "u": [0x03C5], "v": [0x03BD],
    "x": [0x03A7], "y": [0x03A5, 0x03B3], "z": [0x0396],
}
CYRILLIC = {
    "a": [0x0410, 0x0430], "b": [0x0412, 0x0432], "c": [0x0421, 0x0441],
    "d": [0x0501], "e": [0x0415, 0x0435], "h": [0x041D, 0x043D, 0x04BA, 0x04BB],
    "i": [0x0406, 0x0456, 0x04C0, 0x04CF], "j": [0x0408, 0x0458],
    "k": [0x041A, 0x043A], "m": [0x041C, 0x043C], "o": [0x041E, 0x043E],
    "p": [0x0420, 0x0440], "q": [0x051A, 0x051B], "s": [0x0405, 0x0455],
    "t": [0x0422, 0x0442], "v": [0x0474, 0x0475], "w": [0x051C, 0x051D],
    "x": [0x0425, 0x0445], "y": [0x0423, 0x0443, 0x04AE, 0x04AF],
}
# Cherokee capitals (and their small forms, drawn as small capitals) and
# Lisu letters: both scripts can spell SYSTEM outright.
CHEROKEE = {
    "a": [0x13AA], "b": [0x13CF, 0x13F4], "c": [0x13DF], "d": [0x13A0, 0x13E7],
    "e": [0x13AC], "g": [0x13C0, 0x13F3], "h": [0x13BB, 0x13C2], "i": [0x13A5],
    "j": [0x13AB], "k": [0x13E6], "l": [0x13DE], "m": [0x13B7],
    "p": [0x13E2], "r": [0x13A1, 0x13D2], "s": [0x13D5, 0x13DA],
    "t": [0x13A2], "v": [0x13D9], "w": [0x13B3, 0x13D4], "y": [0x13A9, 0x13BD],
    "z": [0x13C3],
}
LISU = {
    "a": [0xA4EE], "b": [0xA4D0], "c": [0xA4DA], "d": [0xA4D3, 0xA4D2],
    "e": [0xA4F0], "f": [0xA4DD], "g": [0xA4D6], "h": [0xA4E7], "i": [0xA4F2],
    "j": [0xA4D9], "k": [0xA4D7], "l": [0xA4E1], "m": [0xA4DF], "n": [0xA4E0],
    "o": [0xA4F3], "p": [0xA4D1], "r": [0xA4E3], "s": [0xA4E2], "t": [0xA4D4],
    "u": [0xA4F4], "v": [0xA4E6], "w": [0xA4EA], "x": [0xA4EB], "y": [0xA4EC],
    "z": [0xA4DC],
}


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

# --- look-alikes ----------------------------------------------------------
lookalike = {}
for table in (LOOKALIKES, GREEK, CYRILLIC, CHEROKEE, LISU):
    for latin, cps in table.items():
        for cp in cps:
            assert cp not in lookalike, hex(cp)
            lookalike[cp] = latin
cherokee_small = {}
for cp, latin in list(lookalike.items()):
    if 0x13A0 <= cp <= 0x13F5:
        small = ord(chr(cp).lower())
        assert small != cp and cat(small) == "Ll", hex(cp)
        cherokee_small[small] = latin
lookalike.update(cherokee_small)
for cp, latin in lookalike.items():
    assert cat(cp) in ("Lu", "Ll", "Lo"), hex(cp)
    assert cp not in nfkc_no and cp not in invisible and cp < 0x10000, hex(cp)
    assert latin.isascii() and latin.islower()

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
lines = [f"    ({h(cp)}, b'{lookalike[cp]}'), // {chr(cp)} {unicodedata.name(chr(cp))}"
         for cp in sorted(lookalike)]
out.append(
    "/// Letters that look like a Latin letter, with that letter (lower case).\n"
    f"#[rustfmt::skip]\nstatic LOOKALIKES: [(u16, u8); {len(lookalike)}] = [\n" + "\n".join(lines) + "\n];\n")
tables = "\n".join(out)

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
    "LOOKALIKES": 4 * len(lookalike),
}
print(f"Unicode {version}: wrote {TARGET.relative_to(ROOT)}", file=sys.stderr)
for k, v in sizes.items():
    print(f"  {k:13} {v:6} bytes", file=sys.stderr)
print(f"  {'total':13} {sum(sizes.values()):6} bytes", file=sys.stderr)
