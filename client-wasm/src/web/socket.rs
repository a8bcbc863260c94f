//! One browser WebSocket and the four listeners on it, owned together: dropping a [`Socket`]
//! removes its listeners before anything else, so an event it fires later (a close that
//! was already on its way, say) never reaches the core.

use std::cell::Cell;
use std::prelude::rust_2024::*;
use std::rc::Rc;

use chorus_protocol::{AUTH_SUBPROTOCOL_PREFIX, SUBPROTOCOL};
use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::WebSocket;

use super::env;
use super::listener::Listener;

/// What the socket tells the shell.
#[derive(Debug)]
pub(crate) enum SocketEvent {
    /// `open`.
    Opened,
    /// A binary message.
    Frame(Vec<u8>),
    /// The socket is gone, with this close code (1006 when it failed). Reported once.
    Closed(u16),
}

/// An open (or opening) WebSocket and its listeners.
pub(crate) struct Socket {
    ws: WebSocket,
    listeners: Vec<Listener>,
}

impl Socket {
    /// Open `url`, offering `chorus.v1` and `chorus.auth.<token>`; `on_event` hears about
    /// the socket until it is dropped or closed.
    pub(crate) fn open(
        url: &str,
        token: &str,
        on_event: impl Fn(SocketEvent) + 'static,
    ) -> Result<Socket, JsValue> {
        let mut auth = String::with_capacity(AUTH_SUBPROTOCOL_PREFIX.len() + token.len());
        auth.push_str(AUTH_SUBPROTOCOL_PREFIX);
        auth.push_str(token);
        let protocols = Array::new();
        protocols.push(&JsValue::from_str(SUBPROTOCOL));
        protocols.push(&JsValue::from_str(&auth));
        let ws = WebSocket::new_with_str_sequence(url, &protocols)?;
        // Through `env::set` and `env::get`, as `data` and `code` below: see `env.rs`.
        env::set(&ws, "binaryType", &JsValue::from_str("arraybuffer"));

        let on_event: Rc<dyn Fn(SocketEvent)> = Rc::new(on_event);
        // A failed socket fires `error`, then `close` with 1006; either may come alone in
        // odd browsers. The first one reports the end, the other is ignored.
        let ended = Rc::new(Cell::new(false));
        let listen = |kind: &'static str, handle: Box<dyn Fn(&web_sys::Event)>| {
            Listener::new(&ws, kind, move |event| handle(event))
        };
        let listeners = vec![
            listen("open", {
                let on_event = on_event.clone();
                Box::new(move |_| on_event(SocketEvent::Opened))
            }),
            listen("message", {
                let on_event = on_event.clone();
                Box::new(move |event| {
                    // A `MessageEvent`'s `data`. Text frames are not part of the protocol; the
                    // server never sends one.
                    if let Ok(buffer) = env::get(event, "data").dyn_into::<ArrayBuffer>() {
                        on_event(SocketEvent::Frame(Uint8Array::new(&buffer).to_vec()));
                    }
                })
            }),
            listen("error", {
                let (on_event, ended) = (on_event.clone(), ended.clone());
                Box::new(move |_| {
                    if !ended.replace(true) {
                        on_event(SocketEvent::Closed(1006));
                    }
                })
            }),
            listen("close", {
                Box::new(move |event| {
                    // A `CloseEvent`'s `code`.
                    let code = env::get(event, "code")
                        .as_f64()
                        .map_or(1006, |code| code as u16);
                    if !ended.replace(true) {
                        on_event(SocketEvent::Closed(code));
                    }
                })
            }),
        ];
        Ok(Socket { ws, listeners })
    }

    /// Send one binary frame; dropped if the socket is not open (the core only sends on an
    /// open socket, and a socket that just failed reports its close next).
    pub(crate) fn send(&self, frame: &[u8]) {
        if self.ws.ready_state() == WebSocket::OPEN {
            let _ = self.ws.send_with_u8_array(frame);
        }
    }

    /// Stop listening, then close with `code` and `reason`.
    pub(crate) fn close(mut self, code: u16, reason: &str) {
        self.listeners.clear();
        // The browser refuses codes other than 1000 and 3000-4999, and reasons over 123
        // bytes; a plain close still ends the connection then.
        if self
            .ws
            .close_with_code_and_reason(code, truncate(reason, 123))
            .is_err()
        {
            let _ = self.ws.close();
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.listeners.clear();
        if self.ws.ready_state() <= WebSocket::OPEN {
            let _ = self.ws.close();
        }
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
