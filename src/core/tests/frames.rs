//! WebSocket frames as the peer sends them: binary refused `1003`, frames
//! too big refused `1009` before they are buffered, protocol violations
//! (`1002`, `1007`), pings answered in order, and the two ways a peer
//! ends a WebSocket: the close handshake and a half-close of TCP. Frames
//! cut anywhere across reads are read whole, and tungstenite's state is
//! held only while they span reads.
//! Fragments charged against the message limit are in `flow`.

use tungstenite::Message;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::testkit::{Harness, masked_frame};

fn closed_with(h: &mut Harness, id: crate::core::ConnId) -> u16 {
    h.close_frame(id).expect("a close frame").0
}

#[test]
fn binary_is_refused_1003() {
    let mut h = Harness::default();
    let a = h.open("alice");
    h.ws_send(a, Message::binary(vec![1, 2, 3]));
    assert_eq!(closed_with(&mut h, a), 1003);
}

#[test]
fn too_big_1009_before_buffering_it() {
    let mut h = Harness::default();
    let a = h.open("alice");
    // Only the header of a 1 GiB frame: refused at once.
    h.send(a, &[0x81, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4]);
    assert_eq!(closed_with(&mut h, a), 1009);
    let b = h.open("bob");
    h.say(b, &"x".repeat(64 * 1024 + 1));
    assert_eq!(closed_with(&mut h, b), 1009);
    let c = h.open("carol");
    h.say(c, &"x".repeat(64 * 1024));
    assert!(h.texts(c).iter().any(|t| t.len() == 64 * 1024 + 7));
}

#[test]
fn protocol_violations() {
    let cases: [(&str, &[u8], u16); 5] = [
        ("unmasked", &[0x81, 0x02, b'h', b'i'], 1002),
        ("reserved bits", &[0xC1, 0x80, 0, 0, 0, 0], 1002),
        ("reserved opcode", &[0x83, 0x80, 0, 0, 0, 0], 1002),
        ("continuation first", &[0x80, 0x80, 0, 0, 0, 0], 1002),
        ("bad utf-8", &[0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28], 1007),
    ];
    for (name, bytes, code) in cases {
        let mut h = Harness::default();
        let a = h.open("alice");
        h.send(a, bytes);
        assert_eq!(closed_with(&mut h, a), code, "{name}");
        assert_eq!(h.server.websockets(), 0, "{name}");
    }
}

#[test]
fn ping_is_answered_in_order() {
    let mut h = Harness::default();
    let a = h.open("alice");
    h.texts(a);
    h.ws_send(a, Message::Ping(vec![7].into()));
    let got = h.messages(a);
    assert_eq!(got, vec![Message::Pong(vec![7].into())]);
}

#[test]
fn client_close_is_answered_and_the_socket_released() {
    let mut h = Harness::default();
    let a = h.open("alice");
    let b = h.open("bob");
    h.texts(b);
    h.ws_send(a, Message::Close(None));
    assert!(h.messages(a).iter().any(|m| matches!(m, Message::Close(_))));
    assert!(h.peer(a).shut);
    assert_eq!(h.texts(b), vec!["System: alice has left the chat"]);
    h.hang_up(a);
    assert_eq!(h.server.connections(), 1);
}

#[test]
fn a_half_closed_websocket_is_gone() {
    let mut h = Harness::default();
    let a = h.open("alice");
    let b = h.open("bob");
    h.texts(b);
    h.half_close(a);
    assert!(h.peer(a).dropped);
    assert_eq!(h.texts(b), vec!["System: alice has left the chat"]);
}

/// Every frame cut into one-byte reads: a message, a fragmented one with a
/// ping between its fragments, another message, then a close. tungstenite's
/// state is held exactly while a frame or a message spans reads (an idle
/// WebSocket gives it back), and nothing is lost when it is given back.
#[test]
fn frames_cut_into_one_byte_reads_are_read_whole() {
    let mut h = Harness::new(|c| {
        c.limits.message_rate = None;
        c.echo = true;
    });
    let a = h.open("alice");
    h.messages(a);
    assert!(!h.server.holds_protocol(a), "a new WebSocket holds none");
    let mut bytes = masked_frame(true, 1, b"one");
    let fragmented_from = bytes.len();
    bytes.extend(masked_frame(false, 1, b"tw"));
    bytes.extend(masked_frame(true, 9, b"p"));
    bytes.extend(masked_frame(true, 0, b"o"));
    let whole_from = bytes.len();
    bytes.extend(masked_frame(true, 1, b"three"));
    let close_from = bytes.len();
    bytes.extend(masked_frame(true, 8, &1000u16.to_be_bytes()));
    for (at, byte) in bytes.iter().enumerate() {
        if at == fragmented_from || at == whole_from || at == close_from {
            assert!(!h.server.holds_protocol(a), "between messages, at {at}");
        }
        h.send(a, &[*byte]);
        if (fragmented_from..whole_from - 1).contains(&at) {
            assert!(h.server.holds_protocol(a), "within a message, at {at}");
        }
        if let Err(e) = h.server.check_consistency() {
            panic!("after byte {at}: {e}");
        }
    }
    assert_eq!(
        h.messages(a),
        vec![
            Message::text("one"),
            Message::Pong(b"p".to_vec().into()),
            Message::text("two"),
            Message::text("three"),
            Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into()
            })),
        ]
    );
    assert!(h.peer(a).shut);
}
