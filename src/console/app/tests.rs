//! `App::update` from sequences of events: no terminal, no I/O.

use std::sync::Arc;
use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyModifiers};
use serde_json::json;

use super::*;
use crate::catalog::OutputKind;
use crate::console::app::LibraryRow;
use crate::console::form::{FormOutcome, Validation};
use crate::console::testing::{
    self, app, counters, ctrl, key, keys, press, tick, type_text, updates,
};
use crate::control::{Counters, Reply, Update};
use crate::events::{CallEvent, CallSource, CallStatus, LifecycleEvent};
use crate::events::{Change, ServerEvent};
use crate::registry::{CallReply, ChangeReport, PluginChange, RunningCall, ToolOutput};
use crate::runtime::{CallFailure, FailureKind, Progress};

fn selected_row(app: &App) -> PluginRow {
    app.plugins.rows[app.plugins.selected]
}

fn selected_name(app: &App) -> String {
    let row = selected_row(app);
    let plugin = &app.plugins.list()[row.plugin()];
    match row {
        PluginRow::Function { function, .. } => plugin.tools[function].name.clone(),
        _ => plugin.name.clone(),
    }
}

/// The request `action` sends, with its id.
fn request(action: Option<Action>) -> (u64, Request) {
    match action {
        Some(Action::Request { id, request }) => (id, request),
        other => panic!("expected a request, got {other:?}"),
    }
}

fn reply(app: &mut App, id: u64, reply: Reply) {
    app.update(ConsoleEvent::Reply { id, reply });
}

fn form(app: &App) -> &CallForm {
    app.open_form().expect("a form is open")
}

fn visible_call_ids(app: &App) -> Vec<u64> {
    app.calls
        .visible_rows(app.calls_height())
        .map(|(_, row)| row.call().id)
        .collect()
}

/// Open the form of `rollDice` (the second row).
fn open_roll_dice(app: &mut App) {
    keys(app, "j");
    assert_eq!(app.update(key(KeyCode::Enter)), None);
    assert_eq!(form(app).target.name(), "rollDice");
}

fn server_event(event: ServerEvent) -> ConsoleEvent {
    updates(
        3725,
        vec![Update::Event {
            event: crate::events::SharedEvent::new(Arc::new(event)),
        }],
    )
}

fn new_call(id: u64, tool: &str, ok: bool) -> ConsoleEvent {
    server_event(ServerEvent::Call(CallEvent {
        id,
        started: testing::wall(100 + id),
        source: CallSource::Console,
        kind: Default::default(),
        tool: tool.into(),
        plugin: "roll-dice".into(),
        arguments: "{}".into(),
        status: if ok {
            CallStatus::Ok {
                preview: "4".into(),
            }
        } else {
            CallStatus::Error {
                kind: FailureKind::Trap,
                message: "boom".into(),
            }
        },
        duration: Duration::from_millis(1),
        overlapping: 1,
    }))
}

#[test]
fn the_plugin_list_moves_over_plugins_and_functions_and_skips_reasons() {
    let mut app = app(80, 24, false);
    assert_eq!(app.focus, Pane::Plugins);
    assert_eq!(selected_name(&app), "roll-dice");
    keys(&mut app, "j");
    assert_eq!(selected_name(&app), "rollDice");
    keys(&mut app, "j");
    assert_eq!(selected_name(&app), "hello");
    // hello is stale: the row after it is its reason, which is skipped.
    keys(&mut app, "j");
    assert_eq!(selected_name(&app), "say_hello");
    keys(&mut app, "k");
    assert_eq!(selected_name(&app), "hello");
    keys(&mut app, "G");
    assert_eq!(selected_name(&app), "forecast");
    keys(&mut app, "g");
    assert_eq!(selected_name(&app), "roll-dice");
    app.update(key(KeyCode::Down));
    assert_eq!(selected_name(&app), "rollDice");
    app.update(key(KeyCode::Up));
    assert_eq!(selected_name(&app), "roll-dice");
}

#[test]
fn panes_change_with_tab_shift_tab_and_numbers() {
    let mut app = app(80, 24, false);
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Calls);
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Log);
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Library);
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Plugins);
    app.update(key(KeyCode::BackTab));
    assert_eq!(app.focus, Pane::Library);
    app.update(key(KeyCode::BackTab));
    assert_eq!(app.focus, Pane::Log);
    keys(&mut app, "2");
    assert_eq!(app.focus, Pane::Calls);
    keys(&mut app, "1");
    assert_eq!(app.focus, Pane::Plugins);
    keys(&mut app, "3");
    assert_eq!(app.focus, Pane::Log);
}

