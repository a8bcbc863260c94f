//! Client error codes are 600-699, apart from the server's (100-599) and close codes
//! (1000-4999); `PublishError::code` and `HistoryError::code` give each failure's number.

use chorus_client::core::ClientErrorCode;
use chorus_client::{HistoryError, PublishError};

#[test]
fn client_codes_keep_their_numbers() {
    let codes = [
        (ClientErrorCode::Unauthorized, 600),
        (ClientErrorCode::TokenUnavailable, 601),
        (ClientErrorCode::InvalidArgument, 602),
        (ClientErrorCode::DoNotRetry, 603),
        (ClientErrorCode::TimedOut, 604),
        (ClientErrorCode::Closed, 605),
        (ClientErrorCode::TooManyPending, 606),
        (ClientErrorCode::QueueFull, 607),
        (ClientErrorCode::AttemptsExhausted, 608),
        (ClientErrorCode::NoWebSocket, 609),
        (ClientErrorCode::DecodeFailed, 610),
    ];
    for (code, number) in codes {
        assert_eq!(code as u16, number, "{code:?}");
    }
}

#[test]
fn publish_errors_have_numbers() {
    assert_eq!(PublishError::QueueFull.code(), 607);
    assert_eq!(PublishError::TimedOut.code(), 604);
    assert_eq!(PublishError::TooLarge { size: 9, max: 8 }.code(), 103);
    let rejected = PublishError::Rejected {
        code: 105,
        message: "not joined".into(),
    };
    assert_eq!(rejected.code(), 105);
    assert_eq!(PublishError::Closed.code(), 605);
}

#[test]
fn history_errors_have_numbers() {
    assert_eq!(HistoryError::TooManyPending.code(), 606);
    assert_eq!(HistoryError::TimedOut.code(), 604);
    let rejected = HistoryError::Rejected {
        code: 112,
        message: "epoch changed".into(),
    };
    assert_eq!(rejected.code(), 112);
    assert_eq!(HistoryError::Closed.code(), 605);
}
