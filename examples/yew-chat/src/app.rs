//! The chat component.

use std::collections::BTreeMap;

use chorus_client::web::{Client, Config, Subscription};
use chorus_client::{Ack, Body, Event, PublishError};
use gloo_net::http::Request;
use serde::{Deserialize, Serialize};
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Body of `POST /api/dev/token`.
#[derive(Serialize)]
struct TokenRequest<'a> {
    user: &'a str,
}

/// The part of its answer the app needs.
#[derive(Deserialize)]
struct TokenResponse {
    token: String,
}

/// Ask the dev server for a token for `user`.
async fn fetch_token(user: String) -> Result<String, String> {
    let response = Request::post("/api/dev/token")
        .json(&TokenRequest { user: &user })
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("HTTP {}: {text}", response.status()));
    }
    let answer: TokenResponse = response.json().await.map_err(|e| e.to_string())?;
    Ok(answer.token)
}

/// `ws(s)://<host>/ws` for the page's own server.
fn ws_url() -> Result<String, String> {
    let location = web_sys::window().ok_or("no window")?.location();
    let protocol = location.protocol().map_err(|_| "no location.protocol")?;
    let host = location.host().map_err(|_| "no location.host")?;
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    Ok(format!("{scheme}://{host}/ws"))
}

fn input_value(event: &InputEvent) -> String {
    event.target_unchecked_into::<HtmlInputElement>().value()
}

fn body_text(body: &Body) -> String {
    match body {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => format!("<{} bytes>", bytes.len()),
    }
}

/// "Alice is typing…", "Alice and Bob are typing…", "Alice, Bob and Carol are typing…".
fn typing_line(users: &[String]) -> String {
    match users {
        [] => String::new(),
        [one] => format!("{one} is typing…"),
        [init @ .., last] => format!("{} and {last} are typing…", init.join(", ")),
    }
}

/// A message the server stored.
struct Line {
    sender: String,
    text: String,
}

/// A message this tab published that has no ack yet, or failed.
struct Outgoing {
    local: u64,
    text: String,
    error: Option<String>,
}

/// What the component reacts to.
pub(crate) enum Msg {
    Nick(String),
    RoomInput(String),
    Draft(String),
    Login,
    Token(Result<String, String>),
    JoinRoom,
    Send,
    Acked(u64, Result<Ack, PublishError>),
    Client(Event),
}

/// The whole app: a login form, then the chat.
pub(crate) struct App {
    nick: String,
    room_input: String,
    draft: String,
    status: String,
    /// A token request is under way (a second Connect click waits for it).
    fetching: bool,
    client: Option<Client>,
    _subscription: Option<Subscription>,
    /// The user the server welcomed us as.
    me: Option<String>,
    room: Option<String>,
    /// The current room's messages by sequence number.
    lines: BTreeMap<u64, Line>,
    outgoing: Vec<Outgoing>,
    next_local: u64,
    typing: Vec<String>,
}

impl App {
    fn join(&mut self) {
        let Some(client) = &self.client else { return };
        let room = self.room_input.trim().to_owned();
        if room.is_empty() || self.room.as_deref() == Some(room.as_str()) {
            return;
        }
        if let Err(e) = client.join(&room) {
            self.status = format!("cannot join {room}: {e:?}");
            return;
        }
        if let Some(old) = self.room.take() {
            client.leave(&old);
        }
        self.status = format!("joining {room}…");
        self.room = Some(room);
        self.lines.clear();
        self.outgoing.clear();
        self.typing.clear();
    }

    fn on_client_event(&mut self, event: Event) -> bool {
        match event {
            Event::Open { user, .. } => {
                self.status = format!("connected as {user}");
                self.me = Some(user);
            }
            Event::Reconnecting {
                attempt, delay_ms, ..
            } => {
                self.status = format!("reconnecting (attempt {attempt}, in {delay_ms} ms)…");
            }
            Event::Close { code, reason } => {
                self.status = format!("closed ({code}): {reason}");
            }
            Event::Joined { room, members, .. } if self.room.as_ref() == Some(&room) => {
                self.status = format!("in {room} with {}", members.join(", "));
            }
            Event::Message {
                room,
                seq,
                sender,
                body,
                ..
            } if self.room.as_ref() == Some(&room) => {
                let text = body_text(&body);
                self.lines.entry(seq).or_insert(Line { sender, text });
            }
            Event::Typing { room, users } if self.room.as_ref() == Some(&room) => {
                self.typing = users
                    .into_iter()
                    .filter(|user| Some(user) != self.me.as_ref())
                    .collect();
            }
            Event::Error { code, message, .. } => {
                self.status = format!("error {code}: {message}");
            }
            _ => return false,
        }
        true
    }

    fn view_login(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let onsubmit = link.callback(|event: SubmitEvent| {
            event.prevent_default();
            Msg::Login
        });
        html! {
            <form class="login" {onsubmit}>
                <input placeholder="nickname" value={self.nick.clone()}
                    oninput={link.callback(|e: InputEvent| Msg::Nick(input_value(&e)))} />
                <input placeholder="room" value={self.room_input.clone()}
                    oninput={link.callback(|e: InputEvent| Msg::RoomInput(input_value(&e)))} />
                <button type="submit">{ "Connect" }</button>
            </form>
        }
    }

