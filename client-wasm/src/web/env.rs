//! What the shell takes from the browser besides the socket: the clock, randomness, `fetch`
//! for the token probe, the server URL's parts, and [`get`] and [`set`] for JavaScript
//! properties.
//!
//! Everything is looked up on the global object rather than on `window`, so the client
//! also runs in a Web Worker (which has no `document`: there, only `online` wakes it).

use js_sys::{Promise, Reflect};
use std::prelude::rust_2024::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Response, Url};

use super::Error;
use crate::core::{Millis, Probe};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;

    #[wasm_bindgen(catch, js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(catch, js_name = fetch)]
    fn fetch(url: &str) -> Result<Promise, JsValue>;
}

/// Now, on the monotonic clock the core runs on.
pub(crate) fn now() -> Millis {
    performance_now() as Millis
}

/// A seed for the core's jitter and message ids, from `crypto.getRandomValues` (falling back
/// to `Math.random` where there is no `crypto`): two tabs opened at the same instant must
/// not pick the same ids or back off in lockstep.
pub(crate) fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if get_random_values(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    let half = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (half() << 32) | half()
}

/// The token probe: `GET url` (see [`Endpoint::probe_url`]). The server answers 200 with
/// `{"token":"accepted"}` or `{"token":"refused",...}`: a 200 either way, since a browser
/// logs every failed request to the console. A network failure (a CORS refusal too) is
/// [`Probe::Unreachable`]; another status comes from a server that predates `probe=1`,
/// where 401 means refused. Where there is no `fetch`, [`Probe::Accepted`]: the socket will
/// tell.
pub(crate) async fn probe(url: &str) -> Probe {
    let Ok(promise) = fetch(url) else {
        return Probe::Accepted;
    };
    let Ok(response) = JsFuture::from(promise).await else {
        return Probe::Unreachable;
    };
    let response = response.unchecked_into::<Response>();
    match response.status() {
        200 => {
            let answer = match response.json() {
                Ok(json) => JsFuture::from(json).await.unwrap_or(JsValue::UNDEFINED),
                Err(_) => JsValue::UNDEFINED,
            };
            if get(&answer, "token") == "refused" {
                Probe::Refused
            } else {
                Probe::Accepted
            }
        }
        401 => Probe::Refused,
        _ => Probe::Accepted,
    }
}

/// The server's addresses, from the URL the app passed to `connect`.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The WebSocket URL (`ws:` or `wss:`).
    pub(crate) socket: String,
    /// The same address over HTTP, for the auth probe.
    http: String,
}

impl Endpoint {
    /// Accepts `ws:`/`wss:` URLs, and `http:`/`https:` ones (turned into `ws:`/`wss:`, as
    /// the WebSocket constructor itself does). A relative URL is resolved against the page.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, Error> {
        let parsed = match Url::new(url) {
            Ok(parsed) => parsed,
            Err(_) => base_url()
                .and_then(|base| Url::new_with_base(url, &base).ok())
                .ok_or_else(|| Error::InvalidUrl(quoted(url, " cannot be parsed")))?,
        };
        let (socket_scheme, http_scheme) = match href_part(&parsed, "protocol").as_str() {
            "ws:" | "http:" => ("ws:", "http:"),
            "wss:" | "https:" => ("wss:", "https:"),
            _ => {
                return Err(Error::InvalidUrl(quoted(
                    url,
                    " must start with ws://, wss://, http:// or https://",
                )));
            }
        };
        // A WebSocket URL may not carry a fragment.
        set(&parsed, "hash", &JsValue::from_str(""));
        set(&parsed, "protocol", &JsValue::from_str(socket_scheme));
        let socket = href_part(&parsed, "href");
        set(&parsed, "protocol", &JsValue::from_str(http_scheme));
        Ok(Endpoint {
            socket,
            http: href_part(&parsed, "href"),
        })
    }

    /// The URL of the auth probe: the WebSocket URL's address over HTTP (`GET /ws` without
    /// an upgrade), with the token and `probe=1` in the query, which asks the server for a
    /// 200 that says whether it accepts the token.
    pub(crate) fn probe_url(&self, token: &str) -> String {
        match Url::new(&self.http) {
            Ok(url) => {
                let query = url.search_params();
                query.set("token", token);
                query.set("probe", "1");
                href_part(&url, "href")
            }
            // Unreachable: `http` was produced by `Url::href`.
            Err(_) => self.http.clone(),
        }
    }
}

/// `location.href` of the page or worker, to resolve a relative URL against.
fn base_url() -> Option<String> {
    get(&get(&js_sys::global(), "location"), "href").as_string()
}

/// A part of a URL (`href`, `protocol`): always a string.
fn href_part(url: &Url, part: &str) -> String {
    get(url, part).as_string().unwrap_or_default()
}

// Properties are read and written through `Reflect` rather than web-sys's generated getters
// and setters (`Url::href`, `MessageEvent::data`, ...): the same accessors run, and every
// web-sys accessor used would add one more binding to the package's JavaScript.

/// `target[key]`; `undefined` when `target` is not an object or the getter throws.
pub(crate) fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `target[key] = value`; nothing happens when that throws (`target` is not an object).
pub(crate) fn set(target: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// `"<value>"<rest>`, built without `format!` (which would pull formatting code into the
/// wasm for a message nobody reads twice).
pub(crate) fn quoted(value: &str, rest: &str) -> String {
    let mut text = String::with_capacity(value.len() + rest.len() + 2);
    text.push('"');
    text.push_str(value);
    text.push('"');
    text.push_str(rest);
    text
}