#[test]
fn key_releases_are_ignored() {
    let mut app = app(80, 24, false);
    let mut release = press(KeyCode::Char('j'), KeyModifiers::NONE);
    release.kind = ratatui::crossterm::event::KeyEventKind::Release;
    app.update(ConsoleEvent::Key(release));
    assert_eq!(selected_name(&app), "roll-dice");
}

#[test]
fn the_form_starts_from_a_skeleton_in_declared_order() {
    let mut app = app(80, 24, false);
    open_roll_dice(&mut app);
    assert_eq!(
        form(&app).text(),
        "{\n  \"numFaces\": 0,\n  \"numDice\": 0\n}"
    );
    assert_eq!(form(&app).validation, Validation::Valid);
}

#[test]
fn the_form_validates_as_the_operator_types() {
    let mut app = app(80, 24, false);
    open_roll_dice(&mut app);
    // Break the JSON: a stray character on line 2.
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::End));
    type_text(&mut app, "x");
    match &form(&app).validation {
        Validation::Syntax { line, column, .. } => assert_eq!((*line, *column), (2, 17)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    app.update(key(KeyCode::Backspace));
    assert_eq!(form(&app).validation, Validation::Valid);
    // Well-formed, but a string where an integer is expected.
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Backspace));
    type_text(&mut app, "\"six\"");
    match &form(&app).validation {
        Validation::Schema(message) => {
            assert!(
                message.contains("`numFaces` must be an integer"),
                "{message}"
            )
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn keys_the_keymap_claims_never_reach_the_editor_and_others_do() {
    let mut app = app(80, 24, false);
    open_roll_dice(&mut app);
    // `q`, `j`, `1` and Enter are text in the editor.
    app.update(key(KeyCode::Right));
    assert_eq!(keys(&mut app, "qj1"), []);
    app.update(key(KeyCode::Enter));
    assert!(
        form(&app).text().starts_with("{qj1\n"),
        "{}",
        form(&app).text()
    );
    assert!(app.open_form().is_some());
    // Ctrl-C is not the editor's copy: it quits (no call in flight).
    assert_eq!(app.update(ctrl('c')), Some(Action::Quit));
}

#[test]
fn ctrl_s_sends_valid_arguments_and_the_result_shows_pretty() {
    let mut app = app(80, 24, false);
    keys(&mut app, "jjjjj");
    assert_eq!(selected_name(&app), "add");
    app.update(key(KeyCode::Enter));
    let (id, sent) = request(app.update(ctrl('s')));
    let Request::Call { tool, arguments } = sent else {
        panic!("expected a call, got {sent:?}");
    };
    assert_eq!(tool, "add");
    assert_eq!(
        serde_json::Value::Object(arguments),
        json!({"left": 0, "right": 0})
    );
    assert_eq!(form(&app).outcome, Some(FormOutcome::Pending));
    reply(
        &mut app,
        id,
        Reply::Called {
            result: Ok(CallReply {
                call_id: 42,
                output: ToolOutput::text(r#"{"result":0}"#),
            }),
        },
    );
    assert_eq!(
        form(&app).outcome,
        Some(FormOutcome::Ok {
            call_id: 42,
            text: "{\n  \"result\": 0\n}".into()
        })
    );
}

#[test]
fn failures_show_under_the_editor_and_stale_results_are_ignored() {
    let mut app = app(80, 24, false);
    open_roll_dice(&mut app);
    let (first, _) = request(app.update(ctrl('s')));
    let (second, _) = request(app.update(ctrl('s')));
    reply(
        &mut app,
        second,
        Reply::Called {
            result: Err(CallFailure::new(
                FailureKind::PluginError,
                "numDice must be an integer between 1 and 1000 (got 0)",
            )),
        },
    );
    // The first call's answer comes late: the form keeps the latest.
    reply(
        &mut app,
        first,
        Reply::Called {
            result: Ok(CallReply {
                call_id: 1,
                output: ToolOutput::text("3"),
            }),
        },
    );
    assert!(matches!(
        form(&app).outcome,
        Some(FormOutcome::Failed {
            kind: FailureKind::PluginError,
            ..
        })
    ));
}

#[test]
fn invalid_arguments_are_not_sent() {
    let mut app = app(80, 24, false);
    open_roll_dice(&mut app);
    type_text(&mut app, "oops");
    assert_eq!(app.update(ctrl('s')), None);
    let notice = app.notice.clone().expect("a notice says why");
    assert!(notice.is_error);
    assert!(notice.text.contains("line 1, column 1"), "{}", notice.text);
}

#[test]
fn esc_leaves_the_form_and_keeps_the_draft_per_function() {
    let mut app = app(80, 24, false);
    open_roll_dice(&mut app);
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::End));
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Backspace));
    type_text(&mut app, "20");
    let draft = form(&app).text();
    app.update(key(KeyCode::Esc));
    assert!(app.open_form().is_none());
    // Another function has its own draft.
    keys(&mut app, "jjjj");
    assert_eq!(selected_name(&app), "add");
    app.update(key(KeyCode::Enter));
    assert!(form(&app).text().contains("\"left\""));
    app.update(key(KeyCode::Esc));
    keys(&mut app, "g");
    open_roll_dice(&mut app);
    assert_eq!(form(&app).text(), draft);
    // Ctrl-R resets to the skeleton; Ctrl-U (the editor's undo) brings the
    // draft back.
    app.update(ctrl('r'));
    assert!(form(&app).text().contains("\"numFaces\": 0"));
    app.update(ctrl('u'));
    app.update(ctrl('u'));
    assert_eq!(form(&app).text(), draft);
}

