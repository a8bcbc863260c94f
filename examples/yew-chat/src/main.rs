//! A small Yew chat on chorus-client's Rust API: a nickname, a room, messages and typing
//! indicators. The app exists on wasm32 only; on any other target `main` does nothing.

#[cfg(target_arch = "wasm32")]
mod app;

#[cfg(target_arch = "wasm32")]
fn main() {
    yew::Renderer::<app::App>::new().render();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
