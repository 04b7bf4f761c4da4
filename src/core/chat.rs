//! What chat messages look like on the wire, in text mode (PROTOCOL §3)
//! and JSON mode (§4), and how client messages are read.

use serde::Deserialize;
use serde_json::json;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::auth::{SYSTEM_NAME, forbidden_in_line};
use crate::http::upgrade::Mode;

/// Something that happened in a room.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A chat line from `from`.
    Message {
        /// The sender.
        from: &'a str,
        /// The line.
        text: &'a str,
    },
    /// A user's first connection joined.
    Join {
        /// Who.
        user: &'a str,
    },
    /// A user's last connection left.
    Leave {
        /// Who.
        user: &'a str,
    },
}

impl Event<'_> {
    /// Text mode: `USER: LINE`, `System: USER joined the chat`,
    /// `System: USER has left the chat`.
    pub fn text(&self) -> String {
        match self {
            Event::Message { from, text } => format!("{from}: {text}"),
            Event::Join { user } => format!("{SYSTEM_NAME}: {user} joined the chat"),
            Event::Leave { user } => format!("{SYSTEM_NAME}: {user} has left the chat"),
        }
    }

    /// JSON mode. `seq` and `ts` are used by messages only.
    pub fn json(&self, room: &str, seq: u64, ts: u64) -> String {
        match self {
            Event::Message { from, text } => json!({
                "type": "message", "room": room, "from": from, "text": text, "seq": seq, "ts": ts,
            }),
            Event::Join { user } => json!({ "type": "join", "room": room, "user": user }),
            Event::Leave { user } => json!({ "type": "leave", "room": room, "user": user }),
        }
        .to_string()
    }
}

/// JSON mode: what a resuming client is told first (PROTOCOL §4): the
/// room's epoch and last `seq` now, and whether the messages that follow
/// are everything it missed.
pub fn resume_json(room: &str, epoch: &str, seq: u64, recovered: bool) -> String {
    json!({ "type": "resume", "room": room, "epoch": epoch, "seq": seq, "recovered": recovered })
        .to_string()
}

/// A reply to one connection alone.
#[derive(Clone, Debug)]
pub enum Reply<'a> {
    /// An error that does not end the connection: a machine code (JSON
    /// mode) and a short phrase.
    Error(&'static str, &'static str),
    /// The users in the room.
    Who(Vec<&'a str>),
    /// A refresh worked; the token's new `exp` in UNIX seconds.
    Refreshed(u64),
    /// The token expires in this many seconds.
    Expiring(u64),
    /// An embedding program's answer to a command.
    Answer(String),
}

impl Reply<'_> {
    /// Renders for text or JSON mode.
    pub fn render(&self, mode: Mode) -> String {
        let json_mode = mode == Mode::Json;
        match (self, json_mode) {
            (Reply::Error(_, detail), false) => format!("{SYSTEM_NAME}: error: {detail}"),
            (Reply::Error(code, detail), true) => {
                json!({ "type": "error", "code": code, "detail": detail }).to_string()
            }
            (Reply::Who(users), false) => format!("{SYSTEM_NAME}: users: {}", users.join(", ")),
            (Reply::Who(users), true) => json!({ "type": "who", "users": users }).to_string(),
            (Reply::Refreshed(_), false) => format!("{SYSTEM_NAME}: token refreshed"),
            (Reply::Refreshed(exp), true) => json!({ "type": "refreshed", "exp": exp }).to_string(),
            (Reply::Expiring(secs), false) => {
                format!("{SYSTEM_NAME}: token expires in {secs}s, send /refresh TOKEN")
            }
            (Reply::Expiring(secs), true) => json!({ "type": "expiring", "in": secs }).to_string(),
            (Reply::Answer(text), false) => format!("{SYSTEM_NAME}: {text}"),
            (Reply::Answer(text), true) => json!({ "type": "answer", "text": text }).to_string(),
        }
    }
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Send a chat line.
    Message(String),
    /// List the users in the room.
    Who,
    /// Extend this connection's life with a new token.
    Refresh(String),
    /// A text-mode command the server does not know (without the `/`):
    /// an embedding program's observers may answer it.
    Command(String),
}

/// Why a client message was not understood; answered with an error reply.
pub type Refusal = (&'static str, &'static str);

/// Reads a text-mode line: `/who`, `/refresh TOKEN`, other `/` commands,
/// or a chat line. One trailing line ending (`\n` or `\r\n`) is not part
/// of the line: `websocat` sends each line with its newline.
pub fn parse_text(line: &str) -> Result<Request, Refusal> {
    let line = match line.strip_suffix('\n') {
        Some(l) => l.strip_suffix('\r').unwrap_or(l),
        None => line,
    };
    if let Some(command) = line.strip_prefix('/') {
        let command = command.trim_end();
        return match command.split_once(' ') {
            None if command == "who" => Ok(Request::Who),
            Some(("refresh", token)) if !token.trim().is_empty() => {
                Ok(Request::Refresh(token.trim().to_string()))
            }
            None if command == "refresh" => Err(("bad_message", "usage: /refresh TOKEN")),
            _ if command.chars().any(forbidden_in_line) => {
                Err(("control_characters", "control characters are not allowed"))
            }
            _ => Ok(Request::Command(command.to_string())),
        };
    }
    check_line(line)?;
    Ok(Request::Message(line.to_string()))
}

#[derive(Deserialize)]
struct JsonIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    token: Option<std::borrow::Cow<'a, str>>,
}

