//! What is drawn over the panes: the help, a call's details, a plugin's
//! details, the outcome of a reload, the quit confirmation.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};

use super::centered;
use crate::console::app::{App, CallDetailView, Overlay, ReportView};
use crate::console::form::pretty;
use crate::console::format::{self, clock_time};
use crate::console::keymap::{self, HELP_ORDER, KEYMAP};
use crate::events::{CallKind, CallStatus, Change};
use crate::registry::PluginState;

/// Draw the overlay, if any, over `body` (the header and the hint bar stay
/// visible).
pub fn render(app: &App, frame: &mut Frame<'_>, body: Rect) {
    let Some(overlay) = &app.overlay else {
        return;
    };
    match overlay {
        Overlay::Help { scroll } => {
            let popup = centered(body, body.width.saturating_sub(4).min(90), body.height);
            show(app, frame, popup, " Keys ", help_lines(app), *scroll);
        }
        Overlay::CallDetail(view) => {
            let popup = centered(body, body.width.saturating_sub(4).min(120), body.height);
            let title = format!(" Call #{} ", view.row.call().id);
            show(
                app,
                frame,
                popup,
                &title,
                call_lines(app, view),
                view.scroll,
            );
        }
        Overlay::PluginDetail { plugin, scroll } => {
            let popup = centered(body, body.width.saturating_sub(4).min(110), body.height);
            let title = format!(" Plugin {plugin} ");
            show(
                app,
                frame,
                popup,
                &title,
                plugin_lines(app, plugin),
                *scroll,
            );
        }
        Overlay::Report(report) => {
            let lines = report_lines(app, report);
            let width = body.width.saturating_sub(4).min(110);
            let height = (wrapped_height(&lines, width.saturating_sub(2)) + 2).min(body.height);
            let popup = centered(body, width, height);
            let title = match &report.plugin {
                Some(plugin) => format!(" Reload of {plugin} "),
                None => " Reload of plugins.yml ".to_string(),
            };
            show(app, frame, popup, &title, lines, report.scroll);
        }
        Overlay::ConfirmQuit => {
            let popup = centered(body, 54, 6);
            let lines = vec![
                Line::raw(format!(
                    "{} call{} in flight. Quitting stops the server",
                    app.stats.in_flight,
                    if app.stats.in_flight == 1 {
                        " is"
                    } else {
                        "s are"
                    }
                )),
                Line::raw("and fails them."),
                Line::default(),
                Line::from(vec![
                    Span::styled("y", app.theme.key),
                    Span::raw(" quit anyway   "),
                    Span::styled("n", app.theme.key),
                    Span::raw(" stay"),
                ]),
            ];
            show(app, frame, popup, " Quit? ", lines, 0);
        }
    }
}

/// About how many rows `lines` take wrapped at `width` (word wrapping may
/// take a row more; the popup then scrolls).
fn wrapped_height(lines: &[Line<'_>], width: u16) -> u16 {
    let width = usize::from(width.max(1));
    let rows: usize = lines
        .iter()
        .map(|line| line.width().div_ceil(width).max(1))
        .sum();
    u16::try_from(rows).unwrap_or(u16::MAX)
}

/// A bordered popup over whatever is below, its text wrapped and scrolled.
fn show(
    app: &App,
    frame: &mut Frame<'_>,
    area: Rect,
    title: &str,
    lines: Vec<Line<'_>>,
    scroll: u16,
) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(app.theme.border_focused)
        .title(Line::styled(title.to_string(), app.theme.title_focused));
    // Keep the scroll within the text, so `G` lands on the end.
    let inner_height = area.height.saturating_sub(2) as usize;
    let max_scroll = lines.len().saturating_sub(inner_height) as u16;
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll.min(max_scroll), 0)),
        area,
    );
}

fn help_lines(app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let mut lines = Vec::new();
    for mode in HELP_ORDER {
        let bindings: Vec<_> = KEYMAP.iter().filter(|b| b.mode == *mode).collect();
        if bindings.is_empty() {
            continue;
        }
        if !lines.is_empty() {
            lines.push(Line::default());
        }
        lines.push(Line::styled(mode.heading(), theme.title));
        for binding in bindings {
            lines.push(Line::from(vec![
                Span::styled(format::pad(&keymap::keys_label(binding), 18), theme.key),
                Span::raw(binding.help),
            ]));
        }
    }
    lines.push(Line::default());
    lines.push(Line::styled(
        "Filter words: tool:NAME plugin:NAME source:mcp|console|cli status:ok|error, or bare words.",
        theme.dim,
    ));
    lines.push(Line::styled(
        "In the editor: arrows move, Ctrl-U undoes, Ctrl-R resets; paste works.",
        theme.dim,
    ));
    lines
}