#[test]
fn previous_arguments_come_back_with_ctrl_p_and_ctrl_n() {
    let mut app = app(80, 24, false);
    open_roll_dice(&mut app);
    let first = form(&app).text();
    app.update(ctrl('s'));
    app.update(ctrl('r'));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::End));
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Backspace));
    type_text(&mut app, "8");
    let second = form(&app).text();
    app.update(ctrl('s'));
    type_text(&mut app, " ");
    let draft = form(&app).text();
    app.update(ctrl('p'));
    assert_eq!(form(&app).text(), second);
    assert_eq!(form(&app).history_place(), Some((2, 2)));
    app.update(ctrl('p'));
    assert_eq!(form(&app).text(), first);
    app.update(ctrl('p'));
    assert_eq!(form(&app).text(), first, "nothing older");
    app.update(ctrl('n'));
    app.update(ctrl('n'));
    assert_eq!(form(&app).text(), draft, "back to the draft");
}

#[test]
fn pasted_text_goes_into_the_editor_with_its_line_breaks() {
    let mut app = app(80, 24, false);
    open_roll_dice(&mut app);
    // Terminals send the pasted line breaks as CR.
    app.update(ConsoleEvent::Paste(
        "{\"numFaces\": 6,\r\n \"numDice\": 2}\r".into(),
    ));
    assert!(
        form(&app)
            .text()
            .starts_with("{\"numFaces\": 6,\n \"numDice\": 2}\n{"),
        "{}",
        form(&app).text()
    );
    // Outside the editor and the filter prompt, a paste does nothing.
    app.update(key(KeyCode::Esc));
    app.update(ConsoleEvent::Paste("q".into()));
    assert!(app.overlay.is_none());
}

#[test]
fn enter_on_a_function_of_a_failed_plugin_says_why_it_cannot_be_called() {
    let mut app = app(80, 24, false);
    keys(&mut app, "G");
    assert_eq!(selected_name(&app), "forecast");
    app.update(key(KeyCode::Enter));
    assert!(app.open_form().is_none());
    let notice = app.notice.clone().expect("a notice");
    assert!(
        notice.text.contains("weather failed to load"),
        "{}",
        notice.text
    );
    // Enter on the plugin shows its details, with the reason.
    keys(&mut app, "k");
    app.update(key(KeyCode::Enter));
    assert!(
        matches!(app.overlay, Some(Overlay::PluginDetail { ref plugin, .. }) if plugin == "weather")
    );
}

#[test]
fn r_reloads_the_selected_plugin_and_the_result_is_shown() {
    let mut app = app(80, 24, false);
    keys(&mut app, "j");
    let (id, sent) = request(keys(&mut app, "r").pop());
    assert_eq!(
        sent,
        Request::ReloadPlugin {
            plugin: "roll-dice".into()
        }
    );
    assert!(app.plugins.reloading.contains("roll-dice"));
    reply(
        &mut app,
        id,
        Reply::Reloaded {
            result: Ok(ChangeReport {
                changes: vec![PluginChange {
                    plugin: "roll-dice".into(),
                    change: Change::Replaced,
                    message: "reloaded with 1 instance in 10 ms".into(),
                }],
                ..Default::default()
            }),
        },
    );
    assert!(app.plugins.reloading.is_empty());
    assert!(matches!(app.overlay, Some(Overlay::Report(_))));
    app.update(key(KeyCode::Esc));
    assert!(app.overlay.is_none());
    assert_eq!(request(keys(&mut app, "R").pop()).1, Request::ReloadAll);
}

