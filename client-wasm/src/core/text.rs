//! Messages built by hand rather than with `format!`: every `format!`, `Display` or `Debug`
//! reachable from the wasm pulls formatting code (and, for a `char`'s `Debug`, Unicode
//! tables) into what every page downloads.

use chorus_protocol::validate::InvalidName;

/// Append `n` in decimal.
pub(crate) fn push_decimal(text: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        text.push(char::from(digit));
    }
}

/// `format!("invalid room name: {error}")`: the same text, byte for byte (the tests below
/// compare them).
pub(crate) fn invalid_room(error: InvalidName) -> String {
    let mut text = String::from("invalid room name: ");
    match error {
        InvalidName::Empty => text.push_str("name is empty"),
        InvalidName::TooLong(max) => {
            text.push_str("name is longer than ");
            push_decimal(&mut text, max as u64);
            text.push_str(" bytes");
        }
        InvalidName::BadChar(c) => {
            text.push_str("name contains a character that is not allowed: '");
            // `{:?}` of a char: `escape_debug`, except that a double quote stays as is.
            if c == '"' {
                text.push(c);
            } else {
                text.extend(c.escape_debug());
            }
            text.push('\'');
        }
        InvalidName::EmptyNamespace => text.push_str("namespace before ':' is empty"),
        InvalidName::Untrimmed => text.push_str("name begins or ends with white space"),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 128, 65_536, u64::MAX] {
            let mut text = String::from("x");
            push_decimal(&mut text, n);
            assert_eq!(text, format!("x{n}"));
        }
    }

    #[test]
    fn invalid_room_reads_like_the_display_of_the_error() {
        let mut errors = vec![
            InvalidName::Empty,
            InvalidName::TooLong(128),
            InvalidName::TooLong(0),
            InvalidName::EmptyNamespace,
            InvalidName::Untrimmed,
        ];
        // Every character up to U+FFFF and a sample above: quotes, backslash, controls,
        // combining marks, unassigned and private-use code points.
        errors.extend(
            (0..=0xFFFF)
                .chain((0x1_0000..=0x10_FFFF).step_by(97))
                .chain([0x1F600, 0xE0001, 0xE01EF, 0x10_FFFF])
                .filter_map(char::from_u32)
                .map(InvalidName::BadChar),
        );
        for error in errors {
            assert_eq!(invalid_room(error), format!("invalid room name: {error}"));
        }
    }
}
