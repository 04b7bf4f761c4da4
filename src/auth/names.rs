//! User names: what a name may hold, and which names are reserved.
//!
//! Every line a user writes is shown as `NAME: LINE`, so a name must not be
//! able to pass for another one, above all for [`SYSTEM_NAME`], the name the
//! server speaks as. [`check_user_name`] refuses, with a [`NameError`] that
//! says why, a name that:
//!
//! 1. is empty or longer than [`MAX_USER_NAME_LEN`] bytes;
//! 2. holds `:` (it separates name from line in text mode);
//! 3. holds a control character (general category Cc);
//! 4. holds an *invisible* character ([`is_invisible`](super::is_invisible)): any
//!    Default_Ignorable_Code_Point (zero-width spaces and joiners, variation
//!    selectors such as the emoji selector U+FE0F, the combining grapheme
//!    joiner U+034F, the Hangul fillers U+115F, U+1160, U+3164 and U+FFA0,
//!    tags U+E0000..U+E0FFF, …), any format character (general category Cf:
//!    bidirectional controls, U+0600..U+0605, U+1D173..U+1D17A, …) or a line
//!    or paragraph separator (U+2028, U+2029). So `System\u{34F}` and
//!    `System\u{E0020}` are refused, and so is `❤️` (U+2764 U+FE0F), while
//!    `❤` and `🙂` (symbols, not format characters) are fine;
//! 5. holds a code point unassigned in Unicode 14.0 (general category Cn,
//!    noncharacters included): a later version may make it invisible or a
//!    format character, as Unicode 15.0 did with U+13439..U+1343F. (This
//!    also refuses what later versions added, newer emoji among them, until
//!    the tables are regenerated from a newer Unicode.);
//! 6. begins or ends with white space;
//! 7. is not NFKC-stable, or not precomposed:
//!    - Unicode normalization NFKC would change it. That refuses
//!      compatibility characters (fullwidth `Ｓ`, `ſ`, the Kelvin sign,
//!      mathematical letters `𝐒`, ligatures such as `ﬅ`, superscripts, the
//!      no-break space and the other compatibility spaces, halfwidth forms,
//!      Hangul compatibility jamo, …), characters that NFC would compose
//!      with the one before, and combining marks out of canonical order;
//!    - it holds an accent of the Combining Diacritical Marks block that
//!      NFC composes with some letter (NFC_Quick_Check=Maybe: U+0300..U+0304,
//!      U+0306..U+030C, U+0323..U+0328, …) or a Hangul vowel or final jamo
//!      (U+1161..U+1175, U+11A8..U+11C2), even where no precomposed form
//!      exists: Latin, Greek, Cyrillic and Korean names must arrive
//!      precomposed. `José` with U+00E9 is fine, `Jose\u{301}` is not, and
//!      neither is Yoruba `ọ́` (U+1ECD U+0301, which has no precomposed
//!      form). Marks of other scripts that NFC may compose (Indic vowel
//!      signs and nukta, the Sinhala al-lakuna, kana voicing marks, Arabic
//!      hamza and madda) are refused only where NFC would compose them, so
//!      `अमित`, `ज़` (U+091C U+093C: NFC keeps them apart), Bengali `রাহুল`,
//!      Tamil `கார்த்திக்` and Sinhala `රාජ්` are fine;
//! 8. is reserved: see [`is_reserved_name`].
//!
//! Letters of any script are otherwise welcome: `Иван`, `张伟`, `さくら`,
//! `김민준`, `محمد`, `สมชาย`. Only the reserved-name comparison treats
//! letters of other scripts as the Latin letters Unicode finds them
//! confusable with.
//!
//! Not refused: private-use characters (they render as whatever the
//! reader's fonts make of them) and combining marks at the start of a name.
//!
//! # Unicode data
//!
//! The tables at the end of this file are generated from Unicode 14.0.0 (the
//! `unicodedata` module of Python 3.11): general category, canonical
//! combining class, canonical decompositions and the NFKC form of each code
//! point. Default_Ignorable_Code_Point is copied from
//! DerivedCoreProperties.txt, and U+13439..U+1343F (format characters of
//! Unicode 15.0) are added by hand. The look-alike table comes from
//! Unicode's confusables.txt 15.1.0 (UTS #39), as carried by the PyPI
//! package confusable-homoglyphs 3.3.1 (the script checks its hash). To
//! regenerate them, from the repository root:
//!
//! ```text
//! pip download confusable-homoglyphs==3.3.1 --no-deps -d /tmp/conf
//! python3 -m zipfile -e /tmp/conf/confusable_homoglyphs-3.3.1-py2.py3-none-any.whl /tmp/conf
//! python3 scripts/gen-unicode-tables.py /tmp/conf/confusable_homoglyphs/confusables.json
//! rustfmt --edition 2024 src/auth/names.rs
//! ```
//!
//! Ranges are kept sorted and searched by binary search; no crate is
//! involved. The tables take about 7.2 KB, the code about 5 KB.

use std::fmt;

use super::{MAX_USER_NAME_LEN, SYSTEM_NAME};

/// The names no user may take, nor anything that looks like them (see
/// [`is_reserved_name`]). ASCII only.
pub const RESERVED_NAMES: [&str; 1] = [SYSTEM_NAME];

/// Why [`check_user_name`] refused a name. The checks run in the order of
/// the variants: a name with several faults reports the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum NameError {
    /// No characters at all.
    Empty,
    /// More than [`MAX_USER_NAME_LEN`] bytes.
    TooLong,
    /// A `:`.
    Colon,
    /// A control character (general category Cc).
    Control,
    /// An invisible or formatting character (see [`is_invisible`](super::is_invisible)).
    Invisible,
    /// A code point unassigned in Unicode 14.0.
    Unassigned,
    /// White space at the start or the end.
    Spaces,
    /// Not NFKC-stable (compatibility characters, characters NFC would
    /// compose, marks out of canonical order), or an accent or jamo coded
    /// apart from its letter.
    NotNormalized,
    /// A reserved name, or one that looks like it.
    Reserved,
}

impl NameError {
    /// What is wrong, as words to follow "user name ", such as "is reserved".
    pub fn phrase(self) -> &'static str {
        match self {
            NameError::Empty => "is empty",
            NameError::TooLong => "is longer than 64 bytes",
            NameError::Colon => "holds ':'",
            NameError::Control => "holds a control character",
            NameError::Invisible => "holds an invisible or formatting character",
            NameError::Unassigned => "holds a character unassigned in Unicode 14.0",
            NameError::Spaces => "begins or ends with white space",
            NameError::NotNormalized => {
                "is not in Unicode normalization form NFKC with precomposed letters"
            }
            NameError::Reserved => "is reserved",
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user name {}", self.phrase())
    }
}

impl std::error::Error for NameError {}

/// Checks that `name` may be a user's name, by the rules of this module's
/// documentation.
pub fn check_user_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_USER_NAME_LEN {
        return Err(NameError::TooLong);
    }
    let mut worst = None;
    for c in name.chars() {
        let fault = if c == ':' {
            NameError::Colon
        } else if c.is_control() {
            NameError::Control
        } else if c.is_ascii() {
            // why: no other ASCII character is invisible or unassigned
            // (`ascii_needs_no_tables`); the tables are searched for the rest.
            continue;
        } else if is_invisible(c) {
            NameError::Invisible
        } else if is_unassigned(c) {
            NameError::Unassigned
        } else {
            continue;
        };
        worst = Some(worst.map_or(fault, |w: NameError| w.min(fault)));
    }
    if let Some(fault) = worst {
        return Err(fault);
    }
    if name.trim() != name {
        return Err(NameError::Spaces);
    }
    // why: ASCII text is always in NFKC.
    if !name.is_ascii() && !is_nfkc_precomposed(name) {
        return Err(NameError::NotNormalized);
    }
    if is_reserved_name(name) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// True when `name` is one of [`RESERVED_NAMES`] or looks like it: `system`,
/// `SYSTEM`, `Ѕуѕtеm` (Cyrillic Ѕ у ѕ е), `ꓢꓬꓢꓔꓰꓟ` (Lisu), `Տystem`
/// (Armenian Տ) and `Systern` are all `System`.
///
/// The rule is that of UTS #39 (Unicode Security Mechanisms), restricted to
/// the reserved names and blind to case: two strings are confusable when
/// they have the same *skeleton*, each character replaced by the prototype
/// that Unicode's confusables.txt gives it (`Ѕ` is `S`, `у` is `y`, `m` is
/// `rn`). Here:
/// - each character of `name` becomes what it stands for: a character of
///   the table `LOOKALIKES` its entry there, any other ASCII character
///   itself, `ß` and `ẞ` become `ss` and invisible characters
///   ([`is_invisible`](super::is_invisible)) nothing; anything else cannot
///   match (reserved names are ASCII letters);
/// - the result must spell a reserved name with each letter in lower or
///   upper case, the letter itself taken as its skeleton too: `s` or `S`,
///   `y` or `Y`, …, `rn` or `M`. So `Systern` and `SYSTEM` are reserved,
///   `SYSTERN` is not.
///
/// The table (generated by `scripts/gen-unicode-tables.py` from
/// confusables.txt 15.1.0) holds only what the reserved names need: each
/// character a name may hold that confusables.txt puts with a letter of a
/// reserved name, in lower or upper case (`Տ` is `S`; `ɣ`, `γ`, `ყ` and `у`
/// are `y`; `ҽ` is `e`; `ᛖ` is `M`), or with a letter of such a letter's
/// skeleton (`г` is `r` and `ո` is `n`, as in `rn`). To that it adds two
/// things confusables.txt leaves apart: a small capital is its capital, so
/// the class of `ᴛ` (Greek `τ`, Cyrillic `т`, Cherokee `ꭲ`) stands for `T`
/// and those of `ᴇ` and `ᴍ` (Cyrillic `м`, `ʍ`) for `E` and `M`; and a
/// Cherokee small letter stands for what its capital stands for, as it is
/// drawn as its small capital. Nothing else: Greek `ε` and `μ`, whose
/// capitals look like `E` and `M`, stay apart, as do the look-alikes of
/// letters no reserved name holds.
///
/// For a name that passed the other checks (NFKC-stable, nothing
/// invisible), equality with an ASCII name after NFKC and full case folding
/// (NFKC_Casefold) comes down to this comparison without the look-alike
/// step: the generator checks that no other character such a name may hold
/// case-folds to ASCII. NFKC itself does not fold scripts together, hence
/// the look-alike table. The function does not undo compatibility forms
/// (`Ｓystem`, the Kelvin sign); [`check_user_name`] refuses those before it
/// asks.
pub fn is_reserved_name(name: &str) -> bool {
    skeleton(name).is_some_and(|skeleton| {
        RESERVED_NAMES
            .iter()
            .any(|reserved| spells(&skeleton, reserved.as_bytes()))
    })
}

/// Each character of `name` as what it stands for (see
/// [`is_reserved_name`]), or `None` if one cannot be part of a reserved
/// name.
fn skeleton(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len());
    for c in name.chars() {
        if let Some(s) = lookalike(c) {
            out.extend_from_slice(s.as_bytes());
        } else if c.is_ascii() {
            out.push(c as u8);
        } else if matches!(c, 'ß' | 'ẞ') {
            out.extend_from_slice(b"ss");
        } else if !is_invisible(c) {
            return None;
        }
    }
    Some(out)
}

/// True when `skeleton` spells the ASCII `reserved` with each letter in
/// lower or upper case, letters taken as their skeletons (`m` as `rn`).
fn spells(skeleton: &[u8], reserved: &[u8]) -> bool {
    let Some((&letter, rest)) = reserved.split_first() else {
        return skeleton.is_empty();
    };
    [letter.to_ascii_lowercase(), letter.to_ascii_uppercase()]
        .into_iter()
        .any(|form| {
            let own = [form];
            let form = lookalike(char::from(form)).map_or(&own[..], str::as_bytes);
            skeleton
                .strip_prefix(form)
                .is_some_and(|tail| spells(tail, rest))
        })
}

/// What `c` stands for in a skeleton, when it is in [`LOOKALIKES`].
fn lookalike(c: char) -> Option<&'static str> {
    let cp = u32::from(c);
    let e = *LOOKALIKES.get(LOOKALIKES.partition_point(|&e| e >> 8 < cp))?;
    (e >> 8 == cp).then(|| SKELETONS[(e & 0xFF) as usize])
}

/// Packs an entry of [`LOOKALIKES`]: the code point in the high 24 bits,
/// the index of what it stands for in [`SKELETONS`] in the low 8.
const fn look(cp: u32, skeleton: &str) -> u32 {
    assert!(cp <= 0x10FFFF);
    let want = skeleton.as_bytes();
    let mut i = 0;
    while i < SKELETONS.len() {
        let have = SKELETONS[i].as_bytes();
        let mut j = 0;
        while j < have.len() && j < want.len() && have[j] == want[j] {
            j += 1;
        }
        if j == have.len() && j == want.len() {
            return (cp << 8) | i as u32;
        }
        i += 1;
    }
    panic!("a skeleton missing from SKELETONS")
}

/// True for Default_Ignorable_Code_Point, general category Cf (format) and
/// the line and paragraph separators (Zl, Zp), Unicode 14.0, plus the Cf
/// characters U+13439..U+1343F of Unicode 15.0.
pub(super) fn is_invisible(c: char) -> bool {
    in_ranges(&INVISIBLE, u32::from(c))
}

/// True for code points unassigned in Unicode 14.0 (general category Cn),
/// apart from those [`is_invisible`](super::is_invisible) already covers.
fn is_unassigned(c: char) -> bool {
    let cp = u32::from(c);
    in_spans(&UNASSIGNED, cp) || in_ranges(&UNASSIGNED_LONG, cp)
}

/// True when `cp` is in one of the (sorted, disjoint) inclusive ranges of
/// `table`.
fn in_ranges(table: &[(u32, u32)], cp: u32) -> bool {
    let i = table.partition_point(|&(first, _)| first <= cp);
    i > 0 && cp <= table[i - 1].1
}

/// Packs an inclusive range of at most 2048 code points into a `u32`: the
/// first code point in the high 21 bits, `last - first` in the low 11.
const fn span(first: u32, last: u32) -> u32 {
    assert!(first <= last && last - first < 2048 && last <= 0x10FFFF);
    (first << 11) | (last - first)
}

/// True when `cp` is in one of the (sorted, disjoint) `span`s of `table`.
fn in_spans(table: &[u32], cp: u32) -> bool {
    let i = table.partition_point(|&e| e >> 11 <= cp);
    i > 0 && cp - (table[i - 1] >> 11) <= table[i - 1] & 0x7FF
}

/// Packs a run of at most 8 code points sharing a combining class.
const fn run(first: u32, last: u32, class: u8) -> u32 {
    assert!(first <= last && last - first < 8 && last <= 0x10FFFF && class != 0);
    (first << 11) | ((last - first) << 8) | class as u32
}

/// The canonical combining class of `c`.
fn ccc(c: char) -> u8 {
    let cp = u32::from(c);
    if cp < 0x300 {
        return 0;
    }
    let i = CCC.partition_point(|&e| e >> 11 <= cp);
    match i.checked_sub(1).map(|i| CCC[i]) {
        Some(e) if cp - (e >> 11) <= (e >> 8) & 7 => e as u8,
        _ => 0,
    }
}

/// Packs the decomposition of a primary composite: the first part, and the
/// second part's index in [`SECONDS`].
const fn pair(first: u32, second: u32) -> u32 {
    let mut i = 0;
    while i < SECONDS.len() {
        if SECONDS[i] == second {
            return (first << 6) | i as u32;
        }
        i += 1;
    }
    panic!("a second part missing from SECONDS")
}

/// NFC_Quick_Check=Maybe: `c` may compose with the character before it.
fn may_join(c: char) -> bool {
    let cp = u32::from(c);
    is_hangul_vowel_or_final(cp) || SECONDS.binary_search(&cp).is_ok()
}

/// The conjoining jamo that NFC composes with a leading consonant (V) or
/// with a syllable (T).
fn is_hangul_vowel_or_final(cp: u32) -> bool {
    (0x1161..=0x1175).contains(&cp) || (0x11A8..=0x11C2).contains(&cp)
}

/// The primary composite of `first` and `second`, if there is one and its
/// second part lies outside U+0300..U+036F (see [`COMPOSITES`]).
fn compose(first: char, second: char) -> Option<char> {
    let index = SECONDS.binary_search(&u32::from(second)).ok()?;
    let key = (u32::from(first) << 6) | index as u32;
    let mut n = COMPOSITIONS.iter().position(|&p| p == key)?;
    for &e in &COMPOSITES {
        let len = (e & 0x7FF) as usize + 1;
        if n < len {
            return char::from_u32((e >> 11) + n as u32);
        }
        n -= len;
    }
    None
}

/// The canonical decomposition of a composite that [`compose`] knows.
fn decompose(c: char) -> Option<(char, char)> {
    let cp = u32::from(c);
    let mut n = 0;
    for &e in &COMPOSITES {
        let (first, len) = (e >> 11, (e & 0x7FF) + 1);
        if cp < first {
            return None;
        }
        if cp < first + len {
            let p = COMPOSITIONS[n + (cp - first) as usize];
            return Some((
                char::from_u32(p >> 6)?,
                char::from_u32(SECONDS[(p & 63) as usize])?,
            ));
        }
        n += len as usize;
    }
    None
}

/// Rule 7 of the module documentation: true when NFKC leaves `s` unchanged
/// and `s` holds no Combining Diacritical Mark that may compose and no
/// Hangul V or T jamo.
///
/// This is the quick check of UAX #15 (no NFKC_Quick_Check=No character,
/// combining marks in canonical order), with its "maybe" answers turned
/// into "no" for those marks and jamo, and settled exactly for the other
/// NFC_Quick_Check=Maybe characters: a starter among them is tried against
/// the character right before it, a combining mark by normalizing the
/// stretch from the last starter to it.
fn is_nfkc_precomposed(s: &str) -> bool {
    let mut previous: Option<char> = None;
    let mut previous_class = 0;
    let mut starter: Option<usize> = None;
    for (i, c) in s.char_indices() {
        let cp = u32::from(c);
        if in_spans(&NFKC_NO, cp) {
            return false;
        }
        let class = ccc(c);
        if class != 0 && previous_class > class {
            return false;
        }
        if may_join(c) {
            let joins = if (0x300..=0x36F).contains(&cp) || is_hangul_vowel_or_final(cp) {
                true
            } else if class == 0 {
                previous.is_some_and(|p| compose(p, c).is_some())
            } else {
                starter.is_some_and(|start| !segment_is_nfc(&s[start..i + c.len_utf8()]))
            };
            if joins {
                return false;
            }
        }
        if class == 0 {
            starter = Some(i);
        }
        previous = Some(c);
        previous_class = class;
    }
    true
}

