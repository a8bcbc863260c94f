//! The Lua scripts (in `lua/`), and reading their replies. Every script begins with
//! `lua/prelude.lua`, after the pub/sub command it publishes with (`PUBLISH`, or `SPUBLISH`
//! in a Redis Cluster). They run with EVALSHA; after a Redis restart has emptied the script
//! cache, redis-rs answers NOSCRIPT by loading the script and running it again.
//!
//! Replies are read without trusting them: anything unexpected is a
//! [`BrokerError::Unexpected`], never a panic.

use bytes::Bytes;
use chorus_protocol::Position;
use redis::{Script, Value};

use super::super::BrokerError;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// The scripts, each hashed once.
pub(super) struct Scripts {
    pub(super) publish: Script,
    pub(super) read: Script,
    pub(super) page: Script,
    pub(super) rebase: Script,
    pub(super) presence_add: Script,
    pub(super) presence_remove: Script,
    pub(super) presence_refresh: Script,
    pub(super) presence_reap: Script,
    pub(super) members: Script,
}

impl Scripts {
    /// The scripts, publishing with `publish` (`PUBLISH` or `SPUBLISH`).
    pub(super) fn new(publish: &str) -> Scripts {
        let with_prelude =
            |body: &str| Script::new(&format!("local PUBLISH = '{publish}'\n{PRELUDE}\n{body}"));
        Scripts {
            publish: with_prelude(include_str!("lua/publish.lua")),
            read: with_prelude(include_str!("lua/read.lua")),
            page: with_prelude(include_str!("lua/page.lua")),
            rebase: with_prelude(include_str!("lua/rebase.lua")),
            presence_add: with_prelude(include_str!("lua/presence_add.lua")),
            presence_remove: with_prelude(include_str!("lua/presence_remove.lua")),
            presence_refresh: with_prelude(include_str!("lua/presence_refresh.lua")),
            presence_reap: with_prelude(include_str!("lua/presence_reap.lua")),
            members: with_prelude(include_str!("lua/members.lua")),
        }
    }
}

fn unexpected(what: &str, value: &Value) -> BrokerError {
    BrokerError::Unexpected(format!("Redis replied {value:?} where {what} was expected"))
}

/// The items of an array reply, exactly `N` of them.
fn fixed<const N: usize>(value: Value, what: &str) -> Result<[Value; N], BrokerError> {
    match value {
        Value::Array(items) => {
            <[Value; N]>::try_from(items).map_err(|items| unexpected(what, &Value::Array(items)))
        }
        other => Err(unexpected(what, &other)),
    }
}

fn items(value: Value, what: &str) -> Result<Vec<Value>, BrokerError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => Err(unexpected(what, &other)),
    }
}

/// A non-negative integer.
pub(super) fn int(value: &Value, what: &str) -> Result<u64, BrokerError> {
    match value {
        Value::Int(n) => u64::try_from(*n).map_err(|_| unexpected(what, value)),
        other => Err(unexpected(what, other)),
    }
}

/// An epoch, kept in Redis as decimal text.
fn epoch(value: &Value) -> Result<u64, BrokerError> {
    match value {
        Value::BulkString(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| unexpected("an epoch", value)),
        Value::Int(_) => int(value, "an epoch"),
        other => Err(unexpected("an epoch", other)),
    }
}

fn text(value: Value, what: &str) -> Result<String, BrokerError> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes)
            .map_err(|_| BrokerError::Unexpected(format!("{what}: not UTF-8"))),
        Value::SimpleString(text) => Ok(text),
        other => Err(unexpected(what, &other)),
    }
}

/// An array of texts (user names).
pub(super) fn texts(value: Value, what: &str) -> Result<Vec<String>, BrokerError> {
    items(value, what)?
        .into_iter()
        .map(|item| text(item, what))
        .collect()
}