#[test]
fn lifecycle_events_mark_plugins_as_reloading() {
    let mut app = app(80, 24, false);
    let event = |change| {
        server_event(ServerEvent::Lifecycle(LifecycleEvent {
            at: testing::wall(0),
            origin: "admin API".into(),
            plugin: Some("addition".into()),
            change,
            message: String::new(),
        }))
    };
    app.update(event(Change::Reloading));
    assert!(app.plugins.reloading.contains("addition"));
    app.update(event(Change::Replaced));
    assert!(app.plugins.reloading.is_empty());
}

#[test]
fn a_new_snapshot_keeps_the_selection_on_the_same_row() {
    let mut app = app(80, 24, false);
    keys(&mut app, "jjj");
    assert_eq!(selected_name(&app), "say_hello");
    app.update(updates(
        3726,
        vec![Update::Plugins {
            plugins: testing::plugins(),
        }],
    ));
    assert_eq!(selected_name(&app), "say_hello");
}

#[test]
fn the_call_log_follows_until_scrolled_and_f_toggles() {
    let mut app = app(80, 24, false);
    keys(&mut app, "2");
    assert!(app.calls.follow);
    keys(&mut app, "k");
    assert!(!app.calls.follow);
    assert_eq!(app.calls.selected_row().unwrap().call().id, 5);
    // More calls than the view holds arrive: the view does not scroll.
    let before = visible_call_ids(&app);
    for id in 7..40 {
        app.update(new_call(id, "rollDice", true));
    }
    assert_eq!(app.calls.selected_row().unwrap().call().id, 5);
    assert_eq!(
        visible_call_ids(&app)[0],
        before[0],
        "a frozen view stays put"
    );
    keys(&mut app, "f");
    assert!(app.calls.follow);
    assert_eq!(visible_call_ids(&app).last(), Some(&39));
    keys(&mut app, "f");
    assert!(!app.calls.follow);
    app.update(new_call(40, "rollDice", true));
    assert_eq!(visible_call_ids(&app).last(), Some(&39));
    keys(&mut app, "G");
    assert!(app.calls.follow);
    assert_eq!(visible_call_ids(&app).last(), Some(&40));
    keys(&mut app, "g");
    assert_eq!(app.calls.selected_row().unwrap().call().id, 1);
}

#[test]
fn the_filter_narrows_the_log_and_esc_keeps_the_previous_one() {
    let mut app = app(80, 24, false);
    keys(&mut app, "2/");
    assert!(matches!(app.screen, Screen::Filter(_)));
    // While typing, letters are text, not commands.
    assert_eq!(keys(&mut app, "error"), []);
    app.update(key(KeyCode::Enter));
    assert_eq!(visible_call_ids(&app), [3, 4, 6]);
    keys(&mut app, "/");
    app.update(ctrl('u'));
    keys(&mut app, "tool:add");
    app.update(key(KeyCode::Esc));
    assert_eq!(app.calls.filter().text(), "error");
    keys(&mut app, "/");
    app.update(ctrl('u'));
    keys(&mut app, "source:mcp status:ok");
    app.update(key(KeyCode::Enter));
    assert_eq!(visible_call_ids(&app), [1, 5]);
    app.update(new_call(9, "rollDice", true));
    assert_eq!(
        visible_call_ids(&app),
        [1, 5],
        "a console call does not match"
    );
}

#[test]
fn c_clears_the_view_only() {
    let mut app = app(80, 24, false);
    keys(&mut app, "2c");
    assert_eq!(app.calls.counts(), (0, 0));
    keys(&mut app, "3c");
    assert_eq!(app.log.counts(), (0, 0));
    assert_eq!(app.stats.calls, 6, "the counters are the server's");
}

