//! The plugin list: each plugin with its state, version and limits, why it
//! failed, and its functions.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Areas, pane_block, selected_row};
use crate::console::app::{App, Pane, PluginRow};
use crate::console::format::fit;
use crate::control::PluginView;
use crate::registry::PluginState;

pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect, areas: &Areas) {
    let block = pane_block(app, Pane::Plugins, areas, Vec::new());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(plugins) = &app.plugins.plugins else {
        frame.render_widget(
            Paragraph::new(Line::styled(
                format!("waiting for the server ({})…", app.target),
                app.theme.dim,
            ))
            .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
        return;
    };
    if plugins.is_empty() {
        frame.render_widget(
            Paragraph::new(vec![
                Line::raw("plugins.yml declares no plugins."),
                Line::styled("Add one, then R re-reads plugins.yml.", app.theme.dim),
            ]),
            inner,
        );
        return;
    }
    let height = inner.height as usize;
    let width = inner.width as usize;
    let lines: Vec<Line<'_>> = app
        .plugins
        .rows
        .iter()
        .enumerate()
        .skip(app.plugins.top)
        .take(height)
        .filter_map(|(index, row)| {
            let entry = plugins.get(row.plugin())?;
            let mut line = match row {
                PluginRow::Plugin { .. } => plugin_line(app, entry, width),
                PluginRow::Reason { .. } => reason_line(app, entry, width),
                PluginRow::Function { function, .. } => function_line(app, entry, *function, width),
            };
            if index == app.plugins.selected {
                line = selected_row(app, Pane::Plugins, line, width);
            }
            Some(line)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The state word and its style.
fn state(app: &App, entry: &PluginView) -> (String, Style) {
    let theme = &app.theme;
    if app.plugins.reloading.contains(&entry.name) {
        return ("reloading…".into(), theme.warn);
    }
    match entry.state {
        PluginState::Loaded => ("loaded".into(), theme.ok),
        PluginState::Stale => ("stale: old version serves".into(), theme.warn),
        PluginState::Failed => ("FAILED".into(), theme.error),
    }
}

fn plugin_line<'a>(app: &App, entry: &'a PluginView, width: usize) -> Line<'a> {
    let theme = &app.theme;
    let (state, state_style) = state(app, entry);
    let mut spans = vec![Span::styled(entry.name.clone(), theme.name)];
    if let Some(version) = &entry.version {
        spans.push(Span::styled(format!(" {version}"), theme.dim));
    }
    spans.push(Span::raw("  "));
    spans.push(Span::styled(state, state_style));
    let mut limits = Vec::new();
    if entry.serving() {
        let busy = app.stats.busy.get(&entry.name).copied().unwrap_or(0);
        limits.push(if busy > 0 {
            format!("{busy}/{} busy", entry.instances)
        } else {
            format!("{} inst", entry.instances)
        });
    }
    let limit = &entry.limits;
    limits.push(seconds(limit.timeout_ms));
    limits.push(format!("{}MiB", limit.memory_mb));
    if !limit.allowed_hosts.is_empty() {
        limits.push("net".into());
    }
    if !limit.allowed_paths.is_empty() {
        limits.push("files".into());
    }
    let used: usize = spans.iter().map(Span::width).sum();
    let limits = limits.join(" ");
    if used + 2 + limits.len() <= width {
        spans.push(Span::raw(" ".repeat(width - used - limits.len())));
        spans.push(Span::styled(limits, theme.dim));
    }
    Line::from(spans)
}

fn seconds(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

fn reason_line<'a>(app: &App, entry: &'a PluginView, width: usize) -> Line<'a> {
    let reason = entry.error.as_deref().unwrap_or_default();
    Line::from(vec![
        Span::raw("  "),
        Span::styled(fit(reason, width.saturating_sub(2)), app.theme.error),
    ])
}

fn function_line<'a>(app: &App, entry: &'a PluginView, function: usize, width: usize) -> Line<'a> {
    let theme = &app.theme;
    let Some(tool) = entry.tools.get(function) else {
        return Line::default();
    };
    let served = entry.serving();
    let name = &tool.name;
    let arguments: Vec<String> = tool
        .arguments
        .iter()
        .map(|a| {
            if a.required {
                a.name.clone()
            } else {
                format!("{}?", a.name)
            }
        })
        .collect();
    let signature = format!("({})", arguments.join(", "));
    let name_width = name.chars().count() + 4;
    Line::from(vec![
        Span::raw("  "),
        Span::styled(
            fit(name, width.saturating_sub(4)),
            if served { Style::new() } else { theme.dim },
        ),
        Span::styled(fit(&signature, width.saturating_sub(name_width)), theme.dim),
    ])
}