/// `seq, message, seq, message, ...`: the encoded `Message`s of a log.
fn entries(value: Value) -> Result<Vec<(u64, Bytes)>, BrokerError> {
    let mut items = items(value, "log entries")?.into_iter();
    let mut out = Vec::with_capacity(items.len() / 2);
    while let Some(seq) = items.next() {
        let seq = int(&seq, "a sequence number")?;
        match items.next() {
            Some(Value::BulkString(message)) => out.push((seq, Bytes::from(message))),
            Some(other) => return Err(unexpected("an encoded message", &other)),
            None => {
                return Err(BrokerError::Unexpected(
                    "a log entry without its message".into(),
                ));
            }
        }
    }
    Ok(out)
}

/// A publish the publish script made, or found made before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Published {
    pub(super) seq: u64,
    pub(super) duplicate: bool,
}

/// What the publish script did with one of the publishes of its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Published(Published),
    /// The call began past the publish's deadline: nothing was done.
    Expired,
    /// Redis refused one of the publish's commands, with this error; the publish may be
    /// partly done.
    Refused(String),
}

/// The publish script's answer to a call carrying `count` publishes: one outcome each.
pub(super) fn publish_outcomes(value: Value, count: usize) -> Result<Vec<Outcome>, BrokerError> {
    let outcomes = items(value, "publish outcomes")?;
    if outcomes.len() != count {
        return Err(unexpected(
            &format!("{count} publish outcomes"),
            &Value::Array(outcomes),
        ));
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            if let Value::Array(parts) = &outcome
                && let [_, _, Value::Int(3), error] = parts.as_slice()
            {
                return Ok(Outcome::Refused(text(error.clone(), "an error")?));
            }
            let [epoch_value, seq, kind] = fixed(outcome, "a publish outcome")?;
            match int(&kind, "a publish outcome")? {
                2 => Ok(Outcome::Expired),
                kind @ (0 | 1) => {
                    epoch(&epoch_value)?;
                    Ok(Outcome::Published(Published {
                        seq: int(&seq, "a sequence number")?,
                        duplicate: kind == 1,
                    }))
                }
                _ => Err(unexpected("a publish outcome", &kind)),
            }
        })
        .collect()
}

/// The read script's answer.
#[derive(Debug)]
pub(super) struct RoomRead {
    pub(super) position: Position,
    /// The oldest retained sequence, `position.seq + 1` when none is.
    pub(super) oldest: u64,
    /// Retained messages after the resume point, oldest first.
    pub(super) entries: Vec<(u64, Bytes)>,
    pub(super) members: Vec<String>,
    /// The history this one continues, and up to where: see [`history::plan_resume`].
    ///
    /// [`history::plan_resume`]: crate::history::plan_resume
    pub(super) continues: Option<Position>,
}

pub(super) fn room_read(value: Value) -> Result<RoomRead, BrokerError> {
    let [epoch_value, seq, oldest, found, members, prev, base] = fixed(value, "a room read")?;
    let continues = match &prev {
        Value::BulkString(text) if text.is_empty() => None,
        _ => Some(Position {
            epoch: epoch(&prev)?,
            seq: int(&base, "a sequence number")?,
        }),
    };
    Ok(RoomRead {
        position: Position {
            epoch: epoch(&epoch_value)?,
            seq: int(&seq, "a sequence number")?,
        },
        oldest: int(&oldest, "a sequence number")?,
        entries: entries(found)?,
        members: texts(members, "a user name")?,
        continues,
    })
}

/// The rebase script's answer: the room's epoch.
pub(super) fn rebased(value: &Value) -> Result<u64, BrokerError> {
    epoch(value)
}

/// The page script's answer.
#[derive(Debug)]
pub(super) struct PageRead {
    pub(super) position: Position,
    /// Candidates, newest first.
    pub(super) entries: Vec<(u64, Bytes)>,
    /// More retained messages precede the last candidate.
    pub(super) older: bool,
}

