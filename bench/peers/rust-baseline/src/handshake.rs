//! The HTTP/1.1 WebSocket upgrade (RFC 6455 section 4.2), on any path. No extension or
//! subprotocol is negotiated: offers of `permessage-deflate` are ignored, so compression is
//! off.

use base64::Engine as _;
use bytes::BytesMut;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Error, Result};

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// The GUID RFC 6455 appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Reads the upgrade request, answers `101 Switching Protocols` (or `400` and an error), and
/// returns whatever the client sent after the request head: the start of its first frames.
pub(crate) async fn accept(stream: &mut TcpStream) -> Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::Handshake("connection closed during the handshake"));
        }
        match respond(&buf) {
            Ok(Some((head_len, response))) => {
                stream.write_all(response.as_bytes()).await?;
                let _ = buf.split_to(head_len);
                return Ok(buf);
            }
            Ok(None) if buf.len() < MAX_HEAD => buf.reserve(1024),
            Ok(None) => return refuse(stream, "request head too large").await,
            Err(why) => return refuse(stream, why).await,
        }
    }
}

/// Answers `400 Bad Request` and fails with `why`.
async fn refuse(stream: &mut TcpStream, why: &'static str) -> Result<BytesMut> {
    let response = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let _ = stream.write_all(response.as_bytes()).await;
    Err(Error::Handshake(why))
}

/// The response to the request head at the start of `buf`, with the head's length;
/// `Ok(None)` while the head is incomplete.
fn respond(buf: &[u8]) -> Result<Option<(usize, String)>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed HTTP request"),
    };
    if request.method != Some("GET") {
        return Err("not a GET");
    }
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err("not a WebSocket upgrade");
    }
    if header("sec-websocket-version") != Some("13") {
        return Err("unsupported WebSocket version");
    }
    let key = header("sec-websocket-key").ok_or("no Sec-WebSocket-Key")?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.trim())
    );
    Ok(Some((head_len, response)))
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
fn accept_key(key: &str) -> String {
    let digest = Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update(GUID)
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_the_one_from_rfc_6455() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn an_upgrade_request_is_answered_and_its_head_length_reported() {
        let request = "GET /anything HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                       Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x02";
        let (head_len, response) = respond(request.as_bytes()).unwrap().unwrap();
        assert_eq!(head_len, request.len() - 1);
        assert!(response.starts_with("HTTP/1.1 101 "));
        assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert_eq!(respond(&request.as_bytes()[..20]), Ok(None));
    }

    #[test]
    fn a_plain_http_request_is_refused() {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(respond(request), Err("not a WebSocket upgrade"));
    }
}
