//! Naming and size rules, shared by the server (which enforces them) and the client (which
//! checks before sending, so a mistake fails fast with the same message).

/// Longest room name, in bytes.
pub const MAX_ROOM_LEN: usize = 128;
/// Longest user name, in bytes.
pub const MAX_USER_LEN: usize = 64;

/// Why a name was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is longer than the limit.
    #[error("name is longer than {0} bytes")]
    TooLong(usize),
    /// The name holds a character outside the allowed set.
    #[error("name contains a character that is not allowed: {0:?}")]
    BadChar(char),
    /// The namespace prefix (before the first `:`) is empty.
    #[error("namespace before ':' is empty")]
    EmptyNamespace,
    /// The name begins or ends with white space.
    #[error("name begins or ends with white space")]
    Untrimmed,
}

/// Check a room name.
///
/// Rules: 1 to [`MAX_ROOM_LEN`] bytes of ASCII letters, digits and `- _ . : @ /`. The part
/// before the first `:` is the namespace (`news:tech` is in namespace `news`), and must not
/// be empty. `*` is reserved for patterns in tokens.
pub fn room(name: &str) -> Result<(), InvalidName> {
    if name.is_empty() {
        return Err(InvalidName::Empty);
    }
    if name.len() > MAX_ROOM_LEN {
        return Err(InvalidName::TooLong(MAX_ROOM_LEN));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '/')))
    {
        return Err(InvalidName::BadChar(bad));
    }
    if name.starts_with(':') {
        return Err(InvalidName::EmptyNamespace);
    }
    Ok(())
}

/// Check a user name.
///
/// Rules: 1 to [`MAX_USER_LEN`] bytes of UTF-8 with no control characters, and no white
/// space at either end. Any script is welcome: these are display names.
pub fn user(name: &str) -> Result<(), InvalidName> {
    if name.is_empty() {
        return Err(InvalidName::Empty);
    }
    if name.len() > MAX_USER_LEN {
        return Err(InvalidName::TooLong(MAX_USER_LEN));
    }
    if let Some(bad) = name.chars().find(|c| c.is_control()) {
        return Err(InvalidName::BadChar(bad));
    }
    if name.trim() != name {
        return Err(InvalidName::Untrimmed);
    }
    Ok(())
}

/// The namespace of a valid room name: the part before the first `:`, if there is one.
pub fn namespace(room: &str) -> Option<&str> {
    room.split_once(':').map(|(ns, _)| ns)
}

/// The largest body that fits in a frame of `max_frame` bytes, with room for the rest of a
/// message frame.
pub fn max_body(max_frame: usize) -> usize {
    max_frame.saturating_sub(crate::FRAME_OVERHEAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        for ok in [
            "lobby",
            "news:tech",
            "a",
            "user@example.org/inbox",
            "x.y-z_1:2:3",
        ] {
            assert_eq!(room(ok), Ok(()), "{ok}");
        }
        assert_eq!(room(""), Err(InvalidName::Empty));
        assert_eq!(room(&"a".repeat(129)), Err(InvalidName::TooLong(128)));
        assert_eq!(room(&"a".repeat(128)), Ok(()));
        assert_eq!(room("a b"), Err(InvalidName::BadChar(' ')));
        assert_eq!(room("news:*"), Err(InvalidName::BadChar('*')));
        assert_eq!(room("café"), Err(InvalidName::BadChar('é')));
        assert_eq!(room(":tech"), Err(InvalidName::EmptyNamespace));
    }

    #[test]
    fn user_names() {
        for ok in ["alice", "Zoë", "李雷", "bob the builder"] {
            assert_eq!(user(ok), Ok(()), "{ok}");
        }
        assert_eq!(user(""), Err(InvalidName::Empty));
        assert_eq!(user(" bob"), Err(InvalidName::Untrimmed));
        assert_eq!(user("bob\n"), Err(InvalidName::BadChar('\n')));
        assert_eq!(user(&"é".repeat(33)), Err(InvalidName::TooLong(64)));
    }

    #[test]
    fn namespaces() {
        assert_eq!(namespace("news:tech"), Some("news"));
        assert_eq!(namespace("a:b:c"), Some("a"));
        assert_eq!(namespace("lobby"), None);
    }
}
