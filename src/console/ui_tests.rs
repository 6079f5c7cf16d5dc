//! Snapshots of every screen, drawn into `TestBackend` at 80x24 and 120x40,
//! in colour and in monochrome. The app is built from fixed data with a
//! fixed clock (see `testing`), so only the plugin load times need a filter.

use std::fmt::Write as _;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::KeyCode;
use ratatui::style::{Color, Modifier, Style};

use super::app::{Action, App, Role, WallClock};
use super::event::ConsoleEvent;
use super::testing::{self, counters, ctrl, key, keys, type_text};
use super::theme::Theme;
use super::ui;
use crate::control::{Counters, Reply, Update};
use crate::events::Change;
use crate::operations::Phase;
use crate::registry::{CallReply, ChangeReport, DefinitionChange, PluginChange, ToolOutput};
use crate::runtime::{CallFailure, FailureKind};

/// Answer the request `sent` with `reply`.
fn answer(app: &mut App, sent: Option<Action>, reply: Reply) {
    let Some(Action::Request { id, .. }) = sent else {
        panic!("expected a request, got {sent:?}");
    };
    app.update(ConsoleEvent::Reply { id, reply });
}

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

/// The screen as text, then the styled runs of each row (default style left
/// out), in a form short enough to review.
fn screen(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut text = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..area.width {
            let cell = &buffer[(x, y)];
            if skip > 0 {
                skip -= 1;
                continue;
            }
            line.push_str(cell.symbol());
            skip = ratatui::text::Span::raw(cell.symbol())
                .width()
                .saturating_sub(1);
        }
        let _ = writeln!(text, "{}", line.trim_end());
    }
    text.push_str("--- styles (row: columns style)\n");
    for y in 0..area.height {
        let mut runs = Vec::new();
        let mut x = 0;
        while x < area.width {
            let style = buffer[(x, y)].style();
            let start = x;
            while x < area.width && buffer[(x, y)].style() == style {
                x += 1;
            }
            if let Some(name) = style_name(style) {
                runs.push(format!("{start}-{} {name}", x - 1));
            }
        }
        if !runs.is_empty() {
            let _ = writeln!(text, "{y}: {}", runs.join(", "));
        }
    }
    text
}

