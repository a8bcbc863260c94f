//! The Socket.IO peer, spoken as Engine.IO v4 packets over a WebSocket (no polling first):
//! `GET /socket.io/?EIO=4&transport=websocket`.
//!
//! | Packet | Meaning |
//! | --- | --- |
//! | `0{"sid":..}` ← | Engine.IO open; the client answers `40` (Socket.IO connect, `/`) |
//! | `40{"sid":..}` ← | connected: the session is ready |
//! | `2` ← / `3` → | Engine.IO ping, answered with a pong |
//! | `42["join",R]` → | join room `R`; `42["joined",R]` ← |
//! | `42["pub",{"room":R,"body":B}]` → | `42["msg",{"room":R,"body":B}]` ← to every member |
//! | `42["echo",{"body":B}]` → | the same event back to the sender |
//! | `1`, `41` ← | Engine.IO close, Socket.IO disconnect |
//! | `44{..}` ← | Socket.IO connect error |

use super::{Incoming, Protocol, Stamp, json_string_after, push_json_string};
use crate::Result;
use crate::ws::{Opcode, Outbox, Upgrade};

/// Engine.IO v4 / Socket.IO v5 framing.
#[derive(Debug, Default)]
pub struct SocketIo;

impl Protocol for SocketIo {
    fn name(&self) -> &'static str {
        "socketio"
    }

    fn upgrade(&self, url_path: &str, _user: &str) -> Result<Upgrade> {
        Ok(Upgrade {
            path: if url_path.is_empty() || url_path == "/" {
                "/socket.io/?EIO=4&transport=websocket"
            } else {
                url_path
            }
            .to_owned(),
            headers: Vec::new(),
        })
    }

    fn greets(&self) -> bool {
        true
    }

    #[inline]
    fn receive(&self, payload: &[u8], text: bool, out: &mut Outbox) -> Incoming {
        if !text {
            return Incoming::Other;
        }
        match payload {
            // An event: the only hot path.
            [b'4', b'2', event @ ..] => {
                let event = event.strip_prefix(b"[\"").unwrap_or(b"");
                if event.starts_with(b"msg\"") || event.starts_with(b"echo\"") {
                    json_string_after(event, br#""body""#)
                        .and_then(Stamp::read_text)
                        .map_or(Incoming::Other, Incoming::Message)
                } else if event.starts_with(b"joined\"") {
                    Incoming::Joined
                } else {
                    Incoming::Other
                }
            }
            [b'2', rest @ ..] => {
                out.queue_with(Opcode::Text, |buf| {
                    buf.push(b'3');
                    buf.extend_from_slice(rest);
                });
                Incoming::Other
            }
            [b'0', ..] => {
                out.queue(Opcode::Text, b"40");
                Incoming::Other
            }
            [b'4', b'0', ..] => Incoming::Ready,
            [b'4', b'4', ..] => Incoming::Closing(format!(
                "connect error: {}",
                String::from_utf8_lossy(payload)
            )),
            [b'4', b'1', ..] => Incoming::Closing("Socket.IO disconnect".into()),
            [b'1', ..] => Incoming::Closing("Engine.IO close".into()),
            _ => Incoming::Other,
        }
    }

    fn join(&self, room: &str, out: &mut Outbox) {
        out.queue_with(Opcode::Text, |buf| {
            buf.extend_from_slice(br#"42["join","#);
            push_json_string(buf, room);
            buf.push(b']');
        });
    }

    fn joins_acknowledged(&self) -> bool {
        true
    }

    #[inline]
    fn publish(&self, room: &str, _id: u64, stamp: Stamp, body: usize, out: &mut Outbox) {
        out.queue_with(Opcode::Text, |buf| {
            buf.extend_from_slice(br#"42["pub",{"room":"#);
            push_json_string(buf, room);
            buf.extend_from_slice(br#","body":""#);
            stamp.write_text(buf, body);
            buf.extend_from_slice(b"\"}]");
        });
    }

    fn echo(&self, _room: &str, _id: u64, stamp: Stamp, body: usize, out: &mut Outbox) {
        out.queue_with(Opcode::Text, |buf| {
            buf.extend_from_slice(br#"42["echo",{"body":""#);
            stamp.write_text(buf, body);
            buf.extend_from_slice(b"\"}]");
        });
    }

    fn acks_publishes(&self) -> bool {
        false
    }

    fn delivers_to_sender(&self) -> bool {
        true
    }

    fn broadcast_example(&self, room: &str, stamp: Stamp, body: usize) -> (bool, Vec<u8>) {
        let mut text = br#"42["msg",{"room":"#.to_vec();
        push_json_string(&mut text, room);
        text.extend_from_slice(br#","body":""#);
        stamp.write_text(&mut text, body);
        text.extend_from_slice(b"\"}]");
        (true, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::decode_client_frames;

    const STAMP: Stamp = Stamp {
        sent_ns: 0xabc,
        sender: 9,
    };

    fn sent(out: &Outbox) -> Vec<String> {
        decode_client_frames(out.bytes())
            .into_iter()
            .map(|(first, payload)| {
                assert_eq!(first, 0x81, "text frames");
                String::from_utf8(payload).unwrap()
            })
            .collect()
    }

    #[test]
    fn the_handshake_answers_open_and_waits_for_connect() {
        let mut out = Outbox::default();
        let open = br#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(SocketIo.receive(open, true, &mut out), Incoming::Other);
        assert_eq!(sent(&out), ["40"]);
        assert_eq!(
            SocketIo.receive(br#"40{"sid":"def"}"#, true, &mut out),
            Incoming::Ready
        );
        assert!(matches!(
            SocketIo.receive(br#"44{"message":"nope"}"#, true, &mut out),
            Incoming::Closing(_)
        ));
    }

    #[test]
    fn pings_are_answered_with_pongs() {
        let mut out = Outbox::default();
        assert_eq!(SocketIo.receive(b"2", true, &mut out), Incoming::Other);
        assert_eq!(SocketIo.receive(b"2probe", true, &mut out), Incoming::Other);
        assert_eq!(sent(&out), ["3", "3probe"]);
    }

    #[test]
    fn events_are_encoded_and_classified() {
        let mut out = Outbox::default();
        SocketIo.join("bench:r", &mut out);
        SocketIo.publish("bench:r", 0, STAMP, 32, &mut out);
        SocketIo.echo("", 0, STAMP, 32, &mut out);
        let sent = sent(&out);
        assert_eq!(sent[0], r#"42["join","bench:r"]"#);
        let publish: serde_json::Value = serde_json::from_str(&sent[1][2..]).unwrap();
        assert_eq!(publish[0], "pub");
        assert_eq!(publish[1]["room"], "bench:r");
        let body = publish[1]["body"].as_str().unwrap();
        assert_eq!(body.len(), 32);
        let echo: serde_json::Value = serde_json::from_str(&sent[2][2..]).unwrap();
        assert_eq!(echo[0], "echo");

        let msg = format!(r#"42["msg",{{"room":"bench:r","body":"{body}"}}]"#);
        assert_eq!(
            SocketIo.receive(msg.as_bytes(), true, &mut out),
            Incoming::Message(STAMP)
        );
        assert_eq!(
            SocketIo.receive(sent[2].as_bytes(), true, &mut out),
            Incoming::Message(STAMP)
        );
        assert_eq!(
            SocketIo.receive(br#"42["joined","bench:r"]"#, true, &mut out),
            Incoming::Joined
        );
        assert_eq!(
            SocketIo.receive(br#"42["other",1]"#, true, &mut out),
            Incoming::Other
        );
        assert!(matches!(
            SocketIo.receive(b"1", true, &mut out),
            Incoming::Closing(_)
        ));
    }
}