#[test]
fn enter_opens_a_call_and_e_replays_it_in_the_form() {
    let mut app = app(80, 24, false);
    keys(&mut app, "2k");
    let (id, sent) = request(app.update(key(KeyCode::Enter)));
    assert_eq!(sent, Request::CallDetail { call: 5 });
    assert!(matches!(app.overlay, Some(Overlay::CallDetail(ref view)) if view.loading));
    reply(
        &mut app,
        id,
        testing::detail(5, r#"{"left":2,"right":3}"#, Ok(r#"{"result":5}"#)),
    );
    assert!(matches!(app.overlay, Some(Overlay::CallDetail(ref view)) if view.detail.is_some()));
    keys(&mut app, "e");
    assert!(app.overlay.is_none());
    assert_eq!(form(&app).target.name(), "add");
    assert_eq!(form(&app).text(), "{\n  \"left\": 2,\n  \"right\": 3\n}");
}

#[test]
fn e_in_the_log_fetches_the_arguments_then_opens_the_form() {
    let mut app = app(80, 24, false);
    keys(&mut app, "2g");
    let (id, sent) = request(keys(&mut app, "e").pop());
    assert_eq!(sent, Request::CallDetail { call: 1 });
    // The server no longer has the payloads: the preview serves.
    reply(&mut app, id, Reply::CallDetail { detail: None });
    assert_eq!(form(&app).target.name(), "rollDice");
    assert_eq!(
        form(&app).text(),
        "{\n  \"numDice\": 3,\n  \"numFaces\": 6\n}"
    );
}

#[test]
fn q_asks_first_while_calls_are_in_flight() {
    let mut app = app(80, 24, false);
    assert_eq!(keys(&mut app, "q"), [Action::Quit]);
    app.update(counters(3726, 7, 3, 2));
    assert_eq!(keys(&mut app, "q"), []);
    assert!(matches!(app.overlay, Some(Overlay::ConfirmQuit)));
    assert_eq!(keys(&mut app, "n"), []);
    assert!(app.overlay.is_none());
    keys(&mut app, "q");
    assert_eq!(keys(&mut app, "y"), [Action::Quit]);
    // A second Ctrl-C confirms too.
    let mut app = testing::app(80, 24, false);
    app.update(counters(3726, 7, 3, 1));
    assert_eq!(app.update(ctrl('c')), None);
    assert_eq!(app.update(ctrl('c')), Some(Action::Quit));
}

#[test]
fn help_opens_with_question_mark_or_f1_and_closes_with_esc() {
    let mut app = app(80, 24, false);
    keys(&mut app, "?");
    assert!(matches!(app.overlay, Some(Overlay::Help { .. })));
    keys(&mut app, "j");
    assert!(matches!(app.overlay, Some(Overlay::Help { scroll: 1 })));
    app.update(key(KeyCode::Esc));
    assert!(app.overlay.is_none());
    open_roll_dice(&mut app);
    app.update(key(KeyCode::F(1)));
    assert!(matches!(app.overlay, Some(Overlay::Help { .. })));
    app.update(key(KeyCode::Esc));
    assert!(
        app.open_form().is_some(),
        "Esc closed the help, not the form"
    );
}

#[test]
fn esc_typed_fast_before_a_key_is_still_esc_then_the_key() {
    let mut app = app(80, 24, false);
    open_roll_dice(&mut app);
    // tmux delivers Esc then `2` within its escape-time as Alt-2.
    app.update(ConsoleEvent::Key(press(
        KeyCode::Char('2'),
        KeyModifiers::ALT,
    )));
    assert!(app.open_form().is_none());
    assert_eq!(app.focus, Pane::Calls);
}

#[test]
fn ctrl_z_suspends_and_t_asks_for_the_tokens_and_hides_them() {
    let mut app = app(80, 24, false);
    assert_eq!(app.update(ctrl('z')), Some(Action::Suspend));
    let (id, sent) = request(keys(&mut app, "t").pop());
    assert_eq!(sent, Request::Tokens);
    assert_eq!(app.header_rows(), 2);
    reply(
        &mut app,
        id,
        Reply::Tokens {
            mcp: Some("mcp-secret".into()),
            admin: None,
        },
    );
    assert_eq!(
        app.tokens.as_ref().and_then(|t| t.mcp.as_deref()),
        Some("mcp-secret")
    );
    assert_eq!(app.header_rows(), 3);
    assert_eq!(keys(&mut app, "t"), []);
    assert!(app.tokens.is_none());
}

#[test]
fn counters_give_a_rate_and_redraw_only_when_something_shows_a_change() {
    let mut app = app(80, 24, false);
    assert!((app.stats.calls_per_second - 1.2).abs() < 1e-9);
    app.take_dirty();
    // Same second: a tick has nothing to redraw.
    app.update(ConsoleEvent::Tick(
        testing::started() + Duration::from_millis(3_725_400),
    ));
    assert!(!app.take_dirty());
    // The uptime's second changes.
    app.update(tick(3726));
    assert!(app.take_dirty());
    assert_eq!(app.uptime(), Duration::from_secs(3726));
    // New counters show.
    app.update(counters(3726, 8, 3, 1));
    assert!(app.take_dirty());
    // Two more calls in the second after the last window.
    app.update(tick(3727));
    assert!((app.stats.calls_per_second - 2.0).abs() < 1e-9);
}

#[test]
fn sessions_refusals_and_a_drain_come_with_the_counters() {
    let mut app = app(80, 24, false);
    assert_eq!(app.stats.phase, Phase::Serving);
    app.take_dirty();
    app.update(updates(
        3726,
        vec![Update::Counters(Counters {
            sessions: 14,
            rate_limited: 327,
            phase: Phase::Draining,
            ..Counters::default()
        })],
    ));
    assert!(app.take_dirty());
    assert_eq!(app.stats.sessions, 14);
    assert_eq!(app.stats.rate_limited, 327);
    assert_eq!(app.stats.phase, Phase::Draining);
}

#[test]
fn dropped_events_are_counted() {
    let mut app = app(80, 24, false);
    app.update(updates(3726, vec![Update::Missed { count: 12 }]));
    app.update(updates(3727, vec![Update::Missed { count: 3 }]));
    assert_eq!(app.stats.dropped, 15);
}

#[test]
fn the_call_log_keeps_a_bounded_ring() {
    let mut app = app(80, 24, false);
    for id in 10..10 + CALLS_KEPT as u64 + 50 {
        app.update(new_call(id, "rollDice", id % 2 == 0));
    }
    assert_eq!(app.calls.counts().0, CALLS_KEPT);
}

#[test]
fn the_log_pane_freezes_with_f_or_g_and_follows_again_with_capital_g() {
    let mut app = app(80, 24, false);
    let many = |from: usize| {
        updates(
            3726,
            vec![Update::Log {
                lines: (from..from + 50).map(|i| format!("line {i}")).collect(),
            }],
        )
    };
    app.update(many(0));
    let height = app.log_height();
    keys(&mut app, "3");
    assert!(app.log.follow);
    let bottom = app.log.top_index(height);
    assert!(bottom > 0, "more lines than the pane shows");

    keys(&mut app, "f");
    assert!(!app.log.follow);
    app.update(many(50));
    assert_eq!(
        app.log.top_index(height),
        bottom,
        "frozen: new lines do not move it"
    );

    keys(&mut app, "g");
    assert_eq!(app.log.top_index(height), 0);
    keys(&mut app, "G");
    assert!(app.log.follow);
    assert_eq!(app.log.top_index(height), app.log.counts().0 - height);

    keys(&mut app, "fc");
    assert_eq!(app.log.counts(), (0, 0));
    assert!(app.log.follow, "clearing follows again");
}

/// The name of the selected row of the resources-and-prompts pane.
fn selected_library_entry(app: &App) -> String {
    match app.library.rows[app.library.selected] {
        LibraryRow::Resource(i) => app.library.resources[i].name.clone(),
        LibraryRow::Prompt(i) => app.library.prompts[i].name.clone(),
        LibraryRow::Heading(_) => "a heading".into(),
    }
}

#[test]
fn the_library_pane_lists_resources_then_prompts_and_skips_headings() {
    let mut app = app(80, 24, false);
    keys(&mut app, "4");
    assert_eq!(app.focus, Pane::Library);
    assert_eq!(selected_library_entry(&app), "info");
    keys(&mut app, "k");
    assert_eq!(
        selected_library_entry(&app),
        "info",
        "the heading is not selectable"
    );
    keys(&mut app, "jjj");
    assert_eq!(
        selected_library_entry(&app),
        "greet",
        "past the Prompts heading"
    );
    keys(&mut app, "g");
    assert_eq!(selected_library_entry(&app), "info");
    keys(&mut app, "G");
    assert_eq!(selected_library_entry(&app), "greet");
}

#[test]
fn a_template_is_read_through_its_form_with_its_variables_checked() {
    let mut app = app(80, 24, false);
    keys(&mut app, "4jj");
    assert_eq!(selected_library_entry(&app), "dice");
    app.update(key(KeyCode::Enter));
    assert_eq!(form(&app).target.name(), "dice");
    assert_eq!(form(&app).text(), "{\n  \"count\": 0,\n  \"faces\": 0\n}");
    // A variable of the wrong type is not sent.
    app.update(ctrl('r'));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::End));
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Backspace));
    type_text(&mut app, "\"many\"");
    assert!(
        matches!(&form(&app).validation, Validation::Schema(m) if m.contains("`count` must be an integer"))
    );
    assert_eq!(app.update(ctrl('s')), None);
    // Fixed: the read goes to the URI the template makes.
    app.update(ctrl('r'));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::End));
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Backspace));
    type_text(&mut app, "3");
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::End));
    app.update(key(KeyCode::Backspace));
    type_text(&mut app, "6");
    let (id, sent) = request(app.update(ctrl('s')));
    assert_eq!(
        sent,
        Request::ReadResource {
            uri: "dice://3d6".into()
        }
    );
    reply(
        &mut app,
        id,
        Reply::Read {
            result: Ok(crate::registry::ResourceRead {
                call_id: 12,
                contents: vec![crate::registry::ResourceContent {
                    uri: "dice://3d6".into(),
                    mime_type: Some("text/plain".into()),
                    text: "14".into(),
                    blob: None,
                    meta: Default::default(),
                }],
            }),
        },
    );
    assert_eq!(
        form(&app).outcome,
        Some(FormOutcome::Ok {
            call_id: 12,
            text: "14".into()
        })
    );
}