fn call_lines<'a>(app: &App, view: &'a CallDetailView) -> Vec<Line<'a>> {
    let theme = &app.theme;
    let call = view.row.call();
    let mut lines = vec![
        Line::from(vec![
            Span::styled(view.row.label(), theme.name),
            Span::styled(
                match (call.kind, call.plugin.is_empty()) {
                    (CallKind::Tool, true) => " (unknown tool)".to_string(),
                    (CallKind::Tool, false) => format!(" of plugin {}", call.plugin),
                    (_, false) => format!(", computed by plugin {}", call.plugin),
                    (_, true) => String::new(),
                },
                theme.dim,
            ),
            Span::styled(" from ", theme.dim),
            Span::raw(call.source.to_string()),
        ]),
        Line::from(vec![
            Span::styled("at ", theme.dim),
            Span::raw(clock_time(call.started, app.clock)),
            Span::styled(" · took ", theme.dim),
            Span::raw(format::duration(call.duration)),
            Span::styled(
                if call.overlapping > 1 {
                    format!(" · ran alongside {} other calls", call.overlapping - 1)
                } else {
                    String::new()
                },
                theme.dim,
            ),
        ]),
        Line::default(),
        Line::styled("Arguments", theme.title),
    ];
    let (arguments, output) = match &view.detail {
        Some(detail) => (
            pretty(&detail.arguments),
            Some(match &detail.output {
                Ok(text) => Ok(pretty(text)),
                Err(failure) => Err((failure.kind.to_string(), failure.message.clone())),
            }),
        ),
        None => (call.arguments.clone(), None),
    };
    lines.extend(arguments.lines().map(|l| Line::raw(l.to_string())));
    lines.push(Line::default());
    let output = output.unwrap_or_else(|| match &call.status {
        CallStatus::Ok { preview } => Ok(preview.clone()),
        CallStatus::Error { kind, message } => Err((kind.to_string(), message.clone())),
    });
    match output {
        Ok(text) => {
            lines.push(Line::from(vec![
                Span::styled("Result ", theme.title),
                Span::styled("ok", theme.ok),
            ]));
            lines.extend(text.lines().map(|l| Line::raw(l.to_string())));
        }
        Err((kind, message)) => {
            lines.push(Line::from(vec![
                Span::styled("Error ", theme.title),
                Span::styled(kind, theme.error),
            ]));
            lines.extend(
                message
                    .lines()
                    .map(|l| Line::styled(l.to_string(), theme.error)),
            );
        }
    }
    if view.detail.is_none() {
        lines.push(Line::default());
        lines.push(Line::styled(
            if view.loading {
                "loading the full payloads…"
            } else {
                "(previews only: the server no longer keeps this call's full payloads)"
            },
            theme.dim,
        ));
    }
    lines
}

