//! Messages built by hand rather than with `format!`: every `format!`, `Display` or `Debug`
//! reachable from the wasm pulls formatting code (and, for a `char`'s `Debug`, Unicode
//! tables) into what every page downloads.

use crate::prelude::*;
use chorus_protocol::validate::InvalidName;

/// Append `n` in decimal. Recursive rather than through a digit buffer: no indexing, so no
/// bounds check and its panic location in the wasm.
pub(crate) fn push_decimal(text: &mut String, n: u64) {
    if n >= 10 {
        push_decimal(text, n / 10);
    }
    push_ascii(text, b'0' + (n % 10) as u8);
}

/// Append one ASCII character. Not `String::push`, which brings UTF-8 encoding into the
/// wasm for characters these texts never hold.
fn push_ascii(text: &mut String, byte: u8) {
    if let Ok(one) = ::core::str::from_utf8(&[byte]) {
        text.push_str(one);
    }
}

/// `format!("invalid room name: {error}")`, the server's text, but for a character that is
/// not printable ASCII: that one is named by its code point (`U+00E9`), since `{:?}` of a
/// `char` would bring Unicode's tables of printable characters into the wasm.
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
            text.push_str("name contains a character that is not allowed: ");
            if is_plain(c) {
                push_ascii(&mut text, b'\'');
                // Plain characters are ASCII.
                push_ascii(&mut text, c as u8);
                push_ascii(&mut text, b'\'');
            } else {
                text.push_str("U+");
                let code = c as u32;
                let digits = (32 - code.leading_zeros()).div_ceil(4).max(4);
                for shift in (0..digits).rev() {
                    let digit = (code >> (shift * 4)) & 0xF;
                    push_ascii(&mut text, b"0123456789ABCDEF"[digit as usize]);
                }
            }
        }
        InvalidName::EmptyNamespace => text.push_str("namespace before ':' is empty"),
        InvalidName::Untrimmed => text.push_str("name begins or ends with white space"),
    }
    text
}

/// A character that `{:?}` shows as itself.
fn is_plain(c: char) -> bool {
    c.is_ascii_graphic() && c != '\'' && c != '\\'
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
    fn invalid_room_reads_like_the_display_of_the_error_or_names_the_code_point() {
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
            let expected = match error {
                InvalidName::BadChar(c) if !is_plain(c) => format!(
                    "invalid room name: name contains a character that is not allowed: U+{:04X}",
                    c as u32
                ),
                _ => format!("invalid room name: {error}"),
            };
            assert_eq!(invalid_room(error), expected);
        }
    }
}