#[test]
fn a_prompt_is_rendered_through_its_form() {
    let mut app = app(80, 24, false);
    keys(&mut app, "4G");
    app.update(key(KeyCode::Enter));
    assert_eq!(form(&app).target.name(), "greet");
    // The server's checks, in the form: a required argument left out.
    let problem = crate::console::form::validate(&form(&app).target, r#"{"mood":"sunny"}"#);
    assert!(
        matches!(&problem, Err(Validation::Schema(m)) if m.contains("missing required argument `nickName`")),
        "{problem:?}"
    );
    // Between the quotes of `"nickName": "",`.
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::End));
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Left));
    type_text(&mut app, "Bob");
    let (id, sent) = request(app.update(ctrl('s')));
    let Request::RenderPrompt { name, arguments } = sent else {
        panic!("expected a render, got {sent:?}");
    };
    assert_eq!(name, "greet");
    assert_eq!(arguments["nickName"], "Bob");
    reply(
        &mut app,
        id,
        Reply::Rendered {
            result: Ok(crate::registry::RenderedPrompt {
                call_id: 13,
                description: Some("Greet someone".into()),
                messages: vec![crate::registry::RenderedMessage {
                    role: crate::catalog::MessageRole::User,
                    text: "Hello Bob, how are you?".into(),
                    content: None,
                }],
            }),
        },
    );
    let Some(FormOutcome::Ok { text, .. }) = &form(&app).outcome else {
        panic!("expected the rendered prompt");
    };
    assert!(text.contains("user:\nHello Bob, how are you?"), "{text}");
}