    fn view_chat(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let on_join = link.callback(|event: SubmitEvent| {
            event.prevent_default();
            Msg::JoinRoom
        });
        let on_draft_key = link
            .batch_callback(|event: KeyboardEvent| (event.key() == "Enter").then_some(Msg::Send));
        let me = self.me.clone().unwrap_or_default();
        html! {
            <>
                <form class="room" onsubmit={on_join}>
                    <input placeholder="room" value={self.room_input.clone()}
                        oninput={link.callback(|e: InputEvent| Msg::RoomInput(input_value(&e)))} />
                    <button type="submit">{ "Join" }</button>
                </form>
                <ul class="messages">
                    { for self.lines.iter().map(|(seq, line)| html! {
                        <li key={format!("s{seq}")} class="acked">
                            <b>{ &line.sender }</b>{ ": " }{ &line.text }
                        </li>
                    }) }
                    { for self.outgoing.iter().map(|out| {
                        let (class, note) = match &out.error {
                            None => ("pending", String::from(" (sending…)")),
                            Some(e) => ("failed", format!(" (failed: {e})")),
                        };
                        html! {
                            <li key={format!("p{}", out.local)} {class}>
                                <b>{ &me }</b>{ ": " }{ &out.text }<i>{ note }</i>
                            </li>
                        }
                    }) }
                </ul>
                <p class="typing">{ typing_line(&self.typing) }</p>
                <input class="draft" placeholder="message, Enter to send"
                    disabled={self.room.is_none()}
                    value={self.draft.clone()}
                    oninput={link.callback(|e: InputEvent| Msg::Draft(input_value(&e)))}
                    onkeydown={on_draft_key} />
            </>
        }
    }
}

impl Component for App {
    type Message = Msg;
    type Properties = ();

    fn create(_ctx: &Context<Self>) -> Self {
        App {
            nick: String::new(),
            room_input: String::from("lobby"),
            draft: String::new(),
            status: String::from("pick a nickname"),
            fetching: false,
            client: None,
            _subscription: None,
            me: None,
            room: None,
            lines: BTreeMap::new(),
            outgoing: Vec::new(),
            next_local: 0,
            typing: Vec::new(),
        }
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::Nick(nick) => self.nick = nick,
            Msg::RoomInput(room) => self.room_input = room,
            Msg::Draft(draft) => {
                self.draft = draft;
                if let (Some(client), Some(room)) = (&self.client, &self.room) {
                    client.typing(room);
                }
            }
            Msg::Login => {
                let nick = self.nick.trim().to_owned();
                if nick.is_empty() || self.fetching || self.client.is_some() {
                    return false;
                }
                self.fetching = true;
                self.status = String::from("getting a token…");
                ctx.link()
                    .send_future(async move { Msg::Token(fetch_token(nick).await) });
            }
            Msg::Token(Err(e)) => {
                self.fetching = false;
                self.status = format!("no token: {e}");
            }
            Msg::Token(Ok(token)) => {
                self.fetching = false;
                let config = match ws_url() {
                    Ok(url) => Config::new(url).token(token),
                    Err(e) => {
                        self.status = e;
                        return true;
                    }
                };
                match Client::connect(config) {
                    Ok(client) => {
                        let on_event = ctx.link().callback(Msg::Client);
                        self._subscription =
                            Some(client.on_event(move |event| on_event.emit(event.clone())));
                        self.client = Some(client);
                        self.status = String::from("connecting…");
                        self.join();
                    }
                    Err(e) => self.status = format!("cannot connect: {e:?}"),
                }
            }
            Msg::JoinRoom => self.join(),
            Msg::Send => {
                let (Some(client), Some(room)) = (&self.client, &self.room) else {
                    return false;
                };
                let text = self.draft.trim().to_owned();
                if text.is_empty() {
                    return false;
                }
                let local = self.next_local;
                self.next_local += 1;
                let publish = client.publish(room, text.as_str());
                ctx.link()
                    .send_future(async move { Msg::Acked(local, publish.await) });
                self.outgoing.push(Outgoing {
                    local,
                    text,
                    error: None,
                });
                self.draft.clear();
            }
            Msg::Acked(local, result) => {
                let Some(index) = self.outgoing.iter().position(|out| out.local == local) else {
                    return false;
                };
                match result {
                    Ok(ack) => {
                        let out = self.outgoing.remove(index);
                        if self.room.as_ref() == Some(&ack.room) {
                            let sender = self.me.clone().unwrap_or_default();
                            self.lines.entry(ack.seq).or_insert(Line {
                                sender,
                                text: out.text,
                            });
                        }
                    }
                    Err(e) => self.outgoing[index].error = Some(format!("{e:?}")),
                }
            }
            Msg::Client(event) => return self.on_client_event(event),
        }
        true
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        html! {
            <main>
                <h1>{ "Chorus · Yew chat" }</h1>
                <p class="status">{ &self.status }</p>
                { if self.client.is_some() { self.view_chat(ctx) } else { self.view_login(ctx) } }
            </main>
        }
    }

    fn destroy(&mut self, _ctx: &Context<Self>) {
        if let Some(client) = &self.client {
            client.close();
        }
    }
}