fn plugin_lines(app: &App, name: &str) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let Some(plugin) = app.plugins.get(name) else {
        return vec![Line::raw("this plugin is no longer in plugins.yml")];
    };
    let label = |text: &str| Span::styled(format!("{text:<12}"), theme.dim);
    let (state, style) = match plugin.state {
        PluginState::Loaded => ("loaded", theme.ok),
        PluginState::Stale => (
            "stale: the last reload failed; the previous version serves",
            theme.warn,
        ),
        PluginState::Failed => ("FAILED", theme.error),
    };
    let none_or = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    let limits = &plugin.limits;
    let mut lines = vec![
        Line::from(vec![
            label("version"),
            Span::raw(plugin.version.clone().unwrap_or_else(|| "-".into())),
        ]),
        Line::from(vec![
            label("about"),
            Span::raw(plugin.description.clone().unwrap_or_else(|| "-".into())),
        ]),
        Line::from(vec![label("state"), Span::styled(state.to_string(), style)]),
    ];
    if let Some(error) = &plugin.error {
        lines.push(Line::from(vec![
            label("why"),
            Span::styled(error.clone(), theme.error),
        ]));
    }
    lines.push(Line::from(vec![
        label("module"),
        Span::raw(plugin.module.clone()),
    ]));
    if let Some(line) = plugin.line {
        lines.push(Line::from(vec![
            label("declared"),
            Span::raw(format!("plugins.yml line {line}")),
        ]));
    }
    if let Some(loaded_at) = plugin.loaded_at {
        lines.push(Line::from(vec![
            label("loaded at"),
            Span::raw(clock_time(loaded_at, app.clock)),
        ]));
        lines.push(Line::from(vec![
            label("instances"),
            Span::raw(format!(
                "{} ({} busy now)",
                plugin.instances,
                app.stats.busy.get(&plugin.name).copied().unwrap_or(0)
            )),
        ]));
    }
    lines.push(Line::from(vec![
        label("limits"),
        Span::raw(format!(
            "timeout {} ms · memory {} MiB · WASI {}",
            limits.timeout_ms,
            limits.memory_mb,
            if limits.wasi { "on" } else { "off" }
        )),
    ]));
    lines.push(Line::from(vec![
        label("hosts"),
        Span::raw(none_or(limits.allowed_hosts.clone())),
    ]));
    lines.push(Line::from(vec![
        label("paths"),
        Span::raw(none_or(
            limits
                .allowed_paths
                .iter()
                .map(|(from, to)| format!("{from} → {to}"))
                .collect(),
        )),
    ]));
    // Config values may be secrets: the server sends only the keys.
    lines.push(Line::from(vec![
        label("config"),
        Span::raw(none_or(limits.config_keys.clone())),
    ]));
    lines.push(Line::default());
    lines.push(Line::styled("Functions", theme.title));
    for tool in &plugin.tools {
        lines.push(Line::from(vec![
            Span::styled(tool.name.clone(), theme.name),
            Span::styled(format!(" (export {})", tool.function), theme.dim),
        ]));
        if let Some(description) = &tool.description {
            lines.push(Line::raw(format!("  {description}")));
        }
        for argument in &tool.arguments {
            lines.push(Line::from(vec![
                Span::raw(format!("  {}: {}", argument.name, argument.kind)),
                Span::styled(
                    argument
                        .description
                        .as_ref()
                        .map(|d| format!(" · {d}"))
                        .unwrap_or_default(),
                    theme.dim,
                ),
            ]));
        }
    }
    lines
}

fn report_lines<'a>(app: &App, report: &'a ReportView) -> Vec<Line<'a>> {
    let theme = &app.theme;
    match &report.result {
        Err(error) => vec![
            Line::styled("Nothing changed: the reload could not start.", theme.error),
            Line::raw(error.as_str()),
        ],
        Ok(report) => {
            // Plugins, then the definition files (resources.yml, prompts.yml).
            let rows: Vec<(&str, Change, &str)> = report
                .changes
                .iter()
                .map(|c| (c.plugin.as_str(), c.change, c.message.as_str()))
                .chain(
                    report
                        .definitions
                        .iter()
                        .map(|d| (d.file.as_str(), d.change, d.message.as_str())),
                )
                .collect();
            let count = |change| rows.iter().filter(|row| row.1 == change).count();
            let summary: Vec<String> = [
                (Change::Added, "added"),
                (Change::Replaced, "reloaded"),
                (Change::Removed, "removed"),
                (Change::Failed, "failed"),
                (Change::Unchanged, "unchanged"),
            ]
            .into_iter()
            .filter(|(change, _)| count(*change) > 0)
            .map(|(change, word)| format!("{} {word}", count(change)))
            .collect();
            let mut lines = vec![Line::styled(
                if summary.is_empty() {
                    "no plugins".to_string()
                } else {
                    summary.join(", ")
                },
                if report.has_failures() {
                    theme.error
                } else {
                    theme.ok
                },
            )];
            if report.has_failures() {
                lines.push(Line::styled(
                    "What failed keeps serving its previous version, if it had one.",
                    theme.dim,
                ));
            }
            lines.push(Line::default());
            let name_width = rows
                .iter()
                .map(|row| row.0.chars().count())
                .max()
                .unwrap_or(0);
            for (name, change, message) in rows {
                let (word, style) = match change {
                    Change::Added => ("added", theme.ok),
                    Change::Replaced => ("reloaded", theme.ok),
                    Change::Removed => ("removed", theme.warn),
                    Change::Unchanged => ("unchanged", theme.dim),
                    Change::Failed => ("FAILED", theme.error),
                    Change::Reloading => ("reloading", theme.warn),
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("{name:<name_width$}  "), theme.name),
                    Span::styled(format!("{word:<9}  "), style),
                    Span::raw(message),
                ]));
            }
            lines
        }
    }
}
