//! The calls pane: opening a call, replaying it in its form, and the
//! filter typed after `/`.

use super::{Action, App, CallDetailView, Overlay, Pending, Screen};
use crate::console::calls::CallFilter;
use crate::control::{Reply, Request};

impl App {
    /// Enter in the calls pane: the call's details, its payloads fetched.
    pub(super) fn open_call(&mut self) -> Option<Action> {
        let row = self.calls.selected_row()?.clone();
        let call = row.call().id;
        self.overlay = Some(Overlay::CallDetail(CallDetailView {
            row,
            detail: None,
            loading: true,
            scroll: 0,
        }));
        self.request(
            Request::CallDetail { call },
            Pending::Detail {
                call,
                replay: false,
            },
        )
    }

    /// `e`: the selected (or opened) call in its form, to send it again.
    pub(super) fn replay(&mut self) -> Option<Action> {
        if let Some(Overlay::CallDetail(view)) = &self.overlay {
            let arguments = match &view.detail {
                Some(detail) => detail.arguments.clone(),
                None => view.row.call().arguments.clone(),
            };
            let call = view.row.call();
            let (kind, name) = (call.kind, call.tool.to_string());
            self.overlay = None;
            self.replay_in_form(kind, &name, &arguments);
            return None;
        }
        let call = self.calls.selected_row()?.call().id;
        self.request(
            Request::CallDetail { call },
            Pending::Detail { call, replay: true },
        )
    }

    pub(super) fn on_detail(&mut self, call: u64, replay: bool, reply: Reply) {
        let detail = match reply {
            Reply::CallDetail { detail } => detail,
            _ => None,
        };
        if replay {
            // The previews will do when the payloads are gone.
            let Some(row) = self
                .calls
                .selected_row()
                .filter(|row| row.call().id == call)
                .cloned()
            else {
                return;
            };
            let call = row.call();
            let arguments = detail.map_or_else(|| call.arguments.clone(), |d| d.arguments);
            self.replay_in_form(call.kind, &call.tool, &arguments);
            return;
        }
        if let Some(Overlay::CallDetail(view)) = &mut self.overlay
            && view.row.call().id == call
        {
            view.detail = detail;
            view.loading = false;
        }
    }

    pub(super) fn start_filter(&mut self) {
        self.screen = Screen::Filter(self.calls.filter().text().to_string());
    }

    pub(super) fn apply_filter(&mut self) {
        if let Screen::Filter(text) = std::mem::replace(&mut self.screen, Screen::Panes) {
            self.calls.set_filter(CallFilter::parse(&text));
        }
    }
}