/// True when NFC leaves `segment`, a starter and the combining marks after
/// it, unchanged: decomposes the starter, puts the marks in canonical
/// order and composes again (UAX #15), then compares. Knows only the
/// compositions in [`COMPOSITES`], which is exact for segments that hold
/// no mark of U+0300..U+036F that may compose.
#[cold]
fn segment_is_nfc(segment: &str) -> bool {
    let mut chars = segment.chars();
    let Some(starter) = chars.next() else {
        return true;
    };
    let mut decomposed = Vec::with_capacity(segment.len() + 4);
    decompose_into(starter, &mut decomposed);
    decomposed.extend(chars.map(|c| (c, ccc(c))));
    for i in 1..decomposed.len() {
        let mut j = i;
        while j > 0 && decomposed[j].1 != 0 && decomposed[j - 1].1 > decomposed[j].1 {
            decomposed.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut composed: Vec<(char, u8)> = Vec::with_capacity(decomposed.len());
    let mut last_starter: Option<usize> = None;
    for (c, class) in decomposed {
        if let Some(s) = last_starter {
            let between = composed.len() - 1 != s;
            let blocked = between && composed[composed.len() - 1].1 >= class;
            if !blocked {
                if let Some(joined) = compose(composed[s].0, c) {
                    composed[s].0 = joined;
                    continue;
                }
            }
        }
        if class == 0 {
            last_starter = Some(composed.len());
        }
        composed.push((c, class));
    }
    composed.iter().map(|&(c, _)| c).eq(segment.chars())
}

/// Appends the full canonical decomposition of `c`, as far as [`decompose`]
/// knows it, with combining classes.
fn decompose_into(c: char, out: &mut Vec<(char, u8)>) {
    match decompose(c) {
        Some((first, second)) => {
            decompose_into(first, out);
            out.push((second, ccc(second)));
        }
        None => out.push((c, ccc(c))),
    }
}

// BEGIN GENERATED TABLES by scripts/gen-unicode-tables.py; do not edit.
// Sources: the unicodedata module of Python 3.11 (Unicode 14.0.0), and
// for LOOKALIKES Unicode's confusables.txt 15.1.0 (UTS #39), as the
// confusables.json of the PyPI package confusable-homoglyphs 3.3.1 (sha256
// 2d8b4774cd9dc6f233a18681bc00423ae270037437f276fc6a8b80630941fe7d),
// for the reserved names System.
/// The Unicode version of the tables below.
pub const UNICODE_VERSION: &str = "14.0.0";

/// Default_Ignorable_Code_Point ∪ general category Cf ∪ Zl ∪ Zp, as
/// inclusive ranges.
#[rustfmt::skip]
static INVISIBLE: [(u32, u32); 25] = [
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2),
    (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F),
    (0x2028, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFFB), (0x110BD, 0x110BD),
    (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

/// NFKC_Quick_Check=No: the code points that NFKC changes.
#[rustfmt::skip]
static NFKC_NO: [u32; 254] = [
    span(0x00A0, 0x00A0), span(0x00A8, 0x00A8), span(0x00AA, 0x00AA), span(0x00AF, 0x00AF),
    span(0x00B2, 0x00B5), span(0x00B8, 0x00BA), span(0x00BC, 0x00BE), span(0x0132, 0x0133),
    span(0x013F, 0x0140), span(0x0149, 0x0149), span(0x017F, 0x017F), span(0x01C4, 0x01CC),
    span(0x01F1, 0x01F3), span(0x02B0, 0x02B8), span(0x02D8, 0x02DD), span(0x02E0, 0x02E4),
    span(0x0340, 0x0341), span(0x0343, 0x0344), span(0x0374, 0x0374), span(0x037A, 0x037A),
    span(0x037E, 0x037E), span(0x0384, 0x0385), span(0x0387, 0x0387), span(0x03D0, 0x03D6),
    span(0x03F0, 0x03F2), span(0x03F4, 0x03F5), span(0x03F9, 0x03F9), span(0x0587, 0x0587),
    span(0x0675, 0x0678), span(0x0958, 0x095F), span(0x09DC, 0x09DD), span(0x09DF, 0x09DF),
    span(0x0A33, 0x0A33), span(0x0A36, 0x0A36), span(0x0A59, 0x0A5B), span(0x0A5E, 0x0A5E),
    span(0x0B5C, 0x0B5D), span(0x0E33, 0x0E33), span(0x0EB3, 0x0EB3), span(0x0EDC, 0x0EDD),
    span(0x0F0C, 0x0F0C), span(0x0F43, 0x0F43), span(0x0F4D, 0x0F4D), span(0x0F52, 0x0F52),
    span(0x0F57, 0x0F57), span(0x0F5C, 0x0F5C), span(0x0F69, 0x0F69), span(0x0F73, 0x0F73),
    span(0x0F75, 0x0F79), span(0x0F81, 0x0F81), span(0x0F93, 0x0F93), span(0x0F9D, 0x0F9D),
    span(0x0FA2, 0x0FA2), span(0x0FA7, 0x0FA7), span(0x0FAC, 0x0FAC), span(0x0FB9, 0x0FB9),
    span(0x10FC, 0x10FC), span(0x1D2C, 0x1D2E), span(0x1D30, 0x1D3A), span(0x1D3C, 0x1D4D),
    span(0x1D4F, 0x1D6A), span(0x1D78, 0x1D78), span(0x1D9B, 0x1DBF), span(0x1E9A, 0x1E9B),
    span(0x1F71, 0x1F71), span(0x1F73, 0x1F73), span(0x1F75, 0x1F75), span(0x1F77, 0x1F77),
    span(0x1F79, 0x1F79), span(0x1F7B, 0x1F7B), span(0x1F7D, 0x1F7D), span(0x1FBB, 0x1FBB),
    span(0x1FBD, 0x1FC1), span(0x1FC9, 0x1FC9), span(0x1FCB, 0x1FCB), span(0x1FCD, 0x1FCF),
    span(0x1FD3, 0x1FD3), span(0x1FDB, 0x1FDB), span(0x1FDD, 0x1FDF), span(0x1FE3, 0x1FE3),
    span(0x1FEB, 0x1FEB), span(0x1FED, 0x1FEF), span(0x1FF9, 0x1FF9), span(0x1FFB, 0x1FFB),
    span(0x1FFD, 0x1FFE), span(0x2000, 0x200A), span(0x2011, 0x2011), span(0x2017, 0x2017),
    span(0x2024, 0x2026), span(0x202F, 0x202F), span(0x2033, 0x2034), span(0x2036, 0x2037),
    span(0x203C, 0x203C), span(0x203E, 0x203E), span(0x2047, 0x2049), span(0x2057, 0x2057),
    span(0x205F, 0x205F), span(0x2070, 0x2071), span(0x2074, 0x208E), span(0x2090, 0x209C),
    span(0x20A8, 0x20A8), span(0x2100, 0x2103), span(0x2105, 0x2107), span(0x2109, 0x2113),
    span(0x2115, 0x2116), span(0x2119, 0x211D), span(0x2120, 0x2122), span(0x2124, 0x2124),
    span(0x2126, 0x2126), span(0x2128, 0x2128), span(0x212A, 0x212D), span(0x212F, 0x2131),
    span(0x2133, 0x2139), span(0x213B, 0x2140), span(0x2145, 0x2149), span(0x2150, 0x217F),
    span(0x2189, 0x2189), span(0x222C, 0x222D), span(0x222F, 0x2230), span(0x2329, 0x232A),
    span(0x2460, 0x24EA), span(0x2A0C, 0x2A0C), span(0x2A74, 0x2A76), span(0x2ADC, 0x2ADC),
    span(0x2C7C, 0x2C7D), span(0x2D6F, 0x2D6F), span(0x2E9F, 0x2E9F), span(0x2EF3, 0x2EF3),
    span(0x2F00, 0x2FD5), span(0x3000, 0x3000), span(0x3036, 0x3036), span(0x3038, 0x303A),
    span(0x309B, 0x309C), span(0x309F, 0x309F), span(0x30FF, 0x30FF), span(0x3131, 0x318E),
    span(0x3192, 0x319F), span(0x3200, 0x321E), span(0x3220, 0x3247), span(0x3250, 0x327E),
    span(0x3280, 0x33FF), span(0xA69C, 0xA69D), span(0xA770, 0xA770), span(0xA7F2, 0xA7F4),
    span(0xA7F8, 0xA7F9), span(0xAB5C, 0xAB5F), span(0xAB69, 0xAB69), span(0xF900, 0xFA0D),
    span(0xFA10, 0xFA10), span(0xFA12, 0xFA12), span(0xFA15, 0xFA1E), span(0xFA20, 0xFA20),
    span(0xFA22, 0xFA22), span(0xFA25, 0xFA26), span(0xFA2A, 0xFA6D), span(0xFA70, 0xFAD9),
    span(0xFB00, 0xFB06), span(0xFB13, 0xFB17), span(0xFB1D, 0xFB1D), span(0xFB1F, 0xFB36),
    span(0xFB38, 0xFB3C), span(0xFB3E, 0xFB3E), span(0xFB40, 0xFB41), span(0xFB43, 0xFB44),
    span(0xFB46, 0xFBB1), span(0xFBD3, 0xFD3D), span(0xFD50, 0xFD8F), span(0xFD92, 0xFDC7),
    span(0xFDF0, 0xFDFC), span(0xFE10, 0xFE19), span(0xFE30, 0xFE44), span(0xFE47, 0xFE52),
    span(0xFE54, 0xFE66), span(0xFE68, 0xFE6B), span(0xFE70, 0xFE72), span(0xFE74, 0xFE74),
    span(0xFE76, 0xFEFC), span(0xFF01, 0xFFBE), span(0xFFC2, 0xFFC7), span(0xFFCA, 0xFFCF),
    span(0xFFD2, 0xFFD7), span(0xFFDA, 0xFFDC), span(0xFFE0, 0xFFE6), span(0xFFE8, 0xFFEE),
    span(0x10781, 0x10785), span(0x10787, 0x107B0), span(0x107B2, 0x107BA), span(0x1D15E, 0x1D164),
    span(0x1D1BB, 0x1D1C0), span(0x1D400, 0x1D454), span(0x1D456, 0x1D49C), span(0x1D49E, 0x1D49F),
    span(0x1D4A2, 0x1D4A2), span(0x1D4A5, 0x1D4A6), span(0x1D4A9, 0x1D4AC), span(0x1D4AE, 0x1D4B9),
    span(0x1D4BB, 0x1D4BB), span(0x1D4BD, 0x1D4C3), span(0x1D4C5, 0x1D505), span(0x1D507, 0x1D50A),
    span(0x1D50D, 0x1D514), span(0x1D516, 0x1D51C), span(0x1D51E, 0x1D539), span(0x1D53B, 0x1D53E),
    span(0x1D540, 0x1D544), span(0x1D546, 0x1D546), span(0x1D54A, 0x1D550), span(0x1D552, 0x1D6A5),
    span(0x1D6A8, 0x1D7CB), span(0x1D7CE, 0x1D7FF), span(0x1EE00, 0x1EE03), span(0x1EE05, 0x1EE1F),
    span(0x1EE21, 0x1EE22), span(0x1EE24, 0x1EE24), span(0x1EE27, 0x1EE27), span(0x1EE29, 0x1EE32),
    span(0x1EE34, 0x1EE37), span(0x1EE39, 0x1EE39), span(0x1EE3B, 0x1EE3B), span(0x1EE42, 0x1EE42),
    span(0x1EE47, 0x1EE47), span(0x1EE49, 0x1EE49), span(0x1EE4B, 0x1EE4B), span(0x1EE4D, 0x1EE4F),
    span(0x1EE51, 0x1EE52), span(0x1EE54, 0x1EE54), span(0x1EE57, 0x1EE57), span(0x1EE59, 0x1EE59),
    span(0x1EE5B, 0x1EE5B), span(0x1EE5D, 0x1EE5D), span(0x1EE5F, 0x1EE5F), span(0x1EE61, 0x1EE62),
    span(0x1EE64, 0x1EE64), span(0x1EE67, 0x1EE6A), span(0x1EE6C, 0x1EE72), span(0x1EE74, 0x1EE77),
    span(0x1EE79, 0x1EE7C), span(0x1EE7E, 0x1EE7E), span(0x1EE80, 0x1EE89), span(0x1EE8B, 0x1EE9B),
    span(0x1EEA1, 0x1EEA3), span(0x1EEA5, 0x1EEA9), span(0x1EEAB, 0x1EEBB), span(0x1F100, 0x1F10A),
    span(0x1F110, 0x1F12E), span(0x1F130, 0x1F14F), span(0x1F16A, 0x1F16C), span(0x1F190, 0x1F190),
    span(0x1F200, 0x1F202), span(0x1F210, 0x1F23B), span(0x1F240, 0x1F248), span(0x1F250, 0x1F251),
    span(0x1FBF0, 0x1FBF9), span(0x2F800, 0x2FA1D),
];

/// General category Cn (noncharacters included) outside the invisible
/// ranges: the ranges of fewer than 2048 code points.
#[rustfmt::skip]
static UNASSIGNED: [u32; 686] = [
    span(0x0378, 0x0379), span(0x0380, 0x0383), span(0x038B, 0x038B), span(0x038D, 0x038D),
    span(0x03A2, 0x03A2), span(0x0530, 0x0530), span(0x0557, 0x0558), span(0x058B, 0x058C),
    span(0x0590, 0x0590), span(0x05C8, 0x05CF), span(0x05EB, 0x05EE), span(0x05F5, 0x05FF),
    span(0x070E, 0x070E), span(0x074B, 0x074C), span(0x07B2, 0x07BF), span(0x07FB, 0x07FC),
    span(0x082E, 0x082F), span(0x083F, 0x083F), span(0x085C, 0x085D), span(0x085F, 0x085F),
    span(0x086B, 0x086F), span(0x088F, 0x088F), span(0x0892, 0x0897), span(0x0984, 0x0984),
    span(0x098D, 0x098E), span(0x0991, 0x0992), span(0x09A9, 0x09A9), span(0x09B1, 0x09B1),
    span(0x09B3, 0x09B5), span(0x09BA, 0x09BB), span(0x09C5, 0x09C6), span(0x09C9, 0x09CA),
    span(0x09CF, 0x09D6), span(0x09D8, 0x09DB), span(0x09DE, 0x09DE), span(0x09E4, 0x09E5),
    span(0x09FF, 0x0A00), span(0x0A04, 0x0A04), span(0x0A0B, 0x0A0E), span(0x0A11, 0x0A12),
    span(0x0A29, 0x0A29), span(0x0A31, 0x0A31), span(0x0A34, 0x0A34), span(0x0A37, 0x0A37),
    span(0x0A3A, 0x0A3B), span(0x0A3D, 0x0A3D), span(0x0A43, 0x0A46), span(0x0A49, 0x0A4A),
    span(0x0A4E, 0x0A50), span(0x0A52, 0x0A58), span(0x0A5D, 0x0A5D), span(0x0A5F, 0x0A65),
    span(0x0A77, 0x0A80), span(0x0A84, 0x0A84), span(0x0A8E, 0x0A8E), span(0x0A92, 0x0A92),
    span(0x0AA9, 0x0AA9), span(0x0AB1, 0x0AB1), span(0x0AB4, 0x0AB4), span(0x0ABA, 0x0ABB),
    span(0x0AC6, 0x0AC6), span(0x0ACA, 0x0ACA), span(0x0ACE, 0x0ACF), span(0x0AD1, 0x0ADF),
    span(0x0AE4, 0x0AE5), span(0x0AF2, 0x0AF8), span(0x0B00, 0x0B00), span(0x0B04, 0x0B04),
    span(0x0B0D, 0x0B0E), span(0x0B11, 0x0B12), span(0x0B29, 0x0B29), span(0x0B31, 0x0B31),
    span(0x0B34, 0x0B34), span(0x0B3A, 0x0B3B), span(0x0B45, 0x0B46), span(0x0B49, 0x0B4A),
    span(0x0B4E, 0x0B54), span(0x0B58, 0x0B5B), span(0x0B5E, 0x0B5E), span(0x0B64, 0x0B65),
    span(0x0B78, 0x0B81), span(0x0B84, 0x0B84), span(0x0B8B, 0x0B8D), span(0x0B91, 0x0B91),
    span(0x0B96, 0x0B98), span(0x0B9B, 0x0B9B), span(0x0B9D, 0x0B9D), span(0x0BA0, 0x0BA2),
    span(0x0BA5, 0x0BA7), span(0x0BAB, 0x0BAD), span(0x0BBA, 0x0BBD), span(0x0BC3, 0x0BC5),
    span(0x0BC9, 0x0BC9), span(0x0BCE, 0x0BCF), span(0x0BD1, 0x0BD6), span(0x0BD8, 0x0BE5),
    span(0x0BFB, 0x0BFF), span(0x0C0D, 0x0C0D), span(0x0C11, 0x0C11), span(0x0C29, 0x0C29),
    span(0x0C3A, 0x0C3B), span(0x0C45, 0x0C45), span(0x0C49, 0x0C49), span(0x0C4E, 0x0C54),
    span(0x0C57, 0x0C57), span(0x0C5B, 0x0C5C), span(0x0C5E, 0x0C5F), span(0x0C64, 0x0C65),
    span(0x0C70, 0x0C76), span(0x0C8D, 0x0C8D), span(0x0C91, 0x0C91), span(0x0CA9, 0x0CA9),
    span(0x0CB4, 0x0CB4), span(0x0CBA, 0x0CBB), span(0x0CC5, 0x0CC5), span(0x0CC9, 0x0CC9),
    span(0x0CCE, 0x0CD4), span(0x0CD7, 0x0CDC), span(0x0CDF, 0x0CDF), span(0x0CE4, 0x0CE5),
    span(0x0CF0, 0x0CF0), span(0x0CF3, 0x0CFF), span(0x0D0D, 0x0D0D), span(0x0D11, 0x0D11),
    span(0x0D45, 0x0D45), span(0x0D49, 0x0D49), span(0x0D50, 0x0D53), span(0x0D64, 0x0D65),
    span(0x0D80, 0x0D80), span(0x0D84, 0x0D84), span(0x0D97, 0x0D99), span(0x0DB2, 0x0DB2),
    span(0x0DBC, 0x0DBC), span(0x0DBE, 0x0DBF), span(0x0DC7, 0x0DC9), span(0x0DCB, 0x0DCE),
    span(0x0DD5, 0x0DD5), span(0x0DD7, 0x0DD7), span(0x0DE0, 0x0DE5), span(0x0DF0, 0x0DF1),
    span(0x0DF5, 0x0E00), span(0x0E3B, 0x0E3E), span(0x0E5C, 0x0E80), span(0x0E83, 0x0E83),
    span(0x0E85, 0x0E85), span(0x0E8B, 0x0E8B), span(0x0EA4, 0x0EA4), span(0x0EA6, 0x0EA6),
    span(0x0EBE, 0x0EBF), span(0x0EC5, 0x0EC5), span(0x0EC7, 0x0EC7), span(0x0ECE, 0x0ECF),
    span(0x0EDA, 0x0EDB), span(0x0EE0, 0x0EFF), span(0x0F48, 0x0F48), span(0x0F6D, 0x0F70),
    span(0x0F98, 0x0F98), span(0x0FBD, 0x0FBD), span(0x0FCD, 0x0FCD), span(0x0FDB, 0x0FFF),
    span(0x10C6, 0x10C6), span(0x10C8, 0x10CC), span(0x10CE, 0x10CF), span(0x1249, 0x1249),
    span(0x124E, 0x124F), span(0x1257, 0x1257), span(0x1259, 0x1259), span(0x125E, 0x125F),
    span(0x1289, 0x1289), span(0x128E, 0x128F), span(0x12B1, 0x12B1), span(0x12B6, 0x12B7),
    span(0x12BF, 0x12BF), span(0x12C1, 0x12C1), span(0x12C6, 0x12C7), span(0x12D7, 0x12D7),
    span(0x1311, 0x1311), span(0x1316, 0x1317), span(0x135B, 0x135C), span(0x137D, 0x137F),
    span(0x139A, 0x139F), span(0x13F6, 0x13F7), span(0x13FE, 0x13FF), span(0x169D, 0x169F),
    span(0x16F9, 0x16FF), span(0x1716, 0x171E), span(0x1737, 0x173F), span(0x1754, 0x175F),
    span(0x176D, 0x176D), span(0x1771, 0x1771), span(0x1774, 0x177F), span(0x17DE, 0x17DF),
    span(0x17EA, 0x17EF), span(0x17FA, 0x17FF), span(0x181A, 0x181F), span(0x1879, 0x187F),
    span(0x18AB, 0x18AF), span(0x18F6, 0x18FF), span(0x191F, 0x191F), span(0x192C, 0x192F),
    span(0x193C, 0x193F), span(0x1941, 0x1943), span(0x196E, 0x196F), span(0x1975, 0x197F),
    span(0x19AC, 0x19AF), span(0x19CA, 0x19CF), span(0x19DB, 0x19DD), span(0x1A1C, 0x1A1D),
    span(0x1A5F, 0x1A5F), span(0x1A7D, 0x1A7E), span(0x1A8A, 0x1A8F), span(0x1A9A, 0x1A9F),
    span(0x1AAE, 0x1AAF), span(0x1ACF, 0x1AFF), span(0x1B4D, 0x1B4F), span(0x1B7F, 0x1B7F),
    span(0x1BF4, 0x1BFB), span(0x1C38, 0x1C3A), span(0x1C4A, 0x1C4C), span(0x1C89, 0x1C8F),
    span(0x1CBB, 0x1CBC), span(0x1CC8, 0x1CCF), span(0x1CFB, 0x1CFF), span(0x1F16, 0x1F17),
    span(0x1F1E, 0x1F1F), span(0x1F46, 0x1F47), span(0x1F4E, 0x1F4F), span(0x1F58, 0x1F58),
    span(0x1F5A, 0x1F5A), span(0x1F5C, 0x1F5C), span(0x1F5E, 0x1F5E), span(0x1F7E, 0x1F7F),
    span(0x1FB5, 0x1FB5), span(0x1FC5, 0x1FC5), span(0x1FD4, 0x1FD5), span(0x1FDC, 0x1FDC),
    span(0x1FF0, 0x1FF1), span(0x1FF5, 0x1FF5), span(0x1FFF, 0x1FFF), span(0x2072, 0x2073),
    span(0x208F, 0x208F), span(0x209D, 0x209F), span(0x20C1, 0x20CF), span(0x20F1, 0x20FF),
    span(0x218C, 0x218F), span(0x2427, 0x243F), span(0x244B, 0x245F), span(0x2B74, 0x2B75),
    span(0x2B96, 0x2B96), span(0x2CF4, 0x2CF8), span(0x2D26, 0x2D26), span(0x2D28, 0x2D2C),
    span(0x2D2E, 0x2D2F), span(0x2D68, 0x2D6E), span(0x2D71, 0x2D7E), span(0x2D97, 0x2D9F),
    span(0x2DA7, 0x2DA7), span(0x2DAF, 0x2DAF), span(0x2DB7, 0x2DB7), span(0x2DBF, 0x2DBF),
    span(0x2DC7, 0x2DC7), span(0x2DCF, 0x2DCF), span(0x2DD7, 0x2DD7), span(0x2DDF, 0x2DDF),
    span(0x2E5E, 0x2E7F), span(0x2E9A, 0x2E9A), span(0x2EF4, 0x2EFF), span(0x2FD6, 0x2FEF),
    span(0x2FFC, 0x2FFF), span(0x3040, 0x3040), span(0x3097, 0x3098), span(0x3100, 0x3104),
    span(0x3130, 0x3130), span(0x318F, 0x318F), span(0x31E4, 0x31EF), span(0x321F, 0x321F),
    span(0xA48D, 0xA48F), span(0xA4C7, 0xA4CF), span(0xA62C, 0xA63F), span(0xA6F8, 0xA6FF),
    span(0xA7CB, 0xA7CF), span(0xA7D2, 0xA7D2), span(0xA7D4, 0xA7D4), span(0xA7DA, 0xA7F1),
    span(0xA82D, 0xA82F), span(0xA83A, 0xA83F), span(0xA878, 0xA87F), span(0xA8C6, 0xA8CD),
    span(0xA8DA, 0xA8DF), span(0xA954, 0xA95E), span(0xA97D, 0xA97F), span(0xA9CE, 0xA9CE),
    span(0xA9DA, 0xA9DD), span(0xA9FF, 0xA9FF), span(0xAA37, 0xAA3F), span(0xAA4E, 0xAA4F),
    span(0xAA5A, 0xAA5B), span(0xAAC3, 0xAADA), span(0xAAF7, 0xAB00), span(0xAB07, 0xAB08),
    span(0xAB0F, 0xAB10), span(0xAB17, 0xAB1F), span(0xAB27, 0xAB27), span(0xAB2F, 0xAB2F),
    span(0xAB6C, 0xAB6F), span(0xABEE, 0xABEF), span(0xABFA, 0xABFF), span(0xD7A4, 0xD7AF),
    span(0xD7C7, 0xD7CA), span(0xD7FC, 0xD7FF), span(0xFA6E, 0xFA6F), span(0xFADA, 0xFAFF),
    span(0xFB07, 0xFB12), span(0xFB18, 0xFB1C), span(0xFB37, 0xFB37), span(0xFB3D, 0xFB3D),
    span(0xFB3F, 0xFB3F), span(0xFB42, 0xFB42), span(0xFB45, 0xFB45), span(0xFBC3, 0xFBD2),
    span(0xFD90, 0xFD91), span(0xFDC8, 0xFDCE), span(0xFDD0, 0xFDEF), span(0xFE1A, 0xFE1F),
    span(0xFE53, 0xFE53), span(0xFE67, 0xFE67), span(0xFE6C, 0xFE6F), span(0xFE75, 0xFE75),
    span(0xFEFD, 0xFEFE), span(0xFF00, 0xFF00), span(0xFFBF, 0xFFC1), span(0xFFC8, 0xFFC9),
    span(0xFFD0, 0xFFD1), span(0xFFD8, 0xFFD9), span(0xFFDD, 0xFFDF), span(0xFFE7, 0xFFE7),
    span(0xFFEF, 0xFFEF), span(0xFFFE, 0xFFFF), span(0x1000C, 0x1000C), span(0x10027, 0x10027),
    span(0x1003B, 0x1003B), span(0x1003E, 0x1003E), span(0x1004E, 0x1004F), span(0x1005E, 0x1007F),
    span(0x100FB, 0x100FF), span(0x10103, 0x10106), span(0x10134, 0x10136), span(0x1018F, 0x1018F),
    span(0x1019D, 0x1019F), span(0x101A1, 0x101CF), span(0x101FE, 0x1027F), span(0x1029D, 0x1029F),
    span(0x102D1, 0x102DF), span(0x102FC, 0x102FF), span(0x10324, 0x1032C), span(0x1034B, 0x1034F),
    span(0x1037B, 0x1037F), span(0x1039E, 0x1039E), span(0x103C4, 0x103C7), span(0x103D6, 0x103FF),
    span(0x1049E, 0x1049F), span(0x104AA, 0x104AF), span(0x104D4, 0x104D7), span(0x104FC, 0x104FF),
    span(0x10528, 0x1052F), span(0x10564, 0x1056E), span(0x1057B, 0x1057B), span(0x1058B, 0x1058B),
    span(0x10593, 0x10593), span(0x10596, 0x10596), span(0x105A2, 0x105A2), span(0x105B2, 0x105B2),
    span(0x105BA, 0x105BA), span(0x105BD, 0x105FF), span(0x10737, 0x1073F), span(0x10756, 0x1075F),
    span(0x10768, 0x1077F), span(0x10786, 0x10786), span(0x107B1, 0x107B1), span(0x107BB, 0x107FF),
    span(0x10806, 0x10807), span(0x10809, 0x10809), span(0x10836, 0x10836), span(0x10839, 0x1083B),
    span(0x1083D, 0x1083E), span(0x10856, 0x10856), span(0x1089F, 0x108A6), span(0x108B0, 0x108DF),
    span(0x108F3, 0x108F3), span(0x108F6, 0x108FA), span(0x1091C, 0x1091E), span(0x1093A, 0x1093E),
    span(0x10940, 0x1097F), span(0x109B8, 0x109BB), span(0x109D0, 0x109D1), span(0x10A04, 0x10A04),
    span(0x10A07, 0x10A0B), span(0x10A14, 0x10A14), span(0x10A18, 0x10A18), span(0x10A36, 0x10A37),
    span(0x10A3B, 0x10A3E), span(0x10A49, 0x10A4F), span(0x10A59, 0x10A5F), span(0x10AA0, 0x10ABF),
    span(0x10AE7, 0x10AEA), span(0x10AF7, 0x10AFF), span(0x10B36, 0x10B38), span(0x10B56, 0x10B57),
    span(0x10B73, 0x10B77), span(0x10B92, 0x10B98), span(0x10B9D, 0x10BA8), span(0x10BB0, 0x10BFF),
    span(0x10C49, 0x10C7F), span(0x10CB3, 0x10CBF), span(0x10CF3, 0x10CF9), span(0x10D28, 0x10D2F),
    span(0x10D3A, 0x10E5F), span(0x10E7F, 0x10E7F), span(0x10EAA, 0x10EAA), span(0x10EAE, 0x10EAF),
    span(0x10EB2, 0x10EFF), span(0x10F28, 0x10F2F), span(0x10F5A, 0x10F6F), span(0x10F8A, 0x10FAF),
    span(0x10FCC, 0x10FDF), span(0x10FF7, 0x10FFF), span(0x1104E, 0x11051), span(0x11076, 0x1107E),
    span(0x110C3, 0x110CC), span(0x110CE, 0x110CF), span(0x110E9, 0x110EF), span(0x110FA, 0x110FF),
    span(0x11135, 0x11135), span(0x11148, 0x1114F), span(0x11177, 0x1117F), span(0x111E0, 0x111E0),
    span(0x111F5, 0x111FF), span(0x11212, 0x11212), span(0x1123F, 0x1127F), span(0x11287, 0x11287),
    span(0x11289, 0x11289), span(0x1128E, 0x1128E), span(0x1129E, 0x1129E), span(0x112AA, 0x112AF),
    span(0x112EB, 0x112EF), span(0x112FA, 0x112FF), span(0x11304, 0x11304), span(0x1130D, 0x1130E),
    span(0x11311, 0x11312), span(0x11329, 0x11329), span(0x11331, 0x11331), span(0x11334, 0x11334),
    span(0x1133A, 0x1133A), span(0x11345, 0x11346), span(0x11349, 0x1134A), span(0x1134E, 0x1134F),
    span(0x11351, 0x11356), span(0x11358, 0x1135C), span(0x11364, 0x11365), span(0x1136D, 0x1136F),
    span(0x11375, 0x113FF), span(0x1145C, 0x1145C), span(0x11462, 0x1147F), span(0x114C8, 0x114CF),
    span(0x114DA, 0x1157F), span(0x115B6, 0x115B7), span(0x115DE, 0x115FF), span(0x11645, 0x1164F),
    span(0x1165A, 0x1165F), span(0x1166D, 0x1167F), span(0x116BA, 0x116BF), span(0x116CA, 0x116FF),
    span(0x1171B, 0x1171C), span(0x1172C, 0x1172F), span(0x11747, 0x117FF), span(0x1183C, 0x1189F),
    span(0x118F3, 0x118FE), span(0x11907, 0x11908), span(0x1190A, 0x1190B), span(0x11914, 0x11914),
    span(0x11917, 0x11917), span(0x11936, 0x11936), span(0x11939, 0x1193A), span(0x11947, 0x1194F),
    span(0x1195A, 0x1199F), span(0x119A8, 0x119A9), span(0x119D8, 0x119D9), span(0x119E5, 0x119FF),
    span(0x11A48, 0x11A4F), span(0x11AA3, 0x11AAF), span(0x11AF9, 0x11BFF), span(0x11C09, 0x11C09),
    span(0x11C37, 0x11C37), span(0x11C46, 0x11C4F), span(0x11C6D, 0x11C6F), span(0x11C90, 0x11C91),
    span(0x11CA8, 0x11CA8), span(0x11CB7, 0x11CFF), span(0x11D07, 0x11D07), span(0x11D0A, 0x11D0A),
    span(0x11D37, 0x11D39), span(0x11D3B, 0x11D3B), span(0x11D3E, 0x11D3E), span(0x11D48, 0x11D4F),
    span(0x11D5A, 0x11D5F), span(0x11D66, 0x11D66), span(0x11D69, 0x11D69), span(0x11D8F, 0x11D8F),
    span(0x11D92, 0x11D92), span(0x11D99, 0x11D9F), span(0x11DAA, 0x11EDF), span(0x11EF9, 0x11FAF),
    span(0x11FB1, 0x11FBF), span(0x11FF2, 0x11FFE), span(0x1239A, 0x123FF), span(0x1246F, 0x1246F),
    span(0x12475, 0x1247F), span(0x12FF3, 0x12FFF), span(0x1342F, 0x1342F), span(0x16A39, 0x16A3F),
    span(0x16A5F, 0x16A5F), span(0x16A6A, 0x16A6D), span(0x16ABF, 0x16ABF), span(0x16ACA, 0x16ACF),
    span(0x16AEE, 0x16AEF), span(0x16AF6, 0x16AFF), span(0x16B46, 0x16B4F), span(0x16B5A, 0x16B5A),
    span(0x16B62, 0x16B62), span(0x16B78, 0x16B7C), span(0x16B90, 0x16E3F), span(0x16E9B, 0x16EFF),
    span(0x16F4B, 0x16F4E), span(0x16F88, 0x16F8E), span(0x16FA0, 0x16FDF), span(0x16FE5, 0x16FEF),
    span(0x16FF2, 0x16FFF), span(0x187F8, 0x187FF), span(0x18CD6, 0x18CFF), span(0x1AFF4, 0x1AFF4),
    span(0x1AFFC, 0x1AFFC), span(0x1AFFF, 0x1AFFF), span(0x1B123, 0x1B14F), span(0x1B153, 0x1B163),
    span(0x1B168, 0x1B16F), span(0x1BC6B, 0x1BC6F), span(0x1BC7D, 0x1BC7F), span(0x1BC89, 0x1BC8F),
    span(0x1BC9A, 0x1BC9B), span(0x1CF2E, 0x1CF2F), span(0x1CF47, 0x1CF4F), span(0x1CFC4, 0x1CFFF),
    span(0x1D0F6, 0x1D0FF), span(0x1D127, 0x1D128), span(0x1D1EB, 0x1D1FF), span(0x1D246, 0x1D2DF),
    span(0x1D2F4, 0x1D2FF), span(0x1D357, 0x1D35F), span(0x1D379, 0x1D3FF), span(0x1D455, 0x1D455),
    span(0x1D49D, 0x1D49D), span(0x1D4A0, 0x1D4A1), span(0x1D4A3, 0x1D4A4), span(0x1D4A7, 0x1D4A8),
    span(0x1D4AD, 0x1D4AD), span(0x1D4BA, 0x1D4BA), span(0x1D4BC, 0x1D4BC), span(0x1D4C4, 0x1D4C4),
    span(0x1D506, 0x1D506), span(0x1D50B, 0x1D50C), span(0x1D515, 0x1D515), span(0x1D51D, 0x1D51D),
    span(0x1D53A, 0x1D53A), span(0x1D53F, 0x1D53F), span(0x1D545, 0x1D545), span(0x1D547, 0x1D549),
    span(0x1D551, 0x1D551), span(0x1D6A6, 0x1D6A7), span(0x1D7CC, 0x1D7CD), span(0x1DA8C, 0x1DA9A),
    span(0x1DAA0, 0x1DAA0), span(0x1DAB0, 0x1DEFF), span(0x1DF1F, 0x1DFFF), span(0x1E007, 0x1E007),
    span(0x1E019, 0x1E01A), span(0x1E022, 0x1E022), span(0x1E025, 0x1E025), span(0x1E02B, 0x1E0FF),
    span(0x1E12D, 0x1E12F), span(0x1E13E, 0x1E13F), span(0x1E14A, 0x1E14D), span(0x1E150, 0x1E28F),
    span(0x1E2AF, 0x1E2BF), span(0x1E2FA, 0x1E2FE), span(0x1E300, 0x1E7DF), span(0x1E7E7, 0x1E7E7),
    span(0x1E7EC, 0x1E7EC), span(0x1E7EF, 0x1E7EF), span(0x1E7FF, 0x1E7FF), span(0x1E8C5, 0x1E8C6),
    span(0x1E8D7, 0x1E8FF), span(0x1E94C, 0x1E94F), span(0x1E95A, 0x1E95D), span(0x1E960, 0x1EC70),
    span(0x1ECB5, 0x1ED00), span(0x1ED3E, 0x1EDFF), span(0x1EE04, 0x1EE04), span(0x1EE20, 0x1EE20),
    span(0x1EE23, 0x1EE23), span(0x1EE25, 0x1EE26), span(0x1EE28, 0x1EE28), span(0x1EE33, 0x1EE33),
    span(0x1EE38, 0x1EE38), span(0x1EE3A, 0x1EE3A), span(0x1EE3C, 0x1EE41), span(0x1EE43, 0x1EE46),
    span(0x1EE48, 0x1EE48), span(0x1EE4A, 0x1EE4A), span(0x1EE4C, 0x1EE4C), span(0x1EE50, 0x1EE50),
    span(0x1EE53, 0x1EE53), span(0x1EE55, 0x1EE56), span(0x1EE58, 0x1EE58), span(0x1EE5A, 0x1EE5A),
    span(0x1EE5C, 0x1EE5C), span(0x1EE5E, 0x1EE5E), span(0x1EE60, 0x1EE60), span(0x1EE63, 0x1EE63),
    span(0x1EE65, 0x1EE66), span(0x1EE6B, 0x1EE6B), span(0x1EE73, 0x1EE73), span(0x1EE78, 0x1EE78),
    span(0x1EE7D, 0x1EE7D), span(0x1EE7F, 0x1EE7F), span(0x1EE8A, 0x1EE8A), span(0x1EE9C, 0x1EEA0),
    span(0x1EEA4, 0x1EEA4), span(0x1EEAA, 0x1EEAA), span(0x1EEBC, 0x1EEEF), span(0x1EEF2, 0x1EFFF),
    span(0x1F02C, 0x1F02F), span(0x1F094, 0x1F09F), span(0x1F0AF, 0x1F0B0), span(0x1F0C0, 0x1F0C0),
    span(0x1F0D0, 0x1F0D0), span(0x1F0F6, 0x1F0FF), span(0x1F1AE, 0x1F1E5), span(0x1F203, 0x1F20F),
    span(0x1F23C, 0x1F23F), span(0x1F249, 0x1F24F), span(0x1F252, 0x1F25F), span(0x1F266, 0x1F2FF),
    span(0x1F6D8, 0x1F6DC), span(0x1F6ED, 0x1F6EF), span(0x1F6FD, 0x1F6FF), span(0x1F774, 0x1F77F),
    span(0x1F7D9, 0x1F7DF), span(0x1F7EC, 0x1F7EF), span(0x1F7F1, 0x1F7FF), span(0x1F80C, 0x1F80F),
    span(0x1F848, 0x1F84F), span(0x1F85A, 0x1F85F), span(0x1F888, 0x1F88F), span(0x1F8AE, 0x1F8AF),
    span(0x1F8B2, 0x1F8FF), span(0x1FA54, 0x1FA5F), span(0x1FA6E, 0x1FA6F), span(0x1FA75, 0x1FA77),
    span(0x1FA7D, 0x1FA7F), span(0x1FA87, 0x1FA8F), span(0x1FAAD, 0x1FAAF), span(0x1FABB, 0x1FABF),
    span(0x1FAC6, 0x1FACF), span(0x1FADA, 0x1FADF), span(0x1FAE8, 0x1FAEF), span(0x1FAF7, 0x1FAFF),
    span(0x1FB93, 0x1FB93), span(0x1FBCB, 0x1FBEF), span(0x1FBFA, 0x1FFFF), span(0x2A6E0, 0x2A6FF),
    span(0x2B739, 0x2B73F), span(0x2B81E, 0x2B81F), span(0x2CEA2, 0x2CEAF), span(0x2FA1E, 0x2FFFF),
    span(0xFFFFE, 0xFFFFF), span(0x10FFFE, 0x10FFFF),
];

/// The other ranges of [`UNASSIGNED`].
#[rustfmt::skip]
static UNASSIGNED_LONG: [(u32, u32); 9] = [
    (0x12544, 0x12F8F), (0x13440, 0x143FF), (0x14647, 0x167FF), (0x18D09, 0x1AFEF),
    (0x1B2FC, 0x1BBFF), (0x1BCA4, 0x1CEFF), (0x2EBE1, 0x2F7FF), (0x3134B, 0xDFFFF),
    (0xE1000, 0xEFFFF),
];

/// Canonical combining classes other than 0, as runs of at most 8 code
/// points sharing a class.
#[rustfmt::skip]
static CCC: [u32; 400] = [
    run(0x0300, 0x0307, 230), run(0x0308, 0x030F, 230), run(0x0310, 0x0314, 230), run(0x0315, 0x0315, 232),
    run(0x0316, 0x0319, 220), run(0x031A, 0x031A, 232), run(0x031B, 0x031B, 216), run(0x031C, 0x0320, 220),
    run(0x0321, 0x0322, 202), run(0x0323, 0x0326, 220), run(0x0327, 0x0328, 202), run(0x0329, 0x0330, 220),
    run(0x0331, 0x0333, 220), run(0x0334, 0x0338, 1), run(0x0339, 0x033C, 220), run(0x033D, 0x0344, 230),
    run(0x0345, 0x0345, 240), run(0x0346, 0x0346, 230), run(0x0347, 0x0349, 220), run(0x034A, 0x034C, 230),
    run(0x034D, 0x034E, 220), run(0x0350, 0x0352, 230), run(0x0353, 0x0356, 220), run(0x0357, 0x0357, 230),
    run(0x0358, 0x0358, 232), run(0x0359, 0x035A, 220), run(0x035B, 0x035B, 230), run(0x035C, 0x035C, 233),
    run(0x035D, 0x035E, 234), run(0x035F, 0x035F, 233), run(0x0360, 0x0361, 234), run(0x0362, 0x0362, 233),
    run(0x0363, 0x036A, 230), run(0x036B, 0x036F, 230), run(0x0483, 0x0487, 230), run(0x0591, 0x0591, 220),
    run(0x0592, 0x0595, 230), run(0x0596, 0x0596, 220), run(0x0597, 0x0599, 230), run(0x059A, 0x059A, 222),
    run(0x059B, 0x059B, 220), run(0x059C, 0x05A1, 230), run(0x05A2, 0x05A7, 220), run(0x05A8, 0x05A9, 230),
    run(0x05AA, 0x05AA, 220), run(0x05AB, 0x05AC, 230), run(0x05AD, 0x05AD, 222), run(0x05AE, 0x05AE, 228),
    run(0x05AF, 0x05AF, 230), run(0x05B0, 0x05B0, 10), run(0x05B1, 0x05B1, 11), run(0x05B2, 0x05B2, 12),
    run(0x05B3, 0x05B3, 13), run(0x05B4, 0x05B4, 14), run(0x05B5, 0x05B5, 15), run(0x05B6, 0x05B6, 16),
    run(0x05B7, 0x05B7, 17), run(0x05B8, 0x05B8, 18), run(0x05B9, 0x05BA, 19), run(0x05BB, 0x05BB, 20),
    run(0x05BC, 0x05BC, 21), run(0x05BD, 0x05BD, 22), run(0x05BF, 0x05BF, 23), run(0x05C1, 0x05C1, 24),
    run(0x05C2, 0x05C2, 25), run(0x05C4, 0x05C4, 230), run(0x05C5, 0x05C5, 220), run(0x05C7, 0x05C7, 18),
    run(0x0610, 0x0617, 230), run(0x0618, 0x0618, 30), run(0x0619, 0x0619, 31), run(0x061A, 0x061A, 32),
    run(0x064B, 0x064B, 27), run(0x064C, 0x064C, 28), run(0x064D, 0x064D, 29), run(0x064E, 0x064E, 30),
    run(0x064F, 0x064F, 31), run(0x0650, 0x0650, 32), run(0x0651, 0x0651, 33), run(0x0652, 0x0652, 34),
    run(0x0653, 0x0654, 230), run(0x0655, 0x0656, 220), run(0x0657, 0x065B, 230), run(0x065C, 0x065C, 220),
    run(0x065D, 0x065E, 230), run(0x065F, 0x065F, 220), run(0x0670, 0x0670, 35), run(0x06D6, 0x06DC, 230),
    run(0x06DF, 0x06E2, 230), run(0x06E3, 0x06E3, 220), run(0x06E4, 0x06E4, 230), run(0x06E7, 0x06E8, 230),
    run(0x06EA, 0x06EA, 220), run(0x06EB, 0x06EC, 230), run(0x06ED, 0x06ED, 220), run(0x0711, 0x0711, 36),
    run(0x0730, 0x0730, 230), run(0x0731, 0x0731, 220), run(0x0732, 0x0733, 230), run(0x0734, 0x0734, 220),
    run(0x0735, 0x0736, 230), run(0x0737, 0x0739, 220), run(0x073A, 0x073A, 230), run(0x073B, 0x073C, 220),
    run(0x073D, 0x073D, 230), run(0x073E, 0x073E, 220), run(0x073F, 0x0741, 230), run(0x0742, 0x0742, 220),
    run(0x0743, 0x0743, 230), run(0x0744, 0x0744, 220), run(0x0745, 0x0745, 230), run(0x0746, 0x0746, 220),
    run(0x0747, 0x0747, 230), run(0x0748, 0x0748, 220), run(0x0749, 0x074A, 230), run(0x07EB, 0x07F1, 230),
    run(0x07F2, 0x07F2, 220), run(0x07F3, 0x07F3, 230), run(0x07FD, 0x07FD, 220), run(0x0816, 0x0819, 230),
    run(0x081B, 0x0822, 230), run(0x0823, 0x0823, 230), run(0x0825, 0x0827, 230), run(0x0829, 0x082D, 230),
    run(0x0859, 0x085B, 220), run(0x0898, 0x0898, 230), run(0x0899, 0x089B, 220), run(0x089C, 0x089F, 230),
    run(0x08CA, 0x08CE, 230), run(0x08CF, 0x08D3, 220), run(0x08D4, 0x08DB, 230), run(0x08DC, 0x08E1, 230),
    run(0x08E3, 0x08E3, 220), run(0x08E4, 0x08E5, 230), run(0x08E6, 0x08E6, 220), run(0x08E7, 0x08E8, 230),
    run(0x08E9, 0x08E9, 220), run(0x08EA, 0x08EC, 230), run(0x08ED, 0x08EF, 220), run(0x08F0, 0x08F0, 27),
    run(0x08F1, 0x08F1, 28), run(0x08F2, 0x08F2, 29), run(0x08F3, 0x08F5, 230), run(0x08F6, 0x08F6, 220),
    run(0x08F7, 0x08F8, 230), run(0x08F9, 0x08FA, 220), run(0x08FB, 0x08FF, 230), run(0x093C, 0x093C, 7),
    run(0x094D, 0x094D, 9), run(0x0951, 0x0951, 230), run(0x0952, 0x0952, 220), run(0x0953, 0x0954, 230),
    run(0x09BC, 0x09BC, 7), run(0x09CD, 0x09CD, 9), run(0x09FE, 0x09FE, 230), run(0x0A3C, 0x0A3C, 7),
    run(0x0A4D, 0x0A4D, 9), run(0x0ABC, 0x0ABC, 7), run(0x0ACD, 0x0ACD, 9), run(0x0B3C, 0x0B3C, 7),
    run(0x0B4D, 0x0B4D, 9), run(0x0BCD, 0x0BCD, 9), run(0x0C3C, 0x0C3C, 7), run(0x0C4D, 0x0C4D, 9),
    run(0x0C55, 0x0C55, 84), run(0x0C56, 0x0C56, 91), run(0x0CBC, 0x0CBC, 7), run(0x0CCD, 0x0CCD, 9),
    run(0x0D3B, 0x0D3C, 9), run(0x0D4D, 0x0D4D, 9), run(0x0DCA, 0x0DCA, 9), run(0x0E38, 0x0E39, 103),
    run(0x0E3A, 0x0E3A, 9), run(0x0E48, 0x0E4B, 107), run(0x0EB8, 0x0EB9, 118), run(0x0EBA, 0x0EBA, 9),
    run(0x0EC8, 0x0ECB, 122), run(0x0F18, 0x0F19, 220), run(0x0F35, 0x0F35, 220), run(0x0F37, 0x0F37, 220),
    run(0x0F39, 0x0F39, 216), run(0x0F71, 0x0F71, 129), run(0x0F72, 0x0F72, 130), run(0x0F74, 0x0F74, 132),
    run(0x0F7A, 0x0F7D, 130), run(0x0F80, 0x0F80, 130), run(0x0F82, 0x0F83, 230), run(0x0F84, 0x0F84, 9),
    run(0x0F86, 0x0F87, 230), run(0x0FC6, 0x0FC6, 220), run(0x1037, 0x1037, 7), run(0x1039, 0x103A, 9),
    run(0x108D, 0x108D, 220), run(0x135D, 0x135F, 230), run(0x1714, 0x1715, 9), run(0x1734, 0x1734, 9),
    run(0x17D2, 0x17D2, 9), run(0x17DD, 0x17DD, 230), run(0x18A9, 0x18A9, 228), run(0x1939, 0x1939, 222),
    run(0x193A, 0x193A, 230), run(0x193B, 0x193B, 220), run(0x1A17, 0x1A17, 230), run(0x1A18, 0x1A18, 220),
    run(0x1A60, 0x1A60, 9), run(0x1A75, 0x1A7C, 230), run(0x1A7F, 0x1A7F, 220), run(0x1AB0, 0x1AB4, 230),
    run(0x1AB5, 0x1ABA, 220), run(0x1ABB, 0x1ABC, 230), run(0x1ABD, 0x1ABD, 220), run(0x1ABF, 0x1AC0, 220),
    run(0x1AC1, 0x1AC2, 230), run(0x1AC3, 0x1AC4, 220), run(0x1AC5, 0x1AC9, 230), run(0x1ACA, 0x1ACA, 220),
    run(0x1ACB, 0x1ACE, 230), run(0x1B34, 0x1B34, 7), run(0x1B44, 0x1B44, 9), run(0x1B6B, 0x1B6B, 230),
    run(0x1B6C, 0x1B6C, 220), run(0x1B6D, 0x1B73, 230), run(0x1BAA, 0x1BAB, 9), run(0x1BE6, 0x1BE6, 7),
    run(0x1BF2, 0x1BF3, 9), run(0x1C37, 0x1C37, 7), run(0x1CD0, 0x1CD2, 230), run(0x1CD4, 0x1CD4, 1),
    run(0x1CD5, 0x1CD9, 220), run(0x1CDA, 0x1CDB, 230), run(0x1CDC, 0x1CDF, 220), run(0x1CE0, 0x1CE0, 230),
    run(0x1CE2, 0x1CE8, 1), run(0x1CED, 0x1CED, 220), run(0x1CF4, 0x1CF4, 230), run(0x1CF8, 0x1CF9, 230),
    run(0x1DC0, 0x1DC1, 230), run(0x1DC2, 0x1DC2, 220), run(0x1DC3, 0x1DC9, 230), run(0x1DCA, 0x1DCA, 220),
    run(0x1DCB, 0x1DCC, 230), run(0x1DCD, 0x1DCD, 234), run(0x1DCE, 0x1DCE, 214), run(0x1DCF, 0x1DCF, 220),
    run(0x1DD0, 0x1DD0, 202), run(0x1DD1, 0x1DD8, 230), run(0x1DD9, 0x1DE0, 230), run(0x1DE1, 0x1DE8, 230),
    run(0x1DE9, 0x1DF0, 230), run(0x1DF1, 0x1DF5, 230), run(0x1DF6, 0x1DF6, 232), run(0x1DF7, 0x1DF8, 228),
    run(0x1DF9, 0x1DF9, 220), run(0x1DFA, 0x1DFA, 218), run(0x1DFB, 0x1DFB, 230), run(0x1DFC, 0x1DFC, 233),
    run(0x1DFD, 0x1DFD, 220), run(0x1DFE, 0x1DFE, 230), run(0x1DFF, 0x1DFF, 220), run(0x20D0, 0x20D1, 230),
    run(0x20D2, 0x20D3, 1), run(0x20D4, 0x20D7, 230), run(0x20D8, 0x20DA, 1), run(0x20DB, 0x20DC, 230),
    run(0x20E1, 0x20E1, 230), run(0x20E5, 0x20E6, 1), run(0x20E7, 0x20E7, 230), run(0x20E8, 0x20E8, 220),
    run(0x20E9, 0x20E9, 230), run(0x20EA, 0x20EB, 1), run(0x20EC, 0x20EF, 220), run(0x20F0, 0x20F0, 230),
    run(0x2CEF, 0x2CF1, 230), run(0x2D7F, 0x2D7F, 9), run(0x2DE0, 0x2DE7, 230), run(0x2DE8, 0x2DEF, 230),
    run(0x2DF0, 0x2DF7, 230), run(0x2DF8, 0x2DFF, 230), run(0x302A, 0x302A, 218), run(0x302B, 0x302B, 228),
    run(0x302C, 0x302C, 232), run(0x302D, 0x302D, 222), run(0x302E, 0x302F, 224), run(0x3099, 0x309A, 8),
    run(0xA66F, 0xA66F, 230), run(0xA674, 0xA67B, 230), run(0xA67C, 0xA67D, 230), run(0xA69E, 0xA69F, 230),
    run(0xA6F0, 0xA6F1, 230), run(0xA806, 0xA806, 9), run(0xA82C, 0xA82C, 9), run(0xA8C4, 0xA8C4, 9),
    run(0xA8E0, 0xA8E7, 230), run(0xA8E8, 0xA8EF, 230), run(0xA8F0, 0xA8F1, 230), run(0xA92B, 0xA92D, 220),
    run(0xA953, 0xA953, 9), run(0xA9B3, 0xA9B3, 7), run(0xA9C0, 0xA9C0, 9), run(0xAAB0, 0xAAB0, 230),
    run(0xAAB2, 0xAAB3, 230), run(0xAAB4, 0xAAB4, 220), run(0xAAB7, 0xAAB8, 230), run(0xAABE, 0xAABF, 230),
    run(0xAAC1, 0xAAC1, 230), run(0xAAF6, 0xAAF6, 9), run(0xABED, 0xABED, 9), run(0xFB1E, 0xFB1E, 26),
    run(0xFE20, 0xFE26, 230), run(0xFE27, 0xFE2D, 220), run(0xFE2E, 0xFE2F, 230), run(0x101FD, 0x101FD, 220),
    run(0x102E0, 0x102E0, 220), run(0x10376, 0x1037A, 230), run(0x10A0D, 0x10A0D, 220), run(0x10A0F, 0x10A0F, 230),
    run(0x10A38, 0x10A38, 230), run(0x10A39, 0x10A39, 1), run(0x10A3A, 0x10A3A, 220), run(0x10A3F, 0x10A3F, 9),
    run(0x10AE5, 0x10AE5, 230), run(0x10AE6, 0x10AE6, 220), run(0x10D24, 0x10D27, 230), run(0x10EAB, 0x10EAC, 230),
    run(0x10F46, 0x10F47, 220), run(0x10F48, 0x10F4A, 230), run(0x10F4B, 0x10F4B, 220), run(0x10F4C, 0x10F4C, 230),
    run(0x10F4D, 0x10F50, 220), run(0x10F82, 0x10F82, 230), run(0x10F83, 0x10F83, 220), run(0x10F84, 0x10F84, 230),
    run(0x10F85, 0x10F85, 220), run(0x11046, 0x11046, 9), run(0x11070, 0x11070, 9), run(0x1107F, 0x1107F, 9),
    run(0x110B9, 0x110B9, 9), run(0x110BA, 0x110BA, 7), run(0x11100, 0x11102, 230), run(0x11133, 0x11134, 9),
    run(0x11173, 0x11173, 7), run(0x111C0, 0x111C0, 9), run(0x111CA, 0x111CA, 7), run(0x11235, 0x11235, 9),
    run(0x11236, 0x11236, 7), run(0x112E9, 0x112E9, 7), run(0x112EA, 0x112EA, 9), run(0x1133B, 0x1133C, 7),
    run(0x1134D, 0x1134D, 9), run(0x11366, 0x1136C, 230), run(0x11370, 0x11374, 230), run(0x11442, 0x11442, 9),
    run(0x11446, 0x11446, 7), run(0x1145E, 0x1145E, 230), run(0x114C2, 0x114C2, 9), run(0x114C3, 0x114C3, 7),
    run(0x115BF, 0x115BF, 9), run(0x115C0, 0x115C0, 7), run(0x1163F, 0x1163F, 9), run(0x116B6, 0x116B6, 9),
    run(0x116B7, 0x116B7, 7), run(0x1172B, 0x1172B, 9), run(0x11839, 0x11839, 9), run(0x1183A, 0x1183A, 7),
    run(0x1193D, 0x1193E, 9), run(0x11943, 0x11943, 7), run(0x119E0, 0x119E0, 9), run(0x11A34, 0x11A34, 9),
    run(0x11A47, 0x11A47, 9), run(0x11A99, 0x11A99, 9), run(0x11C3F, 0x11C3F, 9), run(0x11D42, 0x11D42, 7),
    run(0x11D44, 0x11D45, 9), run(0x11D97, 0x11D97, 9), run(0x16AF0, 0x16AF4, 1), run(0x16B30, 0x16B36, 230),
    run(0x16FF0, 0x16FF1, 6), run(0x1BC9E, 0x1BC9E, 1), run(0x1D165, 0x1D166, 216), run(0x1D167, 0x1D169, 1),
    run(0x1D16D, 0x1D16D, 226), run(0x1D16E, 0x1D172, 216), run(0x1D17B, 0x1D182, 220), run(0x1D185, 0x1D189, 230),
    run(0x1D18A, 0x1D18B, 220), run(0x1D1AA, 0x1D1AD, 230), run(0x1D242, 0x1D244, 230), run(0x1E000, 0x1E006, 230),
    run(0x1E008, 0x1E00F, 230), run(0x1E010, 0x1E017, 230), run(0x1E018, 0x1E018, 230), run(0x1E01B, 0x1E021, 230),
    run(0x1E023, 0x1E024, 230), run(0x1E026, 0x1E02A, 230), run(0x1E130, 0x1E136, 230), run(0x1E2AE, 0x1E2AE, 230),
    run(0x1E2EC, 0x1E2EF, 230), run(0x1E8D0, 0x1E8D6, 220), run(0x1E944, 0x1E949, 230), run(0x1E94A, 0x1E94A, 7),
];

/// The second parts of canonical compositions: with the Hangul V and T
/// jamo, NFC_Quick_Check=Maybe, the characters that may join the one
/// before them.
#[rustfmt::skip]
const SECONDS: [u32; 63] = [
    0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x0306, 0x0307, 0x0308,
    0x0309, 0x030A, 0x030B, 0x030C, 0x030F, 0x0311, 0x0313, 0x0314,
    0x031B, 0x0323, 0x0324, 0x0325, 0x0326, 0x0327, 0x0328, 0x032D,
    0x032E, 0x0330, 0x0331, 0x0338, 0x0342, 0x0345, 0x0653, 0x0654,
    0x0655, 0x093C, 0x09BE, 0x09D7, 0x0B3E, 0x0B56, 0x0B57, 0x0BBE,
    0x0BD7, 0x0C56, 0x0CC2, 0x0CD5, 0x0CD6, 0x0D3E, 0x0D57, 0x0DCA,
    0x0DCF, 0x0DDF, 0x102E, 0x1B35, 0x3099, 0x309A, 0x110BA, 0x11127,
    0x1133E, 0x11357, 0x114B0, 0x114BA, 0x114BD, 0x115AF, 0x11930,
];

/// The primary composites whose second part lies outside U+0300..U+036F
/// (all others, Hangul included, come from parts names may not hold), as
/// runs; the n-th composite's parts are `COMPOSITIONS[n]`.
#[rustfmt::skip]
static COMPOSITES: [u32; 84] = [
    span(0x0622, 0x0626), span(0x06C0, 0x06C0), span(0x06C2, 0x06C2), span(0x06D3, 0x06D3),
    span(0x0929, 0x0929), span(0x0931, 0x0931), span(0x0934, 0x0934), span(0x09CB, 0x09CC),
    span(0x0B48, 0x0B48), span(0x0B4B, 0x0B4C), span(0x0B94, 0x0B94), span(0x0BCA, 0x0BCC),
    span(0x0C48, 0x0C48), span(0x0CC0, 0x0CC0), span(0x0CC7, 0x0CC8), span(0x0CCA, 0x0CCB),
    span(0x0D4A, 0x0D4C), span(0x0DDA, 0x0DDA), span(0x0DDC, 0x0DDE), span(0x1026, 0x1026),
    span(0x1B06, 0x1B06), span(0x1B08, 0x1B08), span(0x1B0A, 0x1B0A), span(0x1B0C, 0x1B0C),
    span(0x1B0E, 0x1B0E), span(0x1B12, 0x1B12), span(0x1B3B, 0x1B3B), span(0x1B3D, 0x1B3D),
    span(0x1B40, 0x1B41), span(0x1B43, 0x1B43), span(0x304C, 0x304C), span(0x304E, 0x304E),
    span(0x3050, 0x3050), span(0x3052, 0x3052), span(0x3054, 0x3054), span(0x3056, 0x3056),
    span(0x3058, 0x3058), span(0x305A, 0x305A), span(0x305C, 0x305C), span(0x305E, 0x305E),
    span(0x3060, 0x3060), span(0x3062, 0x3062), span(0x3065, 0x3065), span(0x3067, 0x3067),
    span(0x3069, 0x3069), span(0x3070, 0x3071), span(0x3073, 0x3074), span(0x3076, 0x3077),
    span(0x3079, 0x307A), span(0x307C, 0x307D), span(0x3094, 0x3094), span(0x309E, 0x309E),
    span(0x30AC, 0x30AC), span(0x30AE, 0x30AE), span(0x30B0, 0x30B0), span(0x30B2, 0x30B2),
    span(0x30B4, 0x30B4), span(0x30B6, 0x30B6), span(0x30B8, 0x30B8), span(0x30BA, 0x30BA),
    span(0x30BC, 0x30BC), span(0x30BE, 0x30BE), span(0x30C0, 0x30C0), span(0x30C2, 0x30C2),
    span(0x30C5, 0x30C5), span(0x30C7, 0x30C7), span(0x30C9, 0x30C9), span(0x30D0, 0x30D1),
    span(0x30D3, 0x30D4), span(0x30D6, 0x30D7), span(0x30D9, 0x30DA), span(0x30DC, 0x30DD),
    span(0x30F4, 0x30F4), span(0x30F7, 0x30FA), span(0x30FE, 0x30FE), span(0x1109A, 0x1109A),
    span(0x1109C, 0x1109C), span(0x110AB, 0x110AB), span(0x1112E, 0x1112F), span(0x1134B, 0x1134C),
    span(0x114BB, 0x114BC), span(0x114BE, 0x114BE), span(0x115BA, 0x115BB), span(0x11938, 0x11938),
];

/// The canonical decomposition (first, second) of each primary composite,
/// in the order of [`COMPOSITES`].
#[rustfmt::skip]
static COMPOSITIONS: [u32; 116] = [
    // U+0622..=U+0626
    pair(0x0627, 0x0653), pair(0x0627, 0x0654), pair(0x0648, 0x0654), pair(0x0627, 0x0655),
    pair(0x064A, 0x0654),
    // U+06C0..=U+06C0
    pair(0x06D5, 0x0654),
    // U+06C2..=U+06C2
    pair(0x06C1, 0x0654),
    // U+06D3..=U+06D3
    pair(0x06D2, 0x0654),
    // U+0929..=U+0929
    pair(0x0928, 0x093C),
    // U+0931..=U+0931
    pair(0x0930, 0x093C),
    // U+0934..=U+0934
    pair(0x0933, 0x093C),
    // U+09CB..=U+09CC
    pair(0x09C7, 0x09BE), pair(0x09C7, 0x09D7),
    // U+0B48..=U+0B48
    pair(0x0B47, 0x0B56),
    // U+0B4B..=U+0B4C
    pair(0x0B47, 0x0B3E), pair(0x0B47, 0x0B57),
    // U+0B94..=U+0B94
    pair(0x0B92, 0x0BD7),
    // U+0BCA..=U+0BCC
    pair(0x0BC6, 0x0BBE), pair(0x0BC7, 0x0BBE), pair(0x0BC6, 0x0BD7),
    // U+0C48..=U+0C48
    pair(0x0C46, 0x0C56),
    // U+0CC0..=U+0CC0
    pair(0x0CBF, 0x0CD5),
    // U+0CC7..=U+0CC8
    pair(0x0CC6, 0x0CD5), pair(0x0CC6, 0x0CD6),
    // U+0CCA..=U+0CCB
    pair(0x0CC6, 0x0CC2), pair(0x0CCA, 0x0CD5),
    // U+0D4A..=U+0D4C
    pair(0x0D46, 0x0D3E), pair(0x0D47, 0x0D3E), pair(0x0D46, 0x0D57),
    // U+0DDA..=U+0DDA
    pair(0x0DD9, 0x0DCA),
    // U+0DDC..=U+0DDE
    pair(0x0DD9, 0x0DCF), pair(0x0DDC, 0x0DCA), pair(0x0DD9, 0x0DDF),
    // U+1026..=U+1026
    pair(0x1025, 0x102E),
    // U+1B06..=U+1B06
    pair(0x1B05, 0x1B35),
    // U+1B08..=U+1B08
    pair(0x1B07, 0x1B35),
    // U+1B0A..=U+1B0A
    pair(0x1B09, 0x1B35),
    // U+1B0C..=U+1B0C
    pair(0x1B0B, 0x1B35),
    // U+1B0E..=U+1B0E
    pair(0x1B0D, 0x1B35),
    // U+1B12..=U+1B12
    pair(0x1B11, 0x1B35),
    // U+1B3B..=U+1B3B
    pair(0x1B3A, 0x1B35),
    // U+1B3D..=U+1B3D
    pair(0x1B3C, 0x1B35),
    // U+1B40..=U+1B41
    pair(0x1B3E, 0x1B35), pair(0x1B3F, 0x1B35),
    // U+1B43..=U+1B43
    pair(0x1B42, 0x1B35),
    // U+304C..=U+304C
    pair(0x304B, 0x3099),
    // U+304E..=U+304E
    pair(0x304D, 0x3099),
    // U+3050..=U+3050
    pair(0x304F, 0x3099),
    // U+3052..=U+3052
    pair(0x3051, 0x3099),
    // U+3054..=U+3054
    pair(0x3053, 0x3099),
    // U+3056..=U+3056
    pair(0x3055, 0x3099),
    // U+3058..=U+3058
    pair(0x3057, 0x3099),
    // U+305A..=U+305A
    pair(0x3059, 0x3099),
    // U+305C..=U+305C
    pair(0x305B, 0x3099),
    // U+305E..=U+305E
    pair(0x305D, 0x3099),
    // U+3060..=U+3060
    pair(0x305F, 0x3099),
    // U+3062..=U+3062
    pair(0x3061, 0x3099),
    // U+3065..=U+3065
    pair(0x3064, 0x3099),
    // U+3067..=U+3067
    pair(0x3066, 0x3099),
    // U+3069..=U+3069
    pair(0x3068, 0x3099),
    // U+3070..=U+3071
    pair(0x306F, 0x3099), pair(0x306F, 0x309A),
    // U+3073..=U+3074
    pair(0x3072, 0x3099), pair(0x3072, 0x309A),
    // U+3076..=U+3077
    pair(0x3075, 0x3099), pair(0x3075, 0x309A),
    // U+3079..=U+307A
    pair(0x3078, 0x3099), pair(0x3078, 0x309A),
    // U+307C..=U+307D
    pair(0x307B, 0x3099), pair(0x307B, 0x309A),
    // U+3094..=U+3094
    pair(0x3046, 0x3099),
    // U+309E..=U+309E
    pair(0x309D, 0x3099),
    // U+30AC..=U+30AC
    pair(0x30AB, 0x3099),
    // U+30AE..=U+30AE
    pair(0x30AD, 0x3099),
    // U+30B0..=U+30B0
    pair(0x30AF, 0x3099),
    // U+30B2..=U+30B2
    pair(0x30B1, 0x3099),
    // U+30B4..=U+30B4
    pair(0x30B3, 0x3099),
    // U+30B6..=U+30B6
    pair(0x30B5, 0x3099),
    // U+30B8..=U+30B8
    pair(0x30B7, 0x3099),
    // U+30BA..=U+30BA
    pair(0x30B9, 0x3099),
    // U+30BC..=U+30BC
    pair(0x30BB, 0x3099),
    // U+30BE..=U+30BE
    pair(0x30BD, 0x3099),
    // U+30C0..=U+30C0
    pair(0x30BF, 0x3099),
    // U+30C2..=U+30C2
    pair(0x30C1, 0x3099),
    // U+30C5..=U+30C5
    pair(0x30C4, 0x3099),
    // U+30C7..=U+30C7
    pair(0x30C6, 0x3099),
    // U+30C9..=U+30C9
    pair(0x30C8, 0x3099),
    // U+30D0..=U+30D1
    pair(0x30CF, 0x3099), pair(0x30CF, 0x309A),
    // U+30D3..=U+30D4
    pair(0x30D2, 0x3099), pair(0x30D2, 0x309A),
    // U+30D6..=U+30D7
    pair(0x30D5, 0x3099), pair(0x30D5, 0x309A),
    // U+30D9..=U+30DA
    pair(0x30D8, 0x3099), pair(0x30D8, 0x309A),
    // U+30DC..=U+30DD
    pair(0x30DB, 0x3099), pair(0x30DB, 0x309A),
    // U+30F4..=U+30F4
    pair(0x30A6, 0x3099),
    // U+30F7..=U+30FA
    pair(0x30EF, 0x3099), pair(0x30F0, 0x3099), pair(0x30F1, 0x3099), pair(0x30F2, 0x3099),
    // U+30FE..=U+30FE
    pair(0x30FD, 0x3099),
    // U+1109A..=U+1109A
    pair(0x11099, 0x110BA),
    // U+1109C..=U+1109C
    pair(0x1109B, 0x110BA),
    // U+110AB..=U+110AB
    pair(0x110A5, 0x110BA),
    // U+1112E..=U+1112F
    pair(0x11131, 0x11127), pair(0x11132, 0x11127),
    // U+1134B..=U+1134C
    pair(0x11347, 0x1133E), pair(0x11347, 0x11357),
    // U+114BB..=U+114BC
    pair(0x114B9, 0x114BA), pair(0x114B9, 0x114B0),
    // U+114BE..=U+114BE
    pair(0x114B9, 0x114BD),
    // U+115BA..=U+115BB
    pair(0x115B8, 0x115AF), pair(0x115B9, 0x115AF),
    // U+11938..=U+11938
    pair(0x11935, 0x11930),
];

/// What the characters of [`LOOKALIKES`] stand for.
const SKELETONS: [&str; 11] = ["E", "M", "S", "T", "Y", "e", "n", "r", "rn", "s", "y"];

/// The characters a name may hold that Unicode's confusables.txt
/// 15.1.0 (UTS #39) makes confusable with a letter of the reserved
/// names (`emsty`) in lower or upper case or as a small capital, or with
/// the letters of those skeletons (`rn` for `m`), with what they stand for;
/// and the Cherokee small letters of such Cherokee capitals. See
/// [`is_reserved_name`] and [`look`].
#[rustfmt::skip]
static LOOKALIKES: [u32; 94] = [
    look(0x006D, "rn"), // m LATIN SMALL LETTER M
    look(0x01BD, "s"), // ƽ LATIN SMALL LETTER TONE FIVE
    look(0x0263, "y"), // ɣ LATIN SMALL LETTER GAMMA
    look(0x028D, "M"), // ʍ LATIN SMALL LETTER TURNED W
    look(0x028F, "y"), // ʏ LATIN LETTER SMALL CAPITAL Y
    look(0x0395, "E"), // Ε GREEK CAPITAL LETTER EPSILON
    look(0x039C, "M"), // Μ GREEK CAPITAL LETTER MU
    look(0x03A4, "T"), // Τ GREEK CAPITAL LETTER TAU
    look(0x03A5, "Y"), // Υ GREEK CAPITAL LETTER UPSILON
    look(0x03B3, "y"), // γ GREEK SMALL LETTER GAMMA
    look(0x03C4, "T"), // τ GREEK SMALL LETTER TAU
    look(0x03FA, "M"), // Ϻ GREEK CAPITAL LETTER SAN
    look(0x0405, "S"), // Ѕ CYRILLIC CAPITAL LETTER DZE
    look(0x0415, "E"), // Е CYRILLIC CAPITAL LETTER IE
    look(0x041C, "M"), // М CYRILLIC CAPITAL LETTER EM
    look(0x0422, "T"), // Т CYRILLIC CAPITAL LETTER TE
    look(0x0423, "Y"), // У CYRILLIC CAPITAL LETTER U
    look(0x0433, "r"), // г CYRILLIC SMALL LETTER GHE
    look(0x0435, "e"), // е CYRILLIC SMALL LETTER IE
    look(0x043C, "M"), // м CYRILLIC SMALL LETTER EM
    look(0x0442, "T"), // т CYRILLIC SMALL LETTER TE
    look(0x0443, "y"), // у CYRILLIC SMALL LETTER U
    look(0x0455, "s"), // ѕ CYRILLIC SMALL LETTER DZE
    look(0x04AE, "Y"), // Ү CYRILLIC CAPITAL LETTER STRAIGHT U
    look(0x04AF, "y"), // ү CYRILLIC SMALL LETTER STRAIGHT U
    look(0x04BD, "e"), // ҽ CYRILLIC SMALL LETTER ABKHASIAN CHE
    look(0x054F, "S"), // Տ ARMENIAN CAPITAL LETTER TIWN
    look(0x0578, "n"), // ո ARMENIAN SMALL LETTER VO
    look(0x057C, "n"), // ռ ARMENIAN SMALL LETTER RA
    look(0x10E7, "y"), // ყ GEORGIAN LETTER QAR
    look(0x13A2, "T"), // Ꭲ CHEROKEE LETTER I
    look(0x13A9, "Y"), // Ꭹ CHEROKEE LETTER GI
    look(0x13AC, "E"), // Ꭼ CHEROKEE LETTER GV
    look(0x13B7, "M"), // Ꮇ CHEROKEE LETTER LU
    look(0x13BD, "Y"), // Ꮍ CHEROKEE LETTER MU
    look(0x13D5, "S"), // Ꮥ CHEROKEE LETTER DE
    look(0x13DA, "S"), // Ꮪ CHEROKEE LETTER DU
    look(0x15F0, "M"), // ᗰ CANADIAN SYLLABICS CARRIER GO
    look(0x16D6, "M"), // ᛖ RUNIC LETTER EHWAZ EH E
    look(0x1D07, "E"), // ᴇ LATIN LETTER SMALL CAPITAL E
    look(0x1D0D, "M"), // ᴍ LATIN LETTER SMALL CAPITAL M
    look(0x1D1B, "T"), // ᴛ LATIN LETTER SMALL CAPITAL T
    look(0x1D26, "r"), // ᴦ GREEK LETTER SMALL CAPITAL GAMMA
    look(0x1D8C, "y"), // ᶌ LATIN SMALL LETTER V WITH PALATAL HOOK
    look(0x1EFF, "y"), // ỿ LATIN SMALL LETTER Y WITH LOOP
    look(0x212E, "e"), // ℮ ESTIMATED SYMBOL
    look(0x22A4, "T"), // ⊤ DOWN TACK
    look(0x22FF, "E"), // ⋿ Z NOTATION BAG MEMBERSHIP
    look(0x27D9, "T"), // ⟙ LARGE DOWN TACK
    look(0x2C85, "r"), // ⲅ COPTIC SMALL LETTER GAMMA
    look(0x2C98, "M"), // Ⲙ COPTIC CAPITAL LETTER MI
    look(0x2CA6, "T"), // Ⲧ COPTIC CAPITAL LETTER TAU
    look(0x2CA8, "Y"), // Ⲩ COPTIC CAPITAL LETTER UA
    look(0x2D39, "E"), // ⴹ TIFINAGH LETTER YADD
    look(0xA4D4, "T"), // ꓔ LISU LETTER TA
    look(0xA4DF, "M"), // ꓟ LISU LETTER MA
    look(0xA4E2, "S"), // ꓢ LISU LETTER SA
    look(0xA4EC, "Y"), // ꓬ LISU LETTER YA
    look(0xA4F0, "E"), // ꓰ LISU LETTER E
    look(0xA731, "s"), // ꜱ LATIN LETTER SMALL CAPITAL S
    look(0xAB32, "e"), // ꬲ LATIN SMALL LETTER BLACKLETTER E
    look(0xAB47, "r"), // ꭇ LATIN SMALL LETTER R WITHOUT HANDLE
    look(0xAB48, "r"), // ꭈ LATIN SMALL LETTER DOUBLE R
    look(0xAB5A, "y"), // ꭚ LATIN SMALL LETTER Y WITH SHORT RIGHT LEG
    look(0xAB72, "T"), // ꭲ CHEROKEE SMALL LETTER I
    look(0xAB79, "Y"), // ꭹ CHEROKEE SMALL LETTER GI
    look(0xAB7C, "E"), // ꭼ CHEROKEE SMALL LETTER GV
    look(0xAB81, "r"), // ꮁ CHEROKEE SMALL LETTER HU
    look(0xAB87, "M"), // ꮇ CHEROKEE SMALL LETTER LU
    look(0xAB8D, "Y"), // ꮍ CHEROKEE SMALL LETTER MU
    look(0xABA5, "S"), // ꮥ CHEROKEE SMALL LETTER DE
    look(0xABAA, "s"), // ꮪ CHEROKEE SMALL LETTER DU
    look(0x10286, "E"), // 𐊆 LYCIAN LETTER I
    look(0x10296, "S"), // 𐊖 LYCIAN LETTER S
    look(0x10297, "T"), // 𐊗 LYCIAN LETTER T
    look(0x102B0, "M"), // 𐊰 CARIAN LETTER S
    look(0x102B1, "T"), // 𐊱 CARIAN LETTER C-18
    look(0x102B2, "Y"), // 𐊲 CARIAN LETTER U
    look(0x10311, "M"), // 𐌑 OLD ITALIC LETTER SHE
    look(0x10315, "T"), // 𐌕 OLD ITALIC LETTER TE
    look(0x10420, "S"), // 𐐠 DESERET CAPITAL LETTER ZHEE
    look(0x10448, "s"), // 𐑈 DESERET SMALL LETTER ZHEE
    look(0x11700, "rn"), // 𑜀 AHOM LETTER KA
    look(0x118A4, "Y"), // 𑢤 WARANG CITI CAPITAL LETTER YA
    look(0x118A6, "E"), // 𑢦 WARANG CITI CAPITAL LETTER II
    look(0x118AE, "E"), // 𑢮 WARANG CITI CAPITAL LETTER YUJ
    look(0x118BC, "T"), // 𑢼 WARANG CITI CAPITAL LETTER HAR
    look(0x118C1, "s"), // 𑣁 WARANG CITI SMALL LETTER A
    look(0x118DC, "y"), // 𑣜 WARANG CITI SMALL LETTER HAR
    look(0x118E3, "rn"), // 𑣣 WARANG CITI DIGIT THREE
    look(0x16F0A, "T"), // 𖼊 MIAO LETTER TA
    look(0x16F3A, "S"), // 𖼺 MIAO LETTER SA
    look(0x16F43, "Y"), // 𖽃 MIAO LETTER AH
    look(0x1F768, "T"), // 🝨 ALCHEMICAL SYMBOL FOR CRUCIBLE-4
];
// END GENERATED TABLES

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> Result<(), NameError> {
        check_user_name(name)
    }

    #[test]
    fn genuine_names_pass() {
        for ok in [
            "alice",
            "Bob Smith",
            "\u{FC}n\u{EF}code", // ünïcode, precomposed
            "Jos\u{E9}",
            "Zo\u{EB}",
            "张伟",
            "さくら",
            "が", // precomposed U+304C
            "김민준",
            "محمد",
            "أحمد", // U+0623, precomposed alef with hamza
            "देवनागरी",
            "अमित",
            "ज\u{93C}ैद", // nukta after ja: NFC keeps it apart (U+095B is excluded)
            "राहुल",
            "রাহুল",    // Bengali vowel sign AA after ra
            "கார்த்திக்", // Tamil vowel sign AA
            "රාජ්",     // Sinhala vowel sign and al-lakuna
            "สมชาย",
            "Иван",
            "Ѕуѕtеm Ѕmith",
            "Ολυμπία",
            "\u{5E9}\u{5B8}\u{5C1}\u{5DC}\u{5D5}\u{5B9}\u{5DD}", // שָׁלוֹם, points in canonical order
            "Adé\u{1E63}\u{1ECD}lá",                             // Adéṣọlá, all precomposed
            "🙂",
            "❤",
            "a",
            "x\u{1680}y", // ogham space mark inside a name
            "systems",
            "Sys tem",
            "Syst3m",
            // Not look-alikes of System, though close in letters or script.
            "Stefan",
            "Systems",
            "Sys",
            "Tom",
            "Yusuf",
            "Stern",
            "Sistem",
            "SYSTERN",                      // `rn` looks like `m`, `RN` not like `M`
            "Syst\u{3B5}m",                 // Greek ε: only its capital is like E
            "Syste\u{3BC}",                 // Greek μ: only its capital is like M
            "\u{54F}\u{57F}\u{561}\u{57D}", // Armenian: only Տ is like S
            &"x".repeat(MAX_USER_NAME_LEN),
            &"é".repeat(MAX_USER_NAME_LEN / 2),
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn refused_names_say_why() {
        use NameError::*;
        let cases: &[(&str, NameError)] = &[
            ("", Empty),
            (&"x".repeat(MAX_USER_NAME_LEN + 1), TooLong),
            (&"é".repeat(MAX_USER_NAME_LEN / 2 + 1), TooLong),
            ("a:b", Colon),
            ("System:", Colon),
            ("tab\there", Control),
            ("nl\n", Control),
            ("\u{7F}", Control),
            ("\u{85}x", Control),
            // The first rule broken wins, wherever the characters are.
            ("\u{200B}a:", Colon),
            ("\u{200B}\u{1}", Control),
            (" \u{378}", Unassigned),
            ("\u{FF33} ", Spaces),
            // Invisible: default ignorables
            ("System\u{200B}", Invisible),
            ("\u{FEFF}bob", Invisible),
            ("al\u{AD}ice", Invisible),
            ("System\u{34F}", Invisible),
            ("System\u{FE0F}", Invisible),
            ("System\u{FE00}", Invisible),
            ("System\u{3164}", Invisible),
            ("System\u{FFA0}", Invisible),
            ("\u{115F}System", Invisible),
            ("System\u{1160}", Invisible),
            ("System\u{17B4}", Invisible),
            ("System\u{17B5}", Invisible),
            ("System\u{180B}", Invisible),
            ("System\u{180F}", Invisible),
            ("System\u{1BCA0}", Invisible),
            ("System\u{1BCA3}", Invisible),
            ("System\u{1D173}", Invisible),
            ("System\u{1D17A}", Invisible),
            ("System\u{E0000}", Invisible),
            ("System\u{E0020}", Invisible),
            ("System\u{E0FFF}", Invisible),
            ("System\u{FFF0}", Invisible),
            ("ali\u{200D}ce", Invisible),
            ("❤\u{FE0F}", Invisible), // ❤️: the emoji presentation selector
            ("👩\u{200D}💻", Invisible),
            // Invisible: format characters and separators
            ("al\u{202E}ice", Invisible),
            ("al\u{2066}ice", Invisible),
            ("a\u{2028}b", Invisible),
            ("a\u{2029}b", Invisible),
            ("\u{600}x", Invisible),
            ("x\u{890}", Invisible),
            ("x\u{891}", Invisible),
            ("x\u{8E2}", Invisible),
            ("x\u{110BD}", Invisible),
            ("x\u{110CD}", Invisible),
            ("x\u{13430}", Invisible),
            ("x\u{1343F}", Invisible),
            ("x\u{FFF9}", Invisible),
            // Unassigned in Unicode 14.0
            ("x\u{378}", Unassigned),
            ("x\u{FDD0}", Unassigned),
            ("x\u{FFFE}", Unassigned),
            ("x\u{1FFFF}", Unassigned),
            ("x\u{2FA1E}", Unassigned),
            ("x\u{40000}", Unassigned),
            ("x\u{DFFFF}", Unassigned),
            ("x\u{E0002}", Invisible), // unassigned, but default ignorable first
            ("x\u{E1000}", Unassigned),
            ("x\u{10FFFF}", Unassigned),
            // Spaces
            (" lead", Spaces),
            ("trail ", Spaces),
            ("\u{1680}x", Spaces),
            ("\u{A0}bob", Spaces), // no-break space: white space, and NFKC changes it
            // NFKC changes them
            ("ＳＹＳＴＥＭ", NotNormalized),
            ("Ｓｙｓｔｅｍ", NotNormalized),
            ("Sy\u{17F}tem", NotNormalized),
            ("\u{212A}elvin", NotNormalized),
            ("\u{1D412}ystem", NotNormalized),
            ("\u{FB05}", NotNormalized),
            ("x\u{B2}", NotNormalized),
            ("a\u{A0}b", NotNormalized),
            ("a\u{2009}b", NotNormalized),
            ("a\u{3000}b", NotNormalized),
            ("\u{FF76}", NotNormalized), // halfwidth katakana
            ("\u{3131}", NotNormalized), // compatibility jamo
            ("\u{2126}", NotNormalized), // ohm sign: NFC already maps it
            ("\u{958}", NotNormalized),  // precomposed qa: excluded from composition
            // NFC would compose them
            ("Jose\u{301}", NotNormalized),
            ("\u{1ECD}\u{301}la", NotNormalized), // ọ́: NFC keeps it, but the accent is apart
            ("x\u{316}\u{302}", NotNormalized),   // no x̂ exists, still refused
            ("\u{1161}", NotNormalized),          // a vowel jamo on its own
            ("\u{AC00}\u{11C2}", NotNormalized),
            ("u\u{308}nicode", NotNormalized),
            ("a\u{316}\u{301}", NotNormalized), // composes past the lower mark
            ("\u{E2}\u{323}", NotNormalized),   // â + dot below: NFC makes ậ
            ("\u{1100}\u{1161}", NotNormalized), // jamo that make 가
            ("\u{AC00}\u{11A8}", NotNormalized), // 가 + jamo that make 각
            ("\u{928}\u{93C}", NotNormalized),  // na + nukta = U+0929
            ("\u{9C7}\u{9BE}", NotNormalized),  // Bengali e + aa = o
            ("\u{DD9}\u{DCF}", NotNormalized),  // Sinhala
            ("\u{304B}\u{3099}", NotNormalized), // か + voiced mark = が
            ("\u{627}\u{654}", NotNormalized),  // alef + hamza above = U+0623
            // Canonical order
            ("a\u{350}\u{316}", NotNormalized), // classes 230 then 220
            ("\u{5E9}\u{5C1}\u{5B8}", NotNormalized), // shin, shin dot (24), qamats (18)
            // Reserved, and look-alikes of it
            ("System", Reserved),
            ("system", Reserved),
            ("SYSTEM", Reserved),
            ("sYsTeM", Reserved),
            ("\u{405}\u{443}\u{455}t\u{435}m", Reserved), // Ѕуѕtеm
            ("\u{405}\u{443}\u{455}\u{442}\u{435}\u{43C}", Reserved), // Ѕуѕтем
            ("\u{405}ystem", Reserved),                   // Ѕystem
            ("Syst\u{435}m", Reserved),
            ("\u{405}\u{423}\u{405}\u{422}\u{415}\u{41C}", Reserved), // ЅУЅТЕМ
            ("S\u{3A5}STEM", Reserved),                               // Greek capital upsilon
            ("S\u{3B3}stem", Reserved),                               // Greek gamma
            ("SYS\u{3A4}\u{395}\u{39C}", Reserved),
            ("\u{A731}\u{28F}\u{A731}\u{1D1B}\u{1D07}\u{1D0D}", Reserved), // ꜱʏꜱᴛᴇᴍ
            ("\u{13DA}\u{13A9}\u{13DA}\u{13A2}\u{13AC}\u{13B7}", Reserved), // Cherokee
            ("\u{ABAA}\u{AB79}\u{ABAA}\u{AB72}\u{AB7C}\u{AB87}", Reserved), // small Cherokee
            ("\u{A4E2}\u{A4EC}\u{A4E2}\u{A4D4}\u{A4F0}\u{A4DF}", Reserved), // Lisu
            // Look-alikes that only confusables.txt knew of.
            ("\u{54F}ystem", Reserved),   // Տystem, Armenian capital tiwn
            ("S\u{10E7}stem", Reserved),  // Sყstem, Georgian qar
            ("Syst\u{4BD}m", Reserved),   // Systҽm, Cyrillic Abkhasian che
            ("S\u{263}stem", Reserved),   // Sɣstem, Latin gamma
            ("Sys\u{22A4}em", Reserved),  // down tack
            ("\u{10420}ystem", Reserved), // Deseret capital zhee
            // `m` is `rn` to confusables.txt.
            ("Systern", Reserved),
            ("SYSTErn", Reserved),
            ("Syste\u{433}n", Reserved),            // Cyrillic г
            ("\u{54F}yster\u{578}", Reserved),      // Armenian Տ and ո
            ("\u{54F}yste\u{FF4D}", NotNormalized), // fullwidth ｍ: refused first
        ];
        for &(name, why) in cases {
            assert_eq!(check(name), Err(why), "{name:?}");
        }
    }

    #[test]
    fn reserved_names() {
        assert_eq!(RESERVED_NAMES, [SYSTEM_NAME]);
        assert!(
            RESERVED_NAMES.iter().all(|r| r.is_ascii()),
            "the skeleton needs ASCII"
        );
        assert!(is_reserved_name(SYSTEM_NAME));
        assert!(is_reserved_name("Sys\u{200B}tem")); // invisibles dropped
        // ꜱʏꜱᴛᴇᴍ, Ѕуѕтем: small capitals and Cyrillic shaped like them.
        assert!(is_reserved_name(
            "\u{A731}\u{28F}\u{A731}\u{1D1B}\u{1D07}\u{1D0D}"
        ));
        assert!(is_reserved_name(
            "\u{405}\u{443}\u{455}\u{442}\u{435}\u{43C}"
        ));
        assert!(is_reserved_name("sYsTErn"));
        assert!(!is_reserved_name(
            "\u{1D1B}\u{28F}\u{A731}\u{1D1B}\u{1D07}\u{1D0D}"
        )); // ᴛʏꜱᴛᴇᴍ
        assert!(!is_reserved_name("Systems"));
        assert!(!is_reserved_name("Syste"));
        assert!(!is_reserved_name("Systernn"));
        assert!(!is_reserved_name("SysteRN"));
        assert!(!is_reserved_name("Systerm"));
        assert!(!is_reserved_name("Иван"));
        assert!(!is_reserved_name("Syst\u{3B5}m")); // ε is not folded
        assert!(!is_reserved_name("\u{1E9E}ystem")); // ẞ folds to ss
        assert!(!is_reserved_name(""));
        // The table was made for the letters of the reserved names.
        for letter in RESERVED_NAMES.iter().flat_map(|r| r.chars()) {
            let letter = letter.to_ascii_lowercase();
            assert!(
                LOOKALIKE_LETTERS.contains(letter),
                "regenerate the tables for {letter:?}"
            );
        }
        // Every look-alike is a character a valid name can hold, else its
        // entry would be dead; and the table is sorted for binary search.
        assert!(LOOKALIKES.windows(2).all(|w| w[0] >> 8 < w[1] >> 8));
        for &e in &LOOKALIKES {
            let c = char::from_u32(e >> 8).unwrap();
            let skeleton = lookalike(c).unwrap();
            assert!(!skeleton.is_empty() && skeleton.bytes().all(|b| b.is_ascii_alphabetic()));
            assert_ne!(skeleton, c.to_string());
            assert_eq!(check(&format!("x{c}")), Ok(()), "{c:?}");
        }
        assert_eq!(lookalike('s'), None);
        assert_eq!(lookalike('m'), Some("rn"));
    }

    /// What lets `check_user_name` skip its tables for ASCII.
    #[test]
    fn ascii_needs_no_tables() {
        for b in 0..=0x7fu8 {
            let c = char::from(b);
            assert!(!is_invisible(c) && !is_unassigned(c), "{b:#x}");
            assert!(is_nfkc_precomposed(&c.to_string()), "{b:#x}");
        }
    }

    #[test]
    fn lookalikes_match_confusables() {
        for &(cp, skeleton) in &LOOKALIKE_SAMPLES {
            let c = char::from_u32(cp).unwrap();
            assert_eq!(lookalike(c).unwrap_or(""), skeleton, "U+{cp:04X}");
        }
    }

    #[test]
    fn phrases() {
        use NameError::*;
        assert!(TooLong.phrase().contains(&MAX_USER_NAME_LEN.to_string()));
        assert!(UNICODE_VERSION.starts_with("14.0."));
        assert!(Unassigned.phrase().ends_with("Unicode 14.0"));
        assert_eq!(Reserved.to_string(), "user name is reserved");
        for e in [
            Empty,
            TooLong,
            Colon,
            Control,
            Invisible,
            Unassigned,
            Spaces,
            NotNormalized,
            Reserved,
        ] {
            assert!(!e.phrase().is_empty());
        }
    }

    #[test]
    fn tables_are_sorted_and_disjoint() {
        fn bounds(e: u32) -> (u32, u32) {
            (e >> 11, (e >> 11) + (e & 0x7FF))
        }
        for table in [&INVISIBLE[..], &UNASSIGNED_LONG[..]] {
            assert!(table.iter().all(|&(a, b)| a <= b && b <= 0x10FFFF));
            assert!(table.windows(2).all(|w| w[0].1 + 1 < w[1].0), "not merged");
        }
        for table in [&NFKC_NO[..], &UNASSIGNED[..], &COMPOSITES[..]] {
            assert!(table.windows(2).all(|w| bounds(w[0]).1 < bounds(w[1]).0));
            assert!(table.iter().all(|&e| bounds(e).1 <= 0x10FFFF));
        }
        assert!(
            CCC.windows(2)
                .all(|w| (w[0] >> 11) + ((w[0] >> 8) & 7) < w[1] >> 11)
        );
        assert!(CCC.iter().all(|&e| e & 0xFF != 0));
        assert!(SECONDS.windows(2).all(|w| w[0] < w[1]));
        let composites: u32 = COMPOSITES.iter().map(|&e| (e & 0x7FF) + 1).sum();
        assert_eq!(composites as usize, COMPOSITIONS.len());
        // Nothing unassigned is also invisible, and the short and the long
        // unassigned ranges do not overlap.
        let mut unassigned: Vec<(u32, u32)> = UNASSIGNED.iter().map(|&e| bounds(e)).collect();
        unassigned.extend(UNASSIGNED_LONG);
        unassigned.sort_unstable();
        assert!(unassigned.windows(2).all(|w| w[0].1 + 1 < w[1].0));
        for (a, b) in unassigned {
            assert!((a..=b).all(|cp| char::from_u32(cp).is_none_or(|c| !is_invisible(c))));
        }
    }

    #[test]
    fn compositions_round_trip() {
        let mut n = 0;
        for &e in &COMPOSITES {
            for cp in (e >> 11)..=(e >> 11) + (e & 0x7FF) {
                let c = char::from_u32(cp).unwrap();
                let (a, b) = decompose(c).unwrap();
                assert_eq!(compose(a, b), Some(c), "{c:?}");
                assert!(may_join(b));
                n += 1;
            }
        }
        assert_eq!(n, COMPOSITIONS.len());
        assert_eq!(decompose('a'), None);
        assert_eq!(decompose('\u{AC00}'), None);
        assert_eq!(decompose('\u{E9}'), None); // refused parts: not in the table
        assert_eq!(compose('\u{928}', '\u{93C}'), Some('\u{929}'));
        assert_eq!(compose('\u{91C}', '\u{93C}'), None); // U+095B is excluded
        assert_eq!(compose('\u{DD9}', '\u{DCF}'), Some('\u{DDC}'));
        assert_eq!(compose('\u{DDC}', '\u{DCA}'), Some('\u{DDD}'));
        assert_eq!(decompose('\u{DDD}'), Some(('\u{DDC}', '\u{DCA}')));
        assert_eq!(compose('\u{304B}', '\u{3099}'), Some('\u{304C}'));
        assert_eq!(compose('\u{627}', '\u{655}'), Some('\u{625}'));
    }

    /// A small independent generator of test code points (xorshift).
    fn code_points(seed: u64, n: usize) -> impl Iterator<Item = char> {
        let mut x = seed;
        std::iter::from_fn(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Some(x)
        })
        .filter_map(|x| {
            // Half anywhere, half in the first planes' busy start.
            let cp = if x & 1 == 0 {
                (x >> 8) % 0x110000
            } else {
                (x >> 8) % 0x3400
            };
            char::from_u32(cp as u32)
        })
        .take(n)
    }

    #[test]
    fn random_code_points_against_oracles() {
        // Oracles independent of the tables: the Hangul algorithm, std's
        // own Unicode data, and blocks whose behaviour is known outright.
        for c in code_points(0x5EED_5A17, 600) {
            let cp = u32::from(c);
            let single = c.to_string();
            // Control characters are Cc: never invisible, never NFKC-changed.
            if c.is_control() {
                assert!(!is_invisible(c) && is_nfkc_precomposed(&single), "{c:?}");
            }
            // Letters and digits (std, Unicode 16) are not format characters
            // (U+3164, U+FFA0 and U+115F/1160 are default-ignorable letters).
            if c.is_alphanumeric() && !matches!(cp, 0x115F | 0x1160 | 0x3164 | 0xFFA0) {
                assert!(!is_invisible(c), "{c:?}");
            }
            // Assigned in Unicode 16 as letters, digits, white space or
            // controls: either assigned in 14.0 too, or added since.
            if c.is_control() || c.is_whitespace() {
                assert!(!is_unassigned(c), "{c:?}");
            }
            // Hangul syllables are NFKC-stable and carry no combining class.
            if (0xAC00..=0xD7A3).contains(&cp) {
                assert!(is_nfkc_precomposed(&single) && ccc(c) == 0, "{c:?}");
            }
            // ASCII is NFKC-stable; fullwidth ASCII (U+FF01..FF5E) is not.
            if c.is_ascii() {
                assert!(is_nfkc_precomposed(&single));
            }
            if (0xFF01..=0xFF5E).contains(&cp) {
                assert!(!is_nfkc_precomposed(&single), "{c:?}");
            }
            // Private use is assigned and stable.
            if (0xE000..=0xF8FF).contains(&cp) || (cp >= 0xF0000 && cp & 0xFFFE != 0xFFFE) {
                assert!(
                    !is_unassigned(c) && !is_invisible(c) && is_nfkc_precomposed(&single),
                    "{c:?}"
                );
            }
            // Surrogates cannot occur; planes 4..13 are all unassigned.
            if (0x40000..0xE0000).contains(&cp) {
                assert!(is_unassigned(c));
            }
        }
    }

    #[test]
    fn code_points_match_unicodedata() {
        for &(cp, flags, class) in &CODE_POINTS {
            let c = char::from_u32(cp).unwrap();
            assert_eq!(is_invisible(c), flags & 1 != 0, "invisible {cp:04X}");
            assert_eq!(in_spans(&NFKC_NO, cp), flags & 2 != 0, "NFKC {cp:04X}");
            assert_eq!(is_unassigned(c), flags & 4 != 0, "unassigned {cp:04X}");
            assert_eq!(ccc(c), class, "ccc {cp:04X}");
        }
    }

    #[test]
    fn strings_match_unicodedata() {
        for &(s, stable) in &STRINGS {
            assert_eq!(is_nfkc_precomposed(s), stable, "{s:?}");
        }
    }

    // BEGIN GENERATED VECTORS by scripts/gen-unicode-tables.py; do not edit.
    /// (code point, 1 = invisible | 2 = NFKC changes it | 4 = unassigned,
    /// combining class), from Python's unicodedata directly.
    #[rustfmt::skip]
    const CODE_POINTS: [(u32, u8, u8); 400] = [
        (0x0031, 0, 0), (0x00B8, 2, 0), (0x00F9, 0, 0), (0x0140, 2, 0),
        (0x0184, 0, 0), (0x0291, 0, 0), (0x02FC, 0, 0), (0x03CA, 0, 0),
        (0x0421, 0, 0), (0x0441, 0, 0), (0x04EA, 0, 0), (0x04EB, 0, 0),
        (0x0528, 0, 0), (0x052A, 0, 0), (0x05C9, 4, 0), (0x06CC, 0, 0),
        (0x0710, 0, 0), (0x072C, 0, 0), (0x0738, 0, 220), (0x0751, 0, 0),
        (0x079C, 0, 0), (0x07CF, 0, 0), (0x0868, 0, 0), (0x0869, 0, 0),
        (0x086E, 4, 0), (0x088C, 0, 0), (0x08E2, 1, 0), (0x0A36, 2, 0),
        (0x0AFF, 0, 0), (0x0B2A, 0, 0), (0x0B5B, 4, 0), (0x0BCC, 0, 0),
        (0x0C56, 0, 91), (0x0C78, 0, 0), (0x0CB7, 0, 0), (0x0CC4, 0, 0),
        (0x0D27, 0, 0), (0x0D66, 0, 0), (0x0E74, 4, 0), (0x0E7A, 4, 0),
        (0x0E97, 0, 0), (0x0E99, 0, 0), (0x0EC4, 0, 0), (0x0F78, 2, 0),
        (0x0FC7, 0, 0), (0x116E, 0, 0), (0x1200, 0, 0), (0x133B, 0, 0),
        (0x138A, 0, 0), (0x13CB, 0, 0), (0x1449, 0, 0), (0x1575, 0, 0),
        (0x166B, 0, 0), (0x167D, 0, 0), (0x168E, 0, 0), (0x171A, 4, 0),
        (0x1745, 0, 0), (0x181E, 4, 0), (0x18B2, 0, 0), (0x18B3, 0, 0),
        (0x18D3, 0, 0), (0x19C7, 0, 0), (0x1BA9, 0, 0), (0x1C0F, 0, 0),
        (0x1C44, 0, 0), (0x1E22, 0, 0), (0x1E42, 0, 0), (0x1E45, 0, 0),
        (0x1E66, 0, 0), (0x1E6D, 0, 0), (0x1E77, 0, 0), (0x1E86, 0, 0),
        (0x1EC9, 0, 0), (0x1FAC, 0, 0), (0x1FC4, 0, 0), (0x202C, 1, 0),
        (0x2047, 2, 0), (0x2057, 2, 0), (0x2075, 2, 0), (0x20BB, 0, 0),
        (0x20C7, 4, 0), (0x2134, 2, 0), (0x2166, 2, 0), (0x221C, 0, 0),
        (0x2277, 0, 0), (0x22B6, 0, 0), (0x22C6, 0, 0), (0x22E6, 0, 0),
        (0x238A, 0, 0), (0x238F, 0, 0), (0x239D, 0, 0), (0x2483, 2, 0),
        (0x253C, 0, 0), (0x25A1, 0, 0), (0x25A9, 0, 0), (0x25D2, 0, 0),
        (0x25D7, 0, 0), (0x260A, 0, 0), (0x26A3, 0, 0), (0x26B9, 0, 0),
        (0x27EB, 0, 0), (0x2816, 0, 0), (0x28A2, 0, 0), (0x2929, 0, 0),
        (0x2AA1, 0, 0), (0x2AEE, 0, 0), (0x2D1A, 0, 0), (0x2F49, 2, 0),
        (0x2F50, 2, 0), (0x2FA1, 2, 0), (0x2FB3, 2, 0), (0x301E, 0, 0),
        (0x3067, 0, 0), (0x30E6, 0, 0), (0x3144, 2, 0), (0x3149, 2, 0),
        (0x314C, 2, 0), (0x3193, 2, 0), (0x3199, 2, 0), (0x3224, 2, 0),
        (0x32B5, 2, 0), (0x32CC, 2, 0), (0x3309, 2, 0), (0x330E, 2, 0),
        (0x33B0, 2, 0), (0x33DC, 2, 0), (0x33FC, 2, 0), (0x56E0, 0, 0),
        (0x8CAA, 0, 0), (0x9C84, 0, 0), (0xA33C, 0, 0), (0xAA5A, 4, 0),
        (0xCE50, 0, 0), (0xE3A2, 0, 0), (0xE55A, 0, 0), (0xF917, 2, 0),
        (0xFA87, 2, 0), (0xFB44, 2, 0), (0xFBA8, 2, 0), (0xFC23, 2, 0),
        (0xFC6B, 2, 0), (0xFC9C, 2, 0), (0xFD8F, 2, 0), (0xFDAE, 2, 0),
        (0xFE31, 2, 0), (0xFE62, 2, 0), (0xFF19, 2, 0), (0xFF1F, 2, 0),
        (0xFFAD, 2, 0), (0xFFD7, 2, 0), (0xFFF8, 1, 0), (0x1024A, 4, 0),
        (0x1027C, 4, 0), (0x1079D, 2, 0), (0x1112F, 0, 0), (0x11CE8, 4, 0),
        (0x11FDD, 0, 0), (0x15E94, 4, 0), (0x16F8C, 4, 0), (0x17B33, 0, 0),
        (0x1A017, 4, 0), (0x1A598, 4, 0), (0x1BEF5, 4, 0), (0x1D175, 1, 0),
        (0x1D50F, 2, 0), (0x1D552, 2, 0), (0x1D5C3, 2, 0), (0x1D5C5, 2, 0),
        (0x1D5D6, 2, 0), (0x1D67F, 2, 0), (0x1D6A9, 2, 0), (0x1D6B1, 2, 0),
        (0x1D73E, 2, 0), (0x1D75C, 2, 0), (0x1D79C, 2, 0), (0x1D7A0, 2, 0),
        (0x1F251, 2, 0), (0x1FB20, 0, 0), (0x1FBF7, 2, 0), (0x22059, 0, 0),
        (0x22E14, 0, 0), (0x231F6, 0, 0), (0x23CEC, 0, 0), (0x252F3, 0, 0),
        (0x2746E, 0, 0), (0x2A9A3, 0, 0), (0x2DD79, 0, 0), (0x2DE26, 0, 0),
        (0x2E248, 0, 0), (0x2F85E, 2, 0), (0x2F8BE, 2, 0), (0x2F8E9, 2, 0),
        (0x2F98C, 2, 0), (0x2F9B8, 2, 0), (0x2F9E6, 2, 0), (0x2F9FA, 2, 0),
        (0x30547, 0, 0), (0x3078E, 0, 0), (0x3090B, 0, 0), (0x30D30, 0, 0),
        (0x31898, 4, 0), (0x3216D, 4, 0), (0x34717, 4, 0), (0x34DCA, 4, 0),
        (0x3675B, 4, 0), (0x36B23, 4, 0), (0x391AA, 4, 0), (0x3A439, 4, 0),
        (0x3A4DC, 4, 0), (0x3AFB0, 4, 0), (0x3C8F2, 4, 0), (0x3C9ED, 4, 0),
        (0x3E0BE, 4, 0), (0x3EFD4, 4, 0), (0x4058D, 4, 0), (0x41FB3, 4, 0),
        (0x42823, 4, 0), (0x45369, 4, 0), (0x48020, 4, 0), (0x495E3, 4, 0),
        (0x4ADAD, 4, 0), (0x4B002, 4, 0), (0x4B09E, 4, 0), (0x4CA5F, 4, 0),
        (0x4CBB4, 4, 0), (0x51059, 4, 0), (0x52753, 4, 0), (0x52CC6, 4, 0),
        (0x54741, 4, 0), (0x5634F, 4, 0), (0x577B4, 4, 0), (0x58034, 4, 0),
        (0x5CC5F, 4, 0), (0x5D63C, 4, 0), (0x609EA, 4, 0), (0x6280F, 4, 0),
        (0x633ED, 4, 0), (0x65084, 4, 0), (0x65E87, 4, 0), (0x66BAA, 4, 0),
        (0x68A9F, 4, 0), (0x6A6B9, 4, 0), (0x6C519, 4, 0), (0x6FB65, 4, 0),
        (0x71AED, 4, 0), (0x71D31, 4, 0), (0x724FE, 4, 0), (0x75C73, 4, 0),
        (0x78F78, 4, 0), (0x7D5F9, 4, 0), (0x7E6E4, 4, 0), (0x7E9F6, 4, 0),
        (0x7F489, 4, 0), (0x80256, 4, 0), (0x80C92, 4, 0), (0x825D9, 4, 0),
        (0x82F50, 4, 0), (0x831C1, 4, 0), (0x83440, 4, 0), (0x8378D, 4, 0),
        (0x84765, 4, 0), (0x85537, 4, 0), (0x86878, 4, 0), (0x86EBA, 4, 0),
        (0x86EE8, 4, 0), (0x87729, 4, 0), (0x8839B, 4, 0), (0x88980, 4, 0),
        (0x8AAA5, 4, 0), (0x8ACF9, 4, 0), (0x8C50E, 4, 0), (0x8CF80, 4, 0),
        (0x8EA8C, 4, 0), (0x8FB3D, 4, 0), (0x9009D, 4, 0), (0x90AED, 4, 0),
        (0x95000, 4, 0), (0x952F1, 4, 0), (0x9AC51, 4, 0), (0x9B213, 4, 0),
        (0x9C40E, 4, 0), (0x9E7A0, 4, 0), (0x9FF94, 4, 0), (0xA0FF6, 4, 0),
        (0xA19DE, 4, 0), (0xA53CE, 4, 0), (0xA9FEF, 4, 0), (0xAC93F, 4, 0),
        (0xADCA3, 4, 0), (0xB1EA4, 4, 0), (0xB4FAD, 4, 0), (0xB6116, 4, 0),
        (0xB7500, 4, 0), (0xB76FE, 4, 0), (0xB8A9C, 4, 0), (0xBA7FF, 4, 0),
        (0xBB20C, 4, 0), (0xBBA1F, 4, 0), (0xBC642, 4, 0), (0xBCB92, 4, 0),
        (0xBCCAF, 4, 0), (0xC21EE, 4, 0), (0xC2D1A, 4, 0), (0xC385B, 4, 0),
        (0xC4AA1, 4, 0), (0xC5FC0, 4, 0), (0xC69A1, 4, 0), (0xC6AE3, 4, 0),
        (0xC9A16, 4, 0), (0xC9C49, 4, 0), (0xCB18C, 4, 0), (0xCEAE9, 4, 0),
        (0xCFB62, 4, 0), (0xD024C, 4, 0), (0xD2E07, 4, 0), (0xD5DBF, 4, 0),
        (0xD6602, 4, 0), (0xD8A1E, 4, 0), (0xD99A6, 4, 0), (0xD9B25, 4, 0),
        (0xDA493, 4, 0), (0xDBDB4, 4, 0), (0xDFC40, 4, 0), (0xE001D, 1, 0),
        (0xE005A, 1, 0), (0xE009A, 1, 0), (0xE00FB, 1, 0), (0xE011C, 1, 0),
        (0xE011D, 1, 0), (0xE0154, 1, 0), (0xE01F4, 1, 0), (0xE034E, 1, 0),
        (0xE038A, 1, 0), (0xE03A1, 1, 0), (0xE048D, 1, 0), (0xE04D7, 1, 0),
        (0xE0501, 1, 0), (0xE0584, 1, 0), (0xE05E9, 1, 0), (0xE05FF, 1, 0),
        (0xE06C5, 1, 0), (0xE06ED, 1, 0), (0xE06F7, 1, 0), (0xE079C, 1, 0),
        (0xE085D, 1, 0), (0xE0904, 1, 0), (0xE0967, 1, 0), (0xE09C2, 1, 0),
        (0xE09D8, 1, 0), (0xE0A03, 1, 0), (0xE0AA9, 1, 0), (0xE0AB0, 1, 0),
        (0xE0B98, 1, 0), (0xE0C3A, 1, 0), (0xE0CC2, 1, 0), (0xE0D6D, 1, 0),
        (0xE0DE3, 1, 0), (0xE0E79, 1, 0), (0xE0EFF, 1, 0), (0xE0F0E, 1, 0),
        (0xE0F24, 1, 0), (0xE0F85, 1, 0), (0xE1FFD, 4, 0), (0xE3C46, 4, 0),
        (0xE50ED, 4, 0), (0xE6022, 4, 0), (0xE638A, 4, 0), (0xE6448, 4, 0),
        (0xE7BB4, 4, 0), (0xE90BA, 4, 0), (0xEB6E5, 4, 0), (0xEEE89, 4, 0),
        (0xEFD0A, 4, 0), (0xEFFA1, 4, 0), (0xF016C, 0, 0), (0xF0428, 0, 0),
        (0xF0914, 0, 0), (0xF12CA, 0, 0), (0xF2F40, 0, 0), (0xF5FBE, 0, 0),
        (0xF82FB, 0, 0), (0xF8410, 0, 0), (0xF9274, 0, 0), (0xF95BB, 0, 0),
        (0xF9D63, 0, 0), (0xFA655, 0, 0), (0xFA65B, 0, 0), (0xFB00F, 0, 0),
        (0xFD96E, 0, 0), (0x1003EE, 0, 0), (0x100576, 0, 0), (0x10369F, 0, 0),
        (0x1042C5, 0, 0), (0x1070E5, 0, 0), (0x108545, 0, 0), (0x10B0B8, 0, 0),
        (0x10D310, 0, 0), (0x10DE19, 0, 0), (0x10E698, 0, 0), (0x10F663, 0, 0),
    ];
    /// Strings and whether a name may hold them: NFKC leaves them unchanged
    /// (by Python's unicodedata.normalize) and they hold neither a Maybe
    /// mark of U+0300..U+036F nor a Hangul V or T jamo.
    #[rustfmt::skip]
    const STRINGS: [(&str, bool); 300] = [
        ("=", true), ("=\u{0301}\u{093F}", false), ("=\u{0307}\u{0313}u", false),
        ("=\u{0308}\u{03C9}", false), ("=\u{0915}", true), ("=\u{AC01}", true),
        ("a", true), ("au\u{0345}", false), ("a\u{00FC}", true),
        ("a\u{0316}\u{093C}\u{0DD9}", false), ("a\u{1161}\u{0300}\u{0323}", false), ("a\u{1F60}u", true),
        ("a\u{3099}", true), ("e", true), ("ee", true),
        ("eo\u{0DD9}", true), ("eue\u{01CE}", true), ("e\u{0345}\u{1F60}", false),
        ("e\u{09C7}\u{0DD9}\u{0327}", false), ("e\u{0DCF}", true), ("e\u{1ECD}", true),
        ("o", true), ("o=", true), ("ou\u{093C}\u{0307}", false),
        ("o\u{00E2}", true), ("o\u{030C}\u{0DCF}", false), ("o\u{09C7}", true),
        ("o\u{0DD9}\u{093C}", true), ("s", true), ("s\u{0316}", true),
        ("s\u{0323}\u{1EA1}", false), ("s\u{03C9}e", true), ("s\u{0928}\u{03C9}", true),
        ("s\u{09B0}\u{1F60}", true), ("s\u{09D7}\u{0302}", false), ("s\u{0DD9}\u{00FC}\u{0DDC}", true),
        ("s\u{1100}e", true), ("u", true), ("u\u{0328}", false),
        ("u\u{0345}\u{0316}", false), ("u\u{0DCA}", true), ("u\u{AC00}\u{11A8}\u{AC01}", false),
        ("\u{00E2}", true), ("\u{00E2}\u{030C}", false), ("\u{00E2}\u{093F}\u{09C7}\u{AC00}", true),
        ("\u{00E2}\u{09C7}\u{093C}", true), ("\u{00E2}\u{09D7}\u{1100}", true), ("\u{00E2}\u{09D7}\u{3099}", true),
        ("\u{00E2}\u{1E63}\u{1161}\u{093F}", false), ("\u{00FC}", true), ("\u{00FC}\u{0328}\u{0313}", false),
        ("\u{00FC}\u{093F}\u{0302}\u{309A}", false), ("\u{00FC}\u{0DCF}\u{0328}", false), ("\u{00FC}\u{1F60}\u{0DCF}\u{0DD9}", true),
        ("\u{01CE}", true), ("\u{01CE}o", true), ("\u{01CE}\u{0316}", true),
        ("\u{01CE}\u{05B8}\u{030C}\u{03C9}", false), ("\u{0300}", false), ("\u{0300}=", false),
        ("\u{0300}s", false), ("\u{0300}\u{0307}\u{0DD9}\u{01CE}", false), ("\u{0300}\u{093C}", false),
        ("\u{0300}\u{09D7}\u{0DDC}", false), ("\u{0300}\u{1161}\u{1100}a", false), ("\u{0300}\u{1F60}", false),
        ("\u{0301}a\u{0DCF}", false), ("\u{0301}o", false), ("\u{0301}o\u{09C7}", false),
        ("\u{0301}\u{0307}\u{0323}", false), ("\u{0301}\u{0308}\u{0302}", false), ("\u{0301}\u{0DCA}=", false),
        ("\u{0302}", false), ("\u{0302}\u{01CE}\u{0327}", false), ("\u{0302}\u{05B8}", false),
        ("\u{0302}\u{093F}\u{0338}\u{0300}", false), ("\u{0302}\u{0DCA}\u{0301}u", false), ("\u{0302}\u{0DD9}\u{1EA1}\u{0304}", false),
        ("\u{0304}u", false), ("\u{0304}\u{0327}\u{1161}\u{11A8}", false), ("\u{0304}\u{0328}", false),
        ("\u{0304}\u{0338}\u{0313}\u{0323}", false), ("\u{0304}\u{1ECD}", false), ("\u{0307}", false),
        ("\u{0307}\u{01CE}", false), ("\u{0308}", false), ("\u{0308}\u{0300}\u{09BE}\u{1F60}", false),
        ("\u{0308}\u{0345}", false), ("\u{0308}\u{0DDC}", false), ("\u{0308}\u{304B}\u{09C7}", false),
        ("\u{0308}\u{309A}\u{0DCA}", false), ("\u{0308}\u{AC01}", false), ("\u{030C}", false),
        ("\u{030C}\u{0308}\u{093F}\u{05B8}", false), ("\u{030C}\u{030C}\u{05B8}\u{0304}", false), ("\u{030C}\u{05B0}\u{0915}\u{0327}", false),
        ("\u{030C}\u{09C7}", false), ("\u{030C}\u{1E63}\u{093F}", false), ("\u{0313}", false),
        ("\u{0313}\u{0302}\u{0345}", false), ("\u{0313}\u{030C}\u{09D7}", false), ("\u{0313}\u{1F60}\u{0328}", false),
        ("\u{0316}", true), ("\u{0316}o\u{03C9}\u{0DDC}", true), ("\u{0316}\u{309A}\u{0307}\u{0323}", false),
        ("\u{0323}", false), ("\u{0323}s", false), ("\u{0323}\u{03C9}", false),
        ("\u{0323}\u{1100}", false), ("\u{0323}\u{1ECD}", false), ("\u{0327}", false),
        ("\u{0327}\u{0323}\u{0DD9}\u{0327}", false), ("\u{0327}\u{09C7}", false), ("\u{0327}\u{1EA1}\u{0304}\u{0915}", false),
        ("\u{0327}\u{AC00}\u{0323}\u{0928}", false), ("\u{0328}", false), ("\u{0328}\u{0304}\u{09D7}", false),
        ("\u{0328}\u{0308}\u{05B8}\u{0345}", false), ("\u{0328}\u{0323}", false), ("\u{0328}\u{05B8}", false),
        ("\u{0328}\u{09BE}\u{0301}\u{0301}", false), ("\u{0328}\u{1EA1}\u{0328}\u{00E2}", false), ("\u{0338}", false),
        ("\u{0338}\u{09BE}\u{1E63}=", false), ("\u{0338}\u{0DCF}", false), ("\u{0345}", false),
        ("\u{0345}\u{0327}", false), ("\u{0345}\u{0DDC}", false), ("\u{0345}\u{11A8}\u{AC01}", false),
        ("\u{03C9}", true), ("\u{03C9}=", true), ("\u{03C9}\u{00FC}\u{09BE}", true),
        ("\u{05B0}", true), ("\u{05B0}=", true), ("\u{05B0}o", true),
        ("\u{05B0}\u{030C}\u{0338}", false), ("\u{05B0}\u{0313}\u{05B0}\u{0DCA}", false), ("\u{05B0}\u{09BE}", true),
        ("\u{05B0}\u{09C7}\u{00FC}", true), ("\u{05B0}\u{0DCA}\u{09C7}", false), ("\u{05B0}\u{0DCA}\u{1E63}", false),
        ("\u{05B0}\u{0DDC}\u{0301}\u{09C7}", false), ("\u{05B0}\u{304B}\u{0DCF}", true), ("\u{05B8}", true),
        ("\u{05B8}\u{0300}\u{0316}\u{1EA1}", false), ("\u{05B8}\u{030C}\u{09C7}=", false), ("\u{05B8}\u{093C}", false),
        ("\u{05B8}\u{093C}\u{09C7}u", false), ("\u{05B8}\u{09B0}\u{0302}", false), ("\u{05B8}\u{1E63}\u{0DD9}", true),
        ("\u{0915}", true), ("\u{0915}\u{0300}u", false), ("\u{0915}\u{09B0}\u{AC01}", true),
        ("\u{0915}\u{309A}\u{093F}\u{0328}", false), ("\u{0915}\u{AC00}", true), ("\u{0928}", true),
        ("\u{0928}=o", true), ("\u{0928}u\u{0301}", false), ("\u{0928}\u{0304}", false),
        ("\u{0928}\u{0323}", false), ("\u{0928}\u{09B0}", true), ("\u{093C}", true),
        ("\u{093C}\u{0307}o", false), ("\u{093C}\u{05B8}", true), ("\u{093C}\u{0928}", true),
        ("\u{093C}\u{09BE}\u{309A}", true), ("\u{093C}\u{0DCA}\u{1EA1}\u{1E63}", true), ("\u{093C}\u{11A8}\u{3099}\u{093C}", false),
        ("\u{093F}=", true), ("\u{093F}a\u{0323}", false), ("\u{093F}\u{00FC}\u{0308}", false),
        ("\u{093F}\u{0308}\u{304B}", false), ("\u{093F}\u{0915}", true), ("\u{093F}\u{3099}\u{0302}", false),
        ("\u{093F}\u{AC01}\u{0338}\u{304B}", false), ("\u{09B0}o", true), ("\u{09B0}\u{00E2}\u{0928}\u{09B0}", true),
        ("\u{09B0}\u{0308}", false), ("\u{09B0}\u{0313}\u{0DCA}", false), ("\u{09B0}\u{05B8}", true),
        ("\u{09BE}", true), ("\u{09BE}\u{00FC}", true), ("\u{09BE}\u{0302}\u{093F}", false),
        ("\u{09BE}\u{0308}\u{09D7}", false), ("\u{09BE}\u{0345}\u{0323}", false), ("\u{09BE}\u{1ECD}\u{09D7}", true),
        ("\u{09BE}\u{3099}", true), ("\u{09BE}\u{AC00}\u{09C7}\u{03C9}", true), ("\u{09C7}", true),
        ("\u{09C7}\u{00FC}\u{03C9}", true), ("\u{09C7}\u{0300}\u{0DCF}", false), ("\u{09C7}\u{0915}\u{0300}", false),
        ("\u{09C7}\u{0928}\u{0313}", false), ("\u{09C7}\u{09D7}\u{0DCF}\u{0302}", false), ("\u{09C7}\u{1F60}\u{030C}a", false),
        ("\u{09D7}", true), ("\u{09D7}\u{0327}\u{05B0}", false), ("\u{09D7}\u{05B8}", true),
        ("\u{09D7}\u{0DDC}\u{0316}\u{304B}", true), ("\u{09D7}\u{11A8}", false), ("\u{09D7}\u{1EA1}", true),
        ("\u{09D7}\u{3099}\u{1E63}", true), ("\u{0DCA}", true), ("\u{0DCA}\u{0DCF}\u{0345}", false),
        ("\u{0DCA}\u{1100}\u{0915}", true), ("\u{0DCA}\u{1E63}", true), ("\u{0DCA}\u{1EA1}", true),
        ("\u{0DCF}", true), ("\u{0DCF}\u{01CE}\u{0327}", false), ("\u{0DCF}\u{0323}\u{0DCF}", false),
        ("\u{0DCF}\u{0915}", true), ("\u{0DCF}\u{09C7}\u{0323}=", false), ("\u{0DCF}\u{1ECD}\u{0328}", false),
        ("\u{0DD9}", true), ("\u{0DD9}=\u{093F}a", true), ("\u{0DD9}u\u{0DCA}", true),
        ("\u{0DD9}\u{0308}\u{AC00}", false), ("\u{0DD9}\u{0DCF}", false), ("\u{0DD9}\u{3099}", true),
        ("\u{0DDC}", true), ("\u{0DDC}\u{309A}", true), ("\u{1100}s", true),
        ("\u{1100}\u{0300}", false), ("\u{1100}\u{0300}\u{309A}\u{304B}", false), ("\u{1100}\u{0915}", true),
        ("\u{1100}\u{093C}", true), ("\u{1161}e\u{11A8}\u{0DD9}", false), ("\u{1161}\u{0328}", false),
        ("\u{1161}\u{093C}e", false), ("\u{1161}\u{09BE}", false), ("\u{11A8}", false),
        ("\u{11A8}s\u{1100}", false), ("\u{11A8}\u{0308}", false), ("\u{11A8}\u{030C}\u{0338}", false),
        ("\u{11A8}\u{09D7}\u{030C}", false), ("\u{11A8}\u{09D7}\u{030C}\u{09BE}", false), ("\u{11A8}\u{1ECD}", false),
        ("\u{1E63}", true), ("\u{1E63}\u{0308}\u{0327}\u{0DD9}", false), ("\u{1E63}\u{0313}", false),
        ("\u{1E63}\u{093F}", true), ("\u{1E63}\u{0DCF}\u{0302}\u{1F60}", false), ("\u{1E63}\u{1ECD}\u{0338}", false),
        ("\u{1E63}\u{3099}", true), ("\u{1EA1}a\u{01CE}", true), ("\u{1EA1}\u{0304}\u{0304}", false),
        ("\u{1EA1}\u{0308}\u{11A8}", false), ("\u{1EA1}\u{05B0}\u{1EA1}\u{05B0}", true), ("\u{1EA1}\u{05B8}\u{09BE}\u{093C}", true),
        ("\u{1EA1}\u{09BE}\u{03C9}", true), ("\u{1EA1}\u{09BE}\u{11A8}", false), ("\u{1EA1}\u{0DCF}", true),
        ("\u{1EA1}\u{1ECD}", true), ("\u{1EA1}\u{1F60}", true), ("\u{1ECD}", true),
        ("\u{1ECD}e\u{0DCA}", true), ("\u{1ECD}ou", true), ("\u{1ECD}\u{01CE}", true),
        ("\u{1ECD}\u{01CE}\u{0308}\u{0345}", false), ("\u{1ECD}\u{01CE}\u{09D7}", true), ("\u{1F60}", true),
        ("\u{1F60}\u{0328}", false), ("\u{1F60}\u{0345}\u{1100}", false), ("\u{1F60}\u{05B0}a\u{05B8}", true),
        ("\u{1F60}\u{0DDC}\u{093F}\u{0301}", false), ("\u{1F60}\u{1ECD}\u{0915}\u{0307}", false), ("\u{304B}", true),
        ("\u{304B}o", true), ("\u{304B}\u{0313}\u{0302}\u{09D7}", false), ("\u{304B}\u{1F60}", true),
        ("\u{304B}\u{3099}", false), ("\u{304B}\u{3099}\u{0313}\u{09C7}", false), ("\u{304B}\u{AC01}", true),
        ("\u{3099}", true), ("\u{3099}\u{0300}", false), ("\u{3099}\u{304B}", true),
        ("\u{309A}", true), ("\u{309A}=\u{01CE}\u{11A8}", false), ("\u{309A}s", true),
        ("\u{309A}u\u{3099}", true), ("\u{309A}\u{0302}", false), ("\u{309A}\u{05B8}\u{0323}", false),
        ("\u{309A}\u{093F}\u{1F60}u", true), ("\u{309A}\u{304B}\u{00FC}", true), ("\u{AC00}", true),
        ("\u{AC00}\u{00E2}", true), ("\u{AC00}\u{00E2}e\u{0307}", false), ("\u{AC00}\u{0313}\u{0304}", false),
        ("\u{AC00}\u{03C9}\u{1F60}", true), ("\u{AC00}\u{05B0}\u{030C}", false), ("\u{AC00}\u{11A8}\u{0304}\u{0DDC}", false),
        ("\u{AC00}\u{1EA1}\u{0300}", false), ("\u{AC01}", true), ("\u{AC01}u\u{0304}\u{09C7}", false),
        ("\u{AC01}\u{01CE}\u{0DCA}\u{0DCF}", true), ("\u{AC01}\u{0304}", false), ("\u{AC01}\u{0308}", false),
        ("\u{AC01}\u{0316}\u{3099}\u{1EA1}", false), ("\u{AC01}\u{0DCF}\u{0DCA}\u{093C}", false), ("\u{AC01}\u{304B}", true),
    ];
    /// Code points and what the look-alike fold makes of them ("" for
    /// nothing), read again from confusables.json by the generator.
    #[rustfmt::skip]
    const LOOKALIKE_SAMPLES: [(u32, &str); 134] = [
        (0x006D, "rn"), (0x00DF, ""), (0x011F, ""), (0x01BB, ""), (0x01BD, "s"),
        (0x023E, ""), (0x0263, "y"), (0x0274, ""), (0x0280, ""), (0x028A, ""),
        (0x028D, "M"), (0x0315, ""), (0x0347, ""), (0x03A5, "Y"), (0x03B3, "y"),
        (0x03B5, ""), (0x03BC, ""), (0x03C3, ""), (0x0405, "S"), (0x040B, ""),
        (0x0415, "E"), (0x0430, ""), (0x0433, "r"), (0x0440, ""), (0x0441, ""),
        (0x0442, "T"), (0x044C, ""), (0x0455, "s"), (0x04AF, "y"), (0x04BD, "e"),
        (0x054F, "S"), (0x0578, "n"), (0x057C, "n"), (0x057F, ""), (0x062E, ""),
        (0x063A, ""), (0x069F, ""), (0x06D1, ""), (0x0767, ""), (0x076A, ""),
        (0x07C2, ""), (0x07ED, ""), (0x0805, ""), (0x091E, ""), (0x09A1, ""),
        (0x0AFD, ""), (0x0B71, ""), (0x0BF1, ""), (0x0C1F, ""), (0x0C92, ""),
        (0x0D0B, ""), (0x0D43, ""), (0x0D81, ""), (0x0E0F, ""), (0x0E38, ""),
        (0x0E9B, ""), (0x106F, ""), (0x10E7, "y"), (0x110B, ""), (0x1248, ""),
        (0x1283, ""), (0x12E8, ""), (0x13AC, "E"), (0x13B7, "M"), (0x13BD, "Y"),
        (0x13DA, "S"), (0x13F3, ""), (0x1444, ""), (0x1494, ""), (0x14C9, ""),
        (0x15F0, "M"), (0x162F, ""), (0x16CD, ""), (0x16D6, "M"), (0x1727, ""),
        (0x185E, ""), (0x1CD0, ""), (0x1D09, ""), (0x1D1B, "T"), (0x1D24, ""),
        (0x1D9A, ""), (0x1EFF, "y"), (0x1FEA, ""), (0x2039, ""), (0x212E, "e"),
        (0x2202, ""), (0x222A, ""), (0x2258, ""), (0x22A4, "T"), (0x22D8, ""),
        (0x2382, ""), (0x2559, ""), (0x29F1, ""), (0x2A99, ""), (0x2AEE, ""),
        (0x2C85, "r"), (0x2C98, "M"), (0x2EBE, ""), (0x2ECD, ""), (0x30A8, ""),
        (0x439B, ""), (0x5315, ""), (0x5DE5, ""), (0x6785, ""), (0x7AB1, ""),
        (0x7CE8, ""), (0x80F6, ""), (0x8779, ""), (0x9756, ""), (0x97ED, ""),
        (0xA4C2, ""), (0xA4D4, "T"), (0xA4DF, "M"), (0xA4F0, "E"), (0xA732, ""),
        (0xAB48, "r"), (0xAB72, "T"), (0xAB79, "Y"), (0xABA5, "S"), (0x10286, "E"),
        (0x10297, "T"), (0x102B2, "Y"), (0x10401, ""), (0x10CFA, ""), (0x11494, ""),
        (0x11700, "rn"), (0x118A4, "Y"), (0x118A6, "E"), (0x118AE, "E"), (0x118C1, "s"),
        (0x118C2, ""), (0x16F0A, "T"), (0x24FA1, ""), (0x26F2C, ""),
    ];
    /// The letters of the reserved names that [`LOOKALIKES`] was made for.
    const LOOKALIKE_LETTERS: &str = "emsty";
    // END GENERATED VECTORS
}
