//! How peer-controlled values appear in log lines.
//!
//! A log line is `key=value` fields on one line. Anything a peer chose (a
//! user name from a token, a request target, a room, a header) goes
//! through [`quoted`], and nothing else does that job: the value is written
//! in double quotes with `"` and `\` escaped and every character that
//! could break or disguise the line written as `\u{…}`: controls (C0, DEL,
//! C1 such as U+0085 and U+009B), line and paragraph separators,
//! bidirectional controls, and other format or default-ignorable
//! characters. So a `sub` of `x peer=6.6.6.6 room=admin` logs as
//! `user="x peer=6.6.6.6 room=admin"`, one field, and no value can start a
//! new line or reorder what a terminal shows.

use std::fmt;

/// A peer-controlled value, quoted and escaped for a log line.
pub struct Quoted<'a>(&'a str);

/// Quotes and escapes `value` for a log line (see the module docs).
pub fn quoted(value: &str) -> Quoted<'_> {
    Quoted(value)
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        let mut rest = self.0;
        while let Some(i) = rest.find(needs_escape) {
            f.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)?;
        f.write_char('"')
    }
}

/// True for a character that is written escaped.
fn needs_escape(c: char) -> bool {
    c == '"'
        || c == '\\'
        || c.is_control()
        || crate::auth::forbidden_in_line(c)
        || crate::auth::is_invisible(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> String {
        quoted(s).to_string()
    }

    #[test]
    fn plain_values_are_only_quoted() {
        assert_eq!(q("alice"), "\"alice\"");
        assert_eq!(q("Bob Smith"), "\"Bob Smith\"");
        assert_eq!(q("ünïcode 张伟"), "\"ünïcode 张伟\"");
        assert_eq!(q(""), "\"\"");
    }

    #[test]
    fn nothing_can_break_or_forge_a_line() {
        assert_eq!(
            q("x peer=6.6.6.6 room=admin"),
            "\"x peer=6.6.6.6 room=admin\""
        );
        assert_eq!(q("a\"b\\c"), "\"a\\\"b\\\\c\"");
        for (raw, shown) in [
            ("\n", "\\u{a}"),
            ("\r", "\\u{d}"),
            ("\u{7f}", "\\u{7f}"),
            ("\u{85}", "\\u{85}"),
            ("\u{9b}", "\\u{9b}"),
            ("\u{2028}", "\\u{2028}"),
            ("\u{2029}", "\\u{2029}"),
            ("\u{202e}", "\\u{202e}"),
            ("\u{2066}", "\\u{2066}"),
            ("\u{200b}", "\\u{200b}"),
            ("\u{feff}", "\\u{feff}"),
        ] {
            let out = q(&format!("a{raw}b"));
            assert_eq!(out, format!("\"a{shown}b\""), "{raw:?}");
            assert!(!out.chars().any(needs_escape_inside), "{out:?}");
        }
    }

    /// What may never appear raw between the quotes.
    fn needs_escape_inside(c: char) -> bool {
        c.is_control() || crate::auth::forbidden_in_line(c) || crate::auth::is_invisible(c)
    }
}
