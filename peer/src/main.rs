//! A broadcast chat server the way a typical Rust developer writes one:
//! tokio's current-thread runtime, tokio-tungstenite, a shared map of
//! rooms to unbounded channels, one task per connection (the shape of
//! tokio-tungstenite's `examples/server.rs`), and the `jsonwebtoken` crate.
//!
//! It speaks the part of wsgate's protocol the load generator uses:
//! `GET /ws?token=JWT[&room=NAME]` (HS256 with the secret in
//! `WSGATE_SECRET`; `401` otherwise), and in a room every text frame goes to
//! every member, the sender included, as `USER: LINE`. No presence notices,
//! commands or limits.
//!
//! ```text
//! WSGATE_SECRET=... wsgate-peer [--listen ADDR] [--read-buffer BYTES] [--send-each]
//! ```
//!
//! `--read-buffer` shrinks tungstenite's per-connection read buffer (default
//! 128 KiB) the way a careful developer would for many idle connections.
//! `--send-each` forwards each message with `SinkExt::send` (a write and a
//! flush per message, the other common shape) instead of
//! `StreamExt::forward` (which flushes only when the channel is empty).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_channel::mpsc::{UnboundedSender, unbounded};
use futures_util::{SinkExt, StreamExt, future, pin_mut, stream::TryStreamExt};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::{Message, WebSocketConfig};

type Tx = UnboundedSender<Message>;
type Rooms = Arc<Mutex<HashMap<String, HashMap<u64, Tx>>>>;

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

struct Auth {
    key: DecodingKey,
    validation: Validation,
}

async fn handle_connection(
    rooms: Rooms,
    auth: Arc<Auth>,
    config: WebSocketConfig,
    send_each: bool,
    stream: TcpStream,
    id: u64,
) {
    let mut who: Option<(String, String)> = None;
    // why: the error type is tungstenite's (an HTTP response), not ours.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let mut token = None;
        let mut room = "lobby".to_string();
        for pair in req.uri().query().unwrap_or("").split('&') {
            if let Some(t) = pair.strip_prefix("token=") {
                token = Some(t);
            } else if let Some(r) = pair.strip_prefix("room=") {
                room = r.to_string();
            }
        }
        let claims = token.and_then(|t| decode::<Claims>(t, &auth.key, &auth.validation).ok());
        match claims {
            Some(data) if req.uri().path() == "/ws" => {
                who = Some((data.claims.sub, room));
                Ok(resp)
            }
            _ => {
                let mut err = ErrorResponse::new(Some("invalid token".into()));
                *err.status_mut() = StatusCode::UNAUTHORIZED;
                Err(err)
            }
        }
    };
    let ws_stream =
        match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
        {
            Ok(ws) => ws,
            Err(_) => return,
        };
    let Some((user, room)) = who else {
        return;
    };

    let (tx, rx) = unbounded();
    rooms
        .lock()
        .unwrap()
        .entry(room.clone())
        .or_default()
        .insert(id, tx);

    let (mut outgoing, incoming) = ws_stream.split();

    let broadcast_incoming = incoming.try_for_each(|msg| {
        if let Message::Text(text) = msg {
            let line = Message::text(format!("{user}: {}", text.as_str()));
            let rooms = rooms.lock().unwrap();
            if let Some(members) = rooms.get(&room) {
                for member in members.values() {
                    let _ = member.unbounded_send(line.clone());
                }
            }
        }
        future::ok(())
    });

    if send_each {
        let mut rx = rx;
        let receive_from_others = async move {
            while let Some(msg) = rx.next().await {
                if outgoing.send(msg).await.is_err() {
                    break;
                }
            }
        };
        pin_mut!(broadcast_incoming, receive_from_others);
        future::select(broadcast_incoming, receive_from_others).await;
    } else {
        let receive_from_others = rx.map(Ok).forward(outgoing);
        pin_mut!(broadcast_incoming, receive_from_others);
        future::select(broadcast_incoming, receive_from_others).await;
    }

    let mut rooms = rooms.lock().unwrap();
    if let Some(members) = rooms.get_mut(&room) {
        members.remove(&id);
        if members.is_empty() {
            rooms.remove(&room);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let mut config = WebSocketConfig::default();
    let mut send_each = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .and_then(|a| a.parse().ok())
                    .expect("--listen ADDR")
            }
            "--read-buffer" => {
                let n: usize = args
                    .next()
                    .and_then(|a| a.parse().ok())
                    .expect("--read-buffer BYTES");
                config = config.read_buffer_size(n).write_buffer_size(0);
            }
            "--send-each" => send_each = true,
            _ => {
                eprintln!(
                    "usage: WSGATE_SECRET=... wsgate-peer [--listen ADDR] [--read-buffer BYTES] [--send-each]"
                );
                std::process::exit(2);
            }
        }
    }
    let secret = std::env::var("WSGATE_SECRET").expect("WSGATE_SECRET");
    let auth = Arc::new(Auth {
        key: DecodingKey::from_secret(secret.as_bytes()).expect("HS256 key"),
        validation: Validation::new(Algorithm::HS256),
    });
    let rooms = Rooms::default();
    let listener = TcpListener::bind(listen).await.expect("bind");
    eprintln!("listening on {}", listener.local_addr().unwrap());
    let mut next_id = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        tokio::spawn(handle_connection(
            rooms.clone(),
            auth.clone(),
            config,
            send_each,
            stream,
            next_id,
        ));
    }
}