#[test]
fn a_resource_read_from_the_log_replays_in_its_form_with_its_variables() {
    let mut app = app(80, 24, false);
    app.update(server_event(ServerEvent::Call(CallEvent {
        kind: crate::events::CallKind::Resource,
        arguments: r#"{"uri":"echo://hi","variables":{"message":"hi"}}"#.into(),
        ..match &*testing::calls()[0] {
            ServerEvent::Call(call) => CallEvent {
                id: 50,
                tool: "echo".into(),
                plugin: "".into(),
                ..call.clone()
            },
            _ => unreachable!(),
        }
    })));
    keys(&mut app, "2k");
    let sent = keys(&mut app, "j").pop();
    assert!(sent.is_none());
    let (id, _) = request(keys(&mut app, "e").pop());
    reply(&mut app, id, Reply::CallDetail { detail: None });
    assert_eq!(form(&app).target.name(), "echo");
    assert_eq!(form(&app).text(), "{\n  \"message\": \"hi\"\n}");
}

/// The `add` tool of the fixture, given an input schema (as a reload would).
fn add_with_a_schema(app: &mut App) {
    let mut plugins = testing::plugins();
    let add = plugins
        .iter_mut()
        .flat_map(|plugin| plugin.tools.iter_mut())
        .find(|tool| tool.name == "add")
        .expect("the fixture has add");
    add.input_schema = serde_json::from_str(
        r#"{"type": "object",
            "properties": {
              "left": {"type": "number"},
              "right": {"type": "number"},
              "options": {"type": "object", "properties": {"round": {"enum": ["up", "down"]}}}
            },
            "required": ["left", "right"]}"#,
    )
    .ok();
    app.update(testing::updates(5, vec![Update::Plugins { plugins }]));
    keys(app, "jjjjj");
    assert_eq!(selected_name(app), "add");
    app.update(key(KeyCode::Enter));
}