/// Reads a JSON-mode message.
pub fn parse_json(raw: &str) -> Result<Request, Refusal> {
    const BAD: Refusal = ("bad_message", "expected a JSON object with a known type");
    let msg: JsonIn<'_> = serde_json::from_str(raw).map_err(|_| BAD)?;
    match (msg.kind.as_ref(), msg.text, msg.token) {
        ("message", Some(text), _) => {
            check_line(&text)?;
            Ok(Request::Message(text.into_owned()))
        }
        ("who", ..) => Ok(Request::Who),
        ("refresh", _, Some(token)) => Ok(Request::Refresh(token.into_owned())),
        _ => Err(BAD),
    }
}

/// A chat line may hold no control character but tab, no line or
/// paragraph separator and no bidirectional control: a newline would let a
/// sender print a second line that looks like another user's, or like
/// `System:`, and a right-to-left override could make a line read as
/// someone else's. (Zero-width joiners, which emoji need, are allowed.)
fn check_line(line: &str) -> Result<(), Refusal> {
    if line.chars().any(crate::auth::forbidden_in_line) {
        return Err(("control_characters", "control characters are not allowed"));
    }
    Ok(())
}

/// Appends one unmasked, final text frame holding `payload` to `out`
/// (server frames are never masked, so the bytes are the same for every
/// receiver and a broadcast encodes once).
pub fn encode_text_frame(payload: &[u8], out: &mut Vec<u8>) {
    encode_frame(Data::Text, payload, out);
}

/// Appends one unmasked, final data frame of kind `data` to `out`.
pub fn encode_frame(data: Data, payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::Data(data),
        mask: None,
    };
    out.reserve(header.len(payload.len() as u64) + payload.len());
    // Writing to a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_mode_lines() {
        assert_eq!(
            Event::Message {
                from: "alice",
                text: "hi"
            }
            .text(),
            "alice: hi"
        );
        assert_eq!(
            Event::Join { user: "bob" }.text(),
            "System: bob joined the chat"
        );
        assert_eq!(
            Event::Leave { user: "bob" }.text(),
            "System: bob has left the chat"
        );
        assert_eq!(
            Reply::Error("x", "unknown command").render(Mode::Text),
            "System: error: unknown command"
        );
        assert_eq!(
            Reply::Who(vec!["a", "b"]).render(Mode::Text),
            "System: users: a, b"
        );
    }

    #[test]
    fn json_mode_lines() {
        let m: serde_json::Value = serde_json::from_str(
            &Event::Message {
                from: "a",
                text: "t\"x",
            }
            .json("lobby", 7, 99),
        )
        .unwrap();
        assert_eq!(
            m,
            json!({"type":"message","room":"lobby","from":"a","text":"t\"x","seq":7,"ts":99})
        );
        let w: serde_json::Value =
            serde_json::from_str(&Reply::Who(vec!["a"]).render(Mode::Json)).unwrap();
        assert_eq!(w, json!({"type":"who","users":["a"]}));
    }

    #[test]
    fn parses_client_messages() {
        assert_eq!(parse_text("hello"), Ok(Request::Message("hello".into())));
        assert_eq!(parse_text("/who"), Ok(Request::Who));
        assert_eq!(
            parse_text("/refresh a.b.c"),
            Ok(Request::Refresh("a.b.c".into()))
        );
        assert_eq!(parse_text("/refresh").unwrap_err().0, "bad_message");
        assert_eq!(
            parse_text("/who am i"),
            Ok(Request::Command("who am i".into()))
        );
        assert_eq!(parse_text("/nope"), Ok(Request::Command("nope".into())));
        assert_eq!(
            parse_text("/x\u{202E}").unwrap_err().0,
            "control_characters"
        );
        assert_eq!(
            parse_text("a\nSystem: fake").unwrap_err().0,
            "control_characters"
        );
        assert_eq!(
            parse_text("tab\tok"),
            Ok(Request::Message("tab\tok".into()))
        );
        assert_eq!(
            parse_json(r#"{"type":"message","text":"h\u00e9"}"#),
            Ok(Request::Message("hé".into()))
        );
        assert_eq!(parse_json(r#"{"type":"who"}"#), Ok(Request::Who));
        assert_eq!(
            parse_json(r#"{"type":"refresh","token":"t"}"#),
            Ok(Request::Refresh("t".into()))
        );
        assert_eq!(
            Reply::Expiring(30).render(Mode::Text),
            "System: token expires in 30s, send /refresh TOKEN"
        );
        assert_eq!(
            Reply::Refreshed(5).render(Mode::Json),
            r#"{"exp":5,"type":"refreshed"}"#
        );
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"type":"message"}"#,
            r#"{"type":5}"#,
            r#"{"type":"x"}"#,
        ] {
            assert_eq!(parse_json(bad).unwrap_err().0, "bad_message", "{bad}");
        }
    }

    #[test]
    fn line_endings_and_invisible_characters() {
        assert_eq!(parse_text("line\n"), Ok(Request::Message("line".into())));
        assert_eq!(parse_text("line\r\n"), Ok(Request::Message("line".into())));
        assert_eq!(parse_text("/who\n"), Ok(Request::Who));
        assert_eq!(parse_text("two\n\n").unwrap_err().0, "control_characters");
        assert_eq!(
            parse_text("a\u{2028}System: x").unwrap_err().0,
            "control_characters"
        );
        assert_eq!(
            parse_text("x\u{202E}olleh").unwrap_err().0,
            "control_characters"
        );
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(parse_text(family), Ok(Request::Message(family.into())));
    }

    #[test]
    fn frames_encode_all_lengths() {
        for len in [0usize, 125, 126, 65_535, 65_536] {
            let mut out = Vec::new();
            encode_text_frame(&vec![b'a'; len], &mut out);
            assert_eq!(out[0], 0x81);
            let header = match len {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            assert_eq!(out.len(), header + len);
        }
    }
}
