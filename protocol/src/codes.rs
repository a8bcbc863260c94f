//! Stable numbers: error codes carried by [`crate::ServerMessage::Error`], and the reasons
//! (with their WebSocket close codes) for which the server ends a connection.
//!
//! The numbers never change meaning. `docs/PROTOCOL.md` has the same tables.

/// Why a request failed. Carried on the wire as its `u16` value, so a client can recognise
/// codes it does not know yet with [`ErrorCode::from_u16`] returning `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The frame could not be decoded as a client message.
    BadFrame = 100,
    /// A text WebSocket frame arrived; the protocol is binary only.
    TextFrame = 101,
    /// The room name breaks the naming rules.
    InvalidRoom = 102,
    /// The publish body is larger than `max_body`.
    BodyTooLarge = 103,
    /// The token does not permit this room.
    Forbidden = 104,
    /// Publishing or typing in a room the connection has not joined.
    NotJoined = 105,
    /// Over a rate limit; retry later.
    RateLimited = 106,
    /// The connection is already in `max_rooms` rooms.
    TooManyRooms = 107,
    /// The room has reached its namespace's member limit.
    RoomFull = 108,
    /// The room's namespace only accepts publishes from the backend API.
    PublishDisabled = 109,
    /// The room's namespace has typing indicators off.
    TypingDisabled = 110,
    /// A request field other than the room or body is invalid (for example, a user name in
    /// the HTTP API).
    InvalidRequest = 111,
    /// A history request named a position from an epoch that is not the room's current
    /// one: that history is gone. Ask again without `before` for the current history.
    EpochChanged = 112,
    /// The server failed; the request may be retried.
    Internal = 500,
    /// A backing service (such as Redis) is unavailable; retry later.
    Unavailable = 503,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::BadFrame,
        ErrorCode::TextFrame,
        ErrorCode::InvalidRoom,
        ErrorCode::BodyTooLarge,
        ErrorCode::Forbidden,
        ErrorCode::NotJoined,
        ErrorCode::RateLimited,
        ErrorCode::TooManyRooms,
        ErrorCode::RoomFull,
        ErrorCode::PublishDisabled,
        ErrorCode::TypingDisabled,
        ErrorCode::InvalidRequest,
        ErrorCode::EpochChanged,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];

    /// The wire value.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a wire value, or `None` for a code this version does not know.
    pub fn from_u16(value: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_u16() == value)
    }

    /// A short snake_case name, used as a metrics label and in logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::TextFrame => "text_frame",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::PublishDisabled => "publish_disabled",
            ErrorCode::TypingDisabled => "typing_disabled",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::EpochChanged => "epoch_changed",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// Why the server closed a connection. Each maps to one WebSocket close code; the client maps
/// close codes back with [`DisconnectReason::from_close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The server is shutting down or restarting. Close code 1001.
    ServerShutdown,
    /// A frame was larger than `max_frame`. Close code 1009.
    FrameTooLarge,
    /// Nothing arrived from the client within the heartbeat timeout. Close code 4000.
    HeartbeatTimeout,
    /// The client did not read fast enough and its outbound queue filled up. Close code 4001.
    SlowConsumer,
    /// The token expired; reconnect with a fresh one. Close code 4002.
    TokenExpired,
    /// The client kept breaking rate limits or sending bad frames. Close code 4003.
    PolicyViolation,
    /// The user already has the maximum number of connections. Close code 4004.
    TooManyConnections,
    /// The server has reached its global connection limit. Close code 4005.
    ServerFull,
    /// The client broke the WebSocket protocol (RFC 6455): an unmasked frame, reserved bits
    /// set, a fragmented control frame, an invalid close code, and so on. Close code 1002,
    /// sent without a `Disconnect` notice: the close frame's reason names the rule broken.
    ProtocolError,
    /// The client sent data not of its type: a text message or close reason that is not
    /// UTF-8 (RFC 6455 section 7.4.1). Close code 1007, without a `Disconnect` notice.
    InvalidData,
}

impl DisconnectReason {
    /// Every reason.
    pub const ALL: [DisconnectReason; 10] = [
        DisconnectReason::ServerShutdown,
        DisconnectReason::FrameTooLarge,
        DisconnectReason::HeartbeatTimeout,
        DisconnectReason::SlowConsumer,
        DisconnectReason::TokenExpired,
        DisconnectReason::PolicyViolation,
        DisconnectReason::TooManyConnections,
        DisconnectReason::ServerFull,
        DisconnectReason::ProtocolError,
        DisconnectReason::InvalidData,
    ];

    /// The WebSocket close code sent with this reason.
    pub fn close_code(self) -> u16 {
        match self {
            DisconnectReason::ServerShutdown => 1001,
            DisconnectReason::FrameTooLarge => 1009,
            DisconnectReason::HeartbeatTimeout => 4000,
            DisconnectReason::SlowConsumer => 4001,
            DisconnectReason::TokenExpired => 4002,
            DisconnectReason::PolicyViolation => 4003,
            DisconnectReason::TooManyConnections => 4004,
            DisconnectReason::ServerFull => 4005,
            DisconnectReason::ProtocolError => 1002,
            DisconnectReason::InvalidData => 1007,
        }
    }

    /// The reason for a close code, or `None` for codes the server does not send itself.
    pub fn from_close_code(code: u16) -> Option<DisconnectReason> {
        DisconnectReason::ALL
            .into_iter()
            .find(|r| r.close_code() == code)
    }

    /// A short snake_case name, used as a metrics label, in logs and in close frames.
    pub fn name(self) -> &'static str {
        match self {
            DisconnectReason::ServerShutdown => "server_shutdown",
            DisconnectReason::FrameTooLarge => "frame_too_large",
            DisconnectReason::HeartbeatTimeout => "heartbeat_timeout",
            DisconnectReason::SlowConsumer => "slow_consumer",
            DisconnectReason::TokenExpired => "token_expired",
            DisconnectReason::PolicyViolation => "policy_violation",
            DisconnectReason::TooManyConnections => "too_many_connections",
            DisconnectReason::ServerFull => "server_full",
            DisconnectReason::ProtocolError => "protocol_error",
            DisconnectReason::InvalidData => "invalid_data",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_are_unique() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u16(code.as_u16()), Some(code));
        }
        assert_eq!(ErrorCode::from_u16(0), None);
        let mut names: std::vec::Vec<_> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn close_codes_round_trip() {
        for reason in DisconnectReason::ALL {
            assert_eq!(
                DisconnectReason::from_close_code(reason.close_code()),
                Some(reason)
            );
        }
        assert_eq!(DisconnectReason::from_close_code(1000), None);
    }
}