#[test]
fn a_tool_with_an_input_schema_is_checked_in_its_form_with_the_path_of_each_problem() {
    let mut app = app(120, 40, false);
    add_with_a_schema(&mut app);
    assert_eq!(
        form(&app).text(),
        "{\n  \"left\": 0,\n  \"options\": {},\n  \"right\": 0\n}"
    );
    assert_eq!(form(&app).validation, Validation::Valid);
    let key = form(&app).target.key();
    let editing = app.forms.get_mut(&key).expect("the form is open");
    editing.replace_text(r#"{"left": 1, "options": {"round": "sideways"}}"#);
    editing.edited();
    match &form(&app).validation {
        Validation::Schema(message) => {
            assert!(
                message.contains("(root): \"right\" is a required property"),
                "{message}"
            );
            assert!(message.contains("/options/round: "), "{message}");
            assert!(
                message
                    .contains("Expected {left: number, options: object (optional), right: number}"),
                "{message}"
            );
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    assert_eq!(app.update(ctrl('s')), None, "an invalid draft is not sent");
}

#[test]
fn rich_results_show_as_labels_and_structured_content_and_plugin_errors_as_failures() {
    let mut app = app(120, 40, false);
    add_with_a_schema(&mut app);
    let picture = r#"{"content": [
        {"type": "text", "text": "{\"points\":12}"},
        {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
        {"type": "resource_link", "uri": "file:///q3.pdf", "name": "q3", "mimeType": "application/pdf"},
        {"type": "resource", "resource": {"uri": "test://notes", "mimeType": "text/plain", "text": "fine"}}
      ], "structuredContent": {"points": 13}}"#;
    let output = ToolOutput::from_plugin(OutputKind::Content, None, "add", picture.into()).unwrap();
    let (id, _) = request(app.update(ctrl('s')));
    reply(
        &mut app,
        id,
        Reply::Called {
            result: Ok(CallReply { call_id: 9, output }),
        },
    );
    let Some(FormOutcome::Ok { text, .. }) = &form(&app).outcome else {
        panic!("{:?}", form(&app).outcome);
    };
    assert_eq!(
        text,
        "{\n  \"points\": 12\n}\n[image image/png 8 B]\n[link file:///q3.pdf application/pdf]\n[resource test://notes text/plain 4 B]\nfine\nstructured content:\n{\n  \"points\": 13\n}"
    );
    let refused = ToolOutput::from_plugin(
        OutputKind::Content,
        None,
        "add",
        r#"{"content": [{"type": "text", "text": "no numbers today"}], "isError": true}"#.into(),
    )
    .unwrap();
    let (id, _) = request(app.update(ctrl('s')));
    reply(
        &mut app,
        id,
        Reply::Called {
            result: Ok(CallReply {
                call_id: 10,
                output: refused,
            }),
        },
    );
    assert_eq!(
        form(&app).outcome,
        Some(FormOutcome::Failed {
            kind: FailureKind::PluginError,
            message: "no numbers today".into()
        })
    );
}

#[test]
fn running_calls_with_progress_come_and_go_with_the_counters() {
    let mut app = app(120, 40, false);
    let mut counters = Counters {
        in_flight: 1,
        ..Counters::default()
    };
    counters.progress = vec![RunningCall {
        key: 1,
        started: testing::wall(30),
        source: CallSource::Console,
        tool: "crunch".into(),
        plugin: "numbers".into(),
        progress: Progress {
            progress: 50.0,
            total: Some(100.0),
            message: Some("halfway".into()),
        },
    }];
    app.update(testing::updates(31, vec![Update::Counters(counters)]));
    assert_eq!(app.stats.progress.len(), 1);
    app.update(testing::updates(
        32,
        vec![Update::Counters(Counters::default())],
    ));
    assert!(app.stats.progress.is_empty());
}