pub(super) fn page_read(value: Value) -> Result<PageRead, BrokerError> {
    let [epoch_value, seq, found, older] = fixed(value, "a history page")?;
    Ok(PageRead {
        position: Position {
            epoch: epoch(&epoch_value)?,
            seq: int(&seq, "a sequence number")?,
        },
        entries: entries(found)?,
        older: int(&older, "a flag")? == 1,
    })
}

/// The presence refresh's answer: (our users that were absent, others that expired).
pub(super) fn refreshed(value: Value) -> Result<(Vec<String>, Vec<String>), BrokerError> {
    let [absent, expired] = fixed(value, "a presence refresh")?;
    Ok((
        texts(absent, "a user name")?,
        texts(expired, "a user name")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpected_replies_are_errors_not_panics() {
        let bad = [
            Value::Nil,
            Value::Int(-1),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![
                Value::BulkString(b"x".to_vec()),
                Value::Int(1),
                Value::Int(0),
            ]),
            Value::Okay,
        ];
        for value in bad {
            assert!(publish_outcomes(value.clone(), 1).is_err(), "{value:?}");
            let one = Value::Array(vec![value.clone()]);
            assert!(publish_outcomes(one, 1).is_err(), "{value:?}");
            assert!(room_read(value.clone()).is_err(), "{value:?}");
            assert!(page_read(value.clone()).is_err(), "{value:?}");
            assert!(refreshed(value).is_err());
        }
        let odd_entries = Value::Array(vec![
            Value::BulkString(b"7".to_vec()),
            Value::Int(1),
            Value::Array(vec![Value::Int(1)]),
            Value::Int(0),
        ]);
        assert!(page_read(odd_entries).is_err());
    }

    #[test]
    fn publish_outcomes_are_understood_one_per_publish() {
        let outcome = |epoch: &[u8], seq, kind| {
            Value::Array(vec![
                Value::BulkString(epoch.to_vec()),
                Value::Int(seq),
                Value::Int(kind),
            ])
        };
        let refused = Value::Array(vec![
            Value::Int(0),
            Value::Int(0),
            Value::Int(3),
            Value::BulkString(b"WRONGTYPE Operation against a key".to_vec()),
        ]);
        let reply = Value::Array(vec![
            outcome(b"5", 7, 0),
            outcome(b"5", 3, 1),
            outcome(b"0", 0, 2),
            refused,
        ]);
        assert_eq!(
            publish_outcomes(reply.clone(), 4).unwrap(),
            vec![
                Outcome::Published(Published {
                    seq: 7,
                    duplicate: false
                }),
                Outcome::Published(Published {
                    seq: 3,
                    duplicate: true
                }),
                Outcome::Expired,
                Outcome::Refused("WRONGTYPE Operation against a key".into()),
            ]
        );
        assert!(
            publish_outcomes(reply, 3).is_err(),
            "one outcome per publish"
        );
        let odd = Value::Array(vec![outcome(b"5", 7, 3)]);
        assert!(publish_outcomes(odd, 1).is_err());
    }

    #[test]
    fn a_room_read_is_understood() {
        let read = room_read(Value::Array(vec![
            Value::BulkString(b"9007199254740991".to_vec()),
            Value::Int(12),
            Value::Int(11),
            Value::Array(vec![
                Value::Int(11),
                Value::BulkString(b"a".to_vec()),
                Value::Int(12),
                Value::BulkString(b"b".to_vec()),
            ]),
            Value::Array(vec![Value::BulkString("zoë".as_bytes().to_vec())]),
            Value::BulkString(b"5".to_vec()),
            Value::Int(10),
        ]))
        .unwrap();
        assert_eq!(
            read.position,
            Position {
                epoch: (1 << 53) - 1,
                seq: 12
            }
        );
        assert_eq!(read.oldest, 11);
        assert_eq!(read.entries[1], (12, Bytes::from_static(b"b")));
        assert_eq!(read.members, vec!["zoë".to_owned()]);
        assert_eq!(read.continues, Some(Position { epoch: 5, seq: 10 }));
    }
}
