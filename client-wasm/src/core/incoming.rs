//! What each server frame does.

use crate::prelude::*;
use chorus_protocol::{ClientMessage, ErrorCode, ServerMessage};

use super::connection::{Notice, Phase};
use super::rooms::Accept;
use super::{Ack, Core, Event, HistoryError, HistoryPage, Millis, PublishError};

/// Refusals of a join that may pass: the join is sent again after a backoff delay.
fn is_transient(code: u16) -> bool {
    matches!(
        ErrorCode::from_u16(code),
        Some(ErrorCode::RateLimited | ErrorCode::Internal | ErrorCode::Unavailable)
    )
}

impl Core {
    /// A frame on a socket that is open or awaiting its welcome.
    pub(super) fn on_frame(&mut self, frame: &[u8], now: Millis) {
        // The npm package decodes without serde: the same result in less wasm.
        #[cfg(feature = "js")]
        let decoded = ServerMessage::decode_compact(frame, usize::MAX);
        #[cfg(not(feature = "js"))]
        let decoded = ServerMessage::decode(frame, usize::MAX);
        let Ok(message) = decoded else {
            self.emit(Event::Error {
                code: ErrorCode::BadFrame.as_u16(),
                message: "undecodable frame from the server".to_owned(),
                room: None,
            });
            return;
        };
        let open = self.is_open();
        match message {
            ServerMessage::Welcome {
                session,
                user,
                heartbeat_ms,
                heartbeat_timeout_ms,
                limits,
                ..
            } if !open => self.welcome(
                now,
                session,
                user,
                heartbeat_ms,
                heartbeat_timeout_ms,
                limits,
            ),
            ServerMessage::Disconnect {
                code,
                reason,
                reconnect,
            } => {
                self.notice = Some(Notice {
                    code,
                    reason,
                    reconnect,
                });
            }
            // Nothing but the welcome and a refusal precede the welcome.
            _ if !open => {}
            ServerMessage::Welcome { .. } => {}
            ServerMessage::Joined {
                room,
                position,
                members,
                recovery,
            } => {
                if self.rooms.joined(&room, position, recovery) {
                    self.emit(Event::Joined {
                        room,
                        members,
                        position,
                        recovery,
                    });
                }
            }
            ServerMessage::Left { room } => {
                if !self.rooms.left(&room) {
                    self.emit(Event::Left { room });
                }
            }
            ServerMessage::Message {
                room,
                seq,
                id,
                sender,
                ts,
                body,
            } => {
                match self.rooms.accept(&room, seq) {
                    Accept::Deliver => {}
                    Accept::Drop => return,
                    Accept::Gap => return self.resume_after_gap(room, now),
                }
                // Our own publish, echoed: proof the server has it, whether or not its ack
                // ever arrives (it may have been lost with a connection).
                if self.user.as_deref() == Some(sender.as_str())
                    && self.outbox.is_pending(id, &room)
                {
                    self.outbox.take(id);
                    let ack = Ack {
                        room: room.clone(),
                        id,
                        seq,
                    };
                    self.settle(id, Ok(ack));
                }
                let typing_changed = self.remote_typing.stop(&room, &sender);
                self.emit(Event::Message {
                    room: room.clone(),
                    seq,
                    id,
                    sender,
                    ts,
                    body,
                });
                if typing_changed {
                    self.emit_typing(room);
                }
            }
            ServerMessage::PublishAck { room, id, seq } => {
                if self.outbox.take(id).is_some() {
                    self.settle(id, Ok(Ack { room, id, seq }));
                }
            }
            ServerMessage::MemberJoined { room, user } => {
                if self.rooms.is_wanted(&room) {
                    self.emit(Event::MemberJoined { room, user });
                }
            }
            ServerMessage::MemberLeft { room, user } => {
                if self.rooms.is_wanted(&room) {
                    let typing_changed = self.remote_typing.stop(&room, &user);
                    self.emit(Event::MemberLeft {
                        room: room.clone(),
                        user,
                    });
                    if typing_changed {
                        self.emit_typing(room);
                    }
                }
            }
            ServerMessage::Typing { room, user, typing } => {
                if !self.rooms.is_wanted(&room) {
                    return;
                }
                let changed = if typing {
                    let until = now.saturating_add(self.limits.typing_ttl);
                    self.remote_typing.start(&room, &user, until)
                } else {
                    self.remote_typing.stop(&room, &user)
                };
                if changed {
                    self.emit_typing(room);
                }
            }
            ServerMessage::Pong { nonce } => {
                if let Phase::Open(open) = &mut self.phase
                    && open.sync == Some(nonce)
                {
                    open.sync = None;
                    self.flush(now);
                }
            }
            // Not through the duplicate guard, and no resume position moves: a page of
            // history is an answer, not part of the live stream.
            ServerMessage::History {
                request,
                room,
                position,
                messages,
                more,
            } => {
                if self.requests.take(request).is_some() {
                    let page = HistoryPage {
                        room,
                        position,
                        messages,
                        more,
                    };
                    self.history_done(request, Ok(page));
                }
            }
            ServerMessage::Error {
                code,
                message,
                id,
                room,
            } => self.on_error(code, message, id, room, now),
        }
    }

    fn on_error(
        &mut self,
        code: u16,
        message: String,
        id: Option<u64>,
        room: Option<String>,
        now: Millis,
    ) {
        if let Some(id) = id {
            if self.outbox.take(id).is_some() {
                if code == ErrorCode::RateLimited.as_u16() {
                    self.outbox.rate_limited(now);
                }
                self.settle(id, Err(PublishError::Rejected { code, message }));
                return;
            }
            if self.requests.take(id).is_some() {
                self.history_done(id, Err(HistoryError::Rejected { code, message }));
                return;
            }
        }
        // An error with an id answers a publish or a history request (here, one settled
        // already, by its timeout), never a join or a keystroke.
        if let Some(name) = room.as_deref().filter(|_| id.is_none()) {
            if self.rooms.is_joining(name) {
                if is_transient(code) {
                    let (backoff, rng) = (&self.backoff, &mut self.rng);
                    self.rooms
                        .join_refused(name, |n| now.saturating_add(backoff.delay_for(n, rng)));
                } else {
                    // Refused for good (invalid, forbidden, too many rooms, full, or a code
                    // this version does not know): stop wanting it.
                    self.rooms.forget(name);
                    self.local_typing.stop(name);
                    self.remote_typing.forget(name);
                    self.drop_unsent(name, code, &message);
                }
            } else if code == ErrorCode::TypingDisabled.as_u16() {
                // Keystrokes would draw this error every throttle window; stop sending.
                self.rooms.typing_refused(name);
                self.local_typing.stop(name);
            }
        }
        self.emit(Event::Error {
            code,
            message,
            room,
        });
    }

    /// Messages of `room` were lost on the way (see "Sequence gaps" in `rooms.rs`): leave
    /// it and join it again from the last message delivered, so that the server replays
    /// what came after. After gaps in a row, the join waits a backoff delay.
    fn resume_after_gap(&mut self, room: String, now: Millis) {
        self.send(&ClientMessage::Leave { room: room.clone() });
        let gaps = self.rooms.gap_found(&room);
        if gaps <= 1 {
            let since = self.rooms.join_sent(&room);
            self.send(&ClientMessage::Join { room, since });
        } else {
            let delay = self.backoff.delay_for(gaps - 1, &mut self.rng);
            self.rooms.join_later(&room, now.saturating_add(delay));
        }
    }
}
