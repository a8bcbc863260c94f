//! [`Listener`]: one DOM event listener, owned, and removed when dropped.

use std::prelude::rust_2024::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{Event, EventTarget};

/// A listener for `kind` events on a target, removed from it when dropped: the pattern of
/// gloo-events' `EventListener`, without its options object (`passive` and `capture` only
/// matter for scrolling and for events that bubble through the DOM, neither of which the
/// client listens to), whose bindings cost the package more than this type does.
#[must_use = "dropping a Listener removes it at once"]
pub(crate) struct Listener {
    target: EventTarget,
    kind: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

impl Listener {
    pub(crate) fn new(
        target: &EventTarget,
        kind: &'static str,
        mut callback: impl FnMut(&Event) + 'static,
    ) -> Listener {
        let callback = Closure::<dyn FnMut(Event)>::new(move |event: Event| callback(&event));
        // addEventListener only throws for a callback that is not a function.
        let _ = target.add_event_listener_with_callback(kind, callback.as_ref().unchecked_ref());
        Listener {
            target: target.clone(),
            kind,
            callback,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.callback.as_ref().unchecked_ref());
    }
}