fn style_name(style: Style) -> Option<String> {
    let mut parts = Vec::new();
    let colour = |c: Option<Color>| c.filter(|c| *c != Color::Reset);
    if let Some(fg) = colour(style.fg) {
        parts.push(format!("{fg:?}").to_lowercase());
    }
    if let Some(bg) = colour(style.bg) {
        parts.push(format!("on-{bg:?}").to_lowercase());
    }
    for (modifier, name) in [
        (Modifier::BOLD, "bold"),
        (Modifier::DIM, "dim"),
        (Modifier::REVERSED, "reversed"),
        (Modifier::UNDERLINED, "underlined"),
        (Modifier::ITALIC, "italic"),
    ] {
        if style.add_modifier.contains(modifier) {
            parts.push(name.to_string());
        }
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn render(app: &App, columns: u16, rows: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(columns, rows)).expect("a test terminal");
    terminal
        .draw(|frame| ui::render(app, frame))
        .expect("drawing into a buffer");
    screen(terminal.backend().buffer())
}

/// The screen with the plugins' load times (real ones) masked.
fn masked(mut text: String) -> String {
    const LABEL: &str = "loaded at   ";
    let mut from = 0;
    while let Some(found) = text[from..].find(LABEL) {
        let start = from + found + LABEL.len();
        let end = start + "hh:mm:ss".len();
        if text.is_char_boundary(end) {
            text.replace_range(start..end, "hh:mm:ss");
        }
        from = end;
    }
    text
}

/// Snapshot the screen `name` at both sizes in both themes, `setup` taking
/// the app from its first screen to this one.
fn check(name: &str, setup: impl Fn(&mut App)) {
    for (columns, rows) in SIZES {
        for (theme, no_color) in [("colour", false), ("mono", true)] {
            let mut app = testing::app(columns, rows, no_color);
            setup(&mut app);
            insta::with_settings!({prepend_module_to_snapshot => false}, {
                insta::assert_snapshot!(
                    format!("{name}_{columns}x{rows}_{theme}"),
                    masked(render(&app, columns, rows))
                );
            });
        }
    }
}

#[test]
fn plugins() {
    check("plugins", |_| {});
}

#[test]
fn plugins_with_a_function_selected() {
    check("plugins_function", |app| {
        keys(app, "jjj");
    });
}

#[test]
fn calls_following_with_dropped_events() {
    check("calls", |app| {
        keys(app, "2");
        app.update(testing::updates(3725, vec![Update::Missed { count: 42 }]));
    });
}

#[test]
fn calls_filtered_and_frozen() {
    check("calls_filtered", |app| {
        keys(app, "2/ok");
        app.update(key(KeyCode::Enter));
        keys(app, "k");
    });
}

#[test]
fn filter_prompt() {
    check("filter_prompt", |app| {
        keys(app, "2/tool:roll");
    });
}

#[test]
fn server_log() {
    check("log", |app| {
        keys(app, "3");
    });
}

#[test]
fn resources_and_prompts() {
    check("library", |app| {
        keys(app, "4j");
    });
}

#[test]
fn a_resource_template_in_its_form() {
    check("form_resource", |app| {
        keys(app, "4jj");
        app.update(key(KeyCode::Enter));
    });
}

#[test]
fn call_form() {
    check("form", |app| {
        keys(app, "j");
        app.update(key(KeyCode::Enter));
    });
}

#[test]
fn call_form_with_a_syntax_error() {
    check("form_syntax_error", |app| {
        keys(app, "j");
        app.update(key(KeyCode::Enter));
        app.update(key(KeyCode::Down));
        app.update(key(KeyCode::End));
        type_text(app, "x");
    });
}

#[test]
fn call_form_with_a_schema_error() {
    check("form_schema_error", |app| {
        keys(app, "j");
        app.update(key(KeyCode::Enter));
        app.update(key(KeyCode::Down));
        app.update(key(KeyCode::End));
        app.update(key(KeyCode::Left));
        app.update(key(KeyCode::Backspace));
        type_text(app, "\"six\"");
    });
}

#[test]
fn call_form_with_a_result() {
    check("form_result", |app| {
        keys(app, "jjjjj");
        app.update(key(KeyCode::Enter));
        let sent = app.update(ctrl('s'));
        answer(
            app,
            sent,
            Reply::Called {
                result: Ok(CallReply {
                    call_id: 7,
                    output: ToolOutput::text(r#"{"result":0,"inputs":[0,0]}"#),
                }),
            },
        );
    });
}

#[test]
fn call_form_with_a_failure() {
    check("form_failure", |app| {
        keys(app, "j");
        app.update(key(KeyCode::Enter));
        let sent = app.update(ctrl('s'));
        answer(
            app,
            sent,
            Reply::Called {
                result: Err(CallFailure::new(
                    FailureKind::PluginError,
                    "numDice must be an integer between 1 and 1000 (got 0)",
                )),
            },
        );
    });
}

#[test]
fn call_details() {
    check("call_detail", |app| {
        keys(app, "2k");
        let sent = app.update(key(KeyCode::Enter));
        answer(
            app,
            sent,
            testing::detail(5, r#"{"left":2,"right":3}"#, Ok(r#"{"result":5}"#)),
        );
    });
}

#[test]
fn call_details_of_a_failure() {
    check("call_detail_failure", |app| {
        keys(app, "2");
        let sent = app.update(key(KeyCode::Enter));
        answer(
            app,
            sent,
            testing::detail(
                6,
                r#"{"left":1e308,"right":1e308}"#,
                Err(CallFailure::new(
                    FailureKind::Timeout,
                    "the call ran past the plugin's 1000 ms timeout and was stopped",
                )),
            ),
        );
    });
}

#[test]
fn plugin_details_of_a_stale_plugin() {
    check("plugin_detail", |app| {
        keys(app, "jj");
        app.update(key(KeyCode::Enter));
    });
}

#[test]
fn reload_report() {
    check("reload_report", |app| {
        let sent = keys(app, "R").pop();
        answer(app, sent, Reply::Reloaded {
            result: Ok(ChangeReport {
                changes: vec![
                    PluginChange {
                        plugin: "roll-dice".into(),
                        change: Change::Unchanged,
                        message: "same module and settings: nothing to reload".into(),
                    },
                    PluginChange {
                        plugin: "hello".into(),
                        change: Change::Failed,
                        message: "plugins.yml line 22: function `say_hi` is not exported by hello.wasm; exports are: say_hello; the previous version keeps serving".into(),
                    },
                    PluginChange {
                        plugin: "addition".into(),
                        change: Change::Replaced,
                        message: "reloaded with 2 instances in 14 ms".into(),
                    },
                ],
                definitions: vec![DefinitionChange {
                    file: "resources.yml".into(),
                    change: Change::Replaced,
                    message: "1 resource and 2 templates".into(),
                }],
            }),
        });
    });
}

#[test]
fn reload_that_could_not_start() {
    check("reload_error", |app| {
        let sent = keys(app, "R").pop();
        answer(
            app,
            sent,
            Reply::Reloaded {
                result: Err(
                    "plugins.yml line 3: unknown key `timeout` (did you mean `timeout_ms`?)".into(),
                ),
            },
        );
    });
}

#[test]
fn help() {
    check("help", |app| {
        keys(app, "?");
    });
}

#[test]
fn quit_confirmation() {
    check("confirm_quit", |app| {
        app.update(counters(3726, 8, 3, 2));
        keys(app, "q");
    });
}

#[test]
fn tokens_revealed() {
    check("tokens", |app| {
        let sent = keys(app, "t").pop();
        answer(
            app,
            sent,
            Reply::Tokens {
                mcp: Some("test-token-0123456789".into()),
                admin: Some("admin-secret-0123456789".into()),
            },
        );
    });
}

/// An attached console: the header names the server's pid, and `q` detaches.
#[test]
fn attached_console() {
    for (columns, rows) in SIZES {
        let app = testing::app_as(Role::Attached, columns, rows, false);
        insta::with_settings!({prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(
                format!("attached_{columns}x{rows}_colour"),
                masked(render(&app, columns, rows))
            );
        });
    }
}

/// A server draining before it stops, with sessions open and requests
/// refused by its rate limit: the header shows all three.
#[test]
fn draining_with_sessions_and_rate_limited_requests() {
    check("draining", |app| {
        app.update(testing::updates(
            3725,
            vec![Update::Counters(Counters {
                calls: 1520,
                errors: 3,
                in_flight: 2,
                sessions: 14,
                rate_limited: 327,
                phase: Phase::Draining,
                ..Counters::default()
            })],
        ));
    });
}

#[test]
fn disconnected_and_retrying() {
    check("disconnected", |app| {
        app.update(ConsoleEvent::Disconnected {
            reason: "no server has its control socket at /run/wasimancer/3001.sock".into(),
            retrying: true,
        });
    });
}

#[test]
fn waiting_for_the_first_welcome() {
    let app = App::new(
        Role::Attached,
        "/run/wasimancer/3001.sock".into(),
        Theme::new(false),
        WallClock::Utc,
        ratatui::layout::Rect::new(0, 0, 80, 24),
    );
    insta::with_settings!({prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("connecting_80x24_colour", render(&app, 80, 24));
    });
}

#[test]
fn terminal_too_small() {
    for (theme, no_color) in [("colour", false), ("mono", true)] {
        let app = testing::app(59, 15, no_color);
        insta::with_settings!({prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(format!("too_small_59x15_{theme}"), render(&app, 59, 15));
        });
    }
}

#[test]
fn every_size_from_tiny_to_huge_draws_without_panicking() {
    for (columns, rows) in [(1, 1), (20, 5), (60, 16), (99, 23), (100, 16), (250, 80)] {
        for setup in ["", "2", "3", "4", "j\n", "?", "2\n", "4\n"] {
            let mut app = testing::app(columns, rows, false);
            type_text(&mut app, setup);
            render(&app, columns, rows);
        }
    }
}

#[test]
fn calls_with_progress_of_running_calls() {
    check("calls_progress", |app| {
        keys(app, "2");
        let running =
            |key: u64, tool: &str, progress: f64, total: Option<f64>, message: Option<&str>| {
                crate::registry::RunningCall {
                    key,
                    started: testing::wall(3700 + key),
                    source: crate::events::CallSource::Console,
                    tool: tool.into(),
                    plugin: "numbers".into(),
                    progress: crate::runtime::Progress {
                        progress,
                        total,
                        message: message.map(String::from),
                    },
                }
            };
        let counters = crate::control::Counters {
            in_flight: 2,
            progress: vec![
                running(1, "crunch", 50.0, Some(100.0), Some("halfway")),
                running(2, "index", 3.0, None, None),
            ],
            ..Default::default()
        };
        app.update(testing::updates(3725, vec![Update::Counters(counters)]));
    });
}

#[test]
fn call_form_with_a_rich_result() {
    check("form_rich_result", |app| {
        keys(app, "jjjjj");
        app.update(key(KeyCode::Enter));
        let sent = app.update(ctrl('s'));
        let envelope = r#"{"content": [
            {"type": "text", "text": "Here is the chart:"},
            {"type": "image", "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC", "mimeType": "image/png"},
            {"type": "audio", "data": "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==", "mimeType": "audio/wav"},
            {"type": "resource_link", "uri": "file:///reports/q3.pdf", "name": "q3", "mimeType": "application/pdf"}
          ], "structuredContent": {"points": 12, "unit": "km"}}"#;
        answer(
            app,
            sent,
            Reply::Called {
                result: Ok(CallReply {
                    call_id: 8,
                    output: ToolOutput::from_plugin(
                        crate::catalog::OutputKind::Content,
                        None,
                        "add",
                        envelope.into(),
                    )
                    .expect("a valid envelope"),
                }),
            },
        );
    });
}
