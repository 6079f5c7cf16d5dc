//! The header: where the server listens, authentication, uptime, plugins,
//! and the call counters.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::app::App;
use crate::console::format;

/// Rows the header takes: two, plus one per revealed token.
pub fn height(app: &App) -> u16 {
    let revealed = if app.reveal_tokens {
        u16::from(app.info.mcp_token.is_some()) + u16::from(app.info.admin_token.is_some())
    } else {
        0
    };
    2 + revealed
}

pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = &app.theme;
    // Each line drops what matters least until it fits: the version, the
    // admin API's state, then the URL's scheme and path; the call total.
    let first = [
        (true, true, true),
        (false, true, true),
        (true, false, true),
        (false, false, true),
        (false, false, false),
    ]
    .into_iter()
    .map(|(version, admin, full_url)| first_line(app, version, admin, full_url))
    .find(|line| line.width() <= area.width as usize)
    .unwrap_or_else(|| first_line(app, false, false, false));
    let second = [true, false]
        .into_iter()
        .map(|total| second_line(app, total))
        .find(|line| line.width() <= area.width as usize)
        .unwrap_or_else(|| second_line(app, false));

    let mut lines = vec![first, second];
    if app.reveal_tokens {
        if let Some(token) = &app.info.mcp_token {
            lines.push(Line::from(vec![
                Span::styled(" MCP token: ", theme.dim),
                Span::styled(token.reveal().to_string(), theme.warn),
                Span::styled("  (t hides)", theme.dim),
            ]));
        }
        if let Some(token) = &app.info.admin_token {
            lines.push(Line::from(vec![
                Span::styled(" admin token: ", theme.dim),
                Span::styled(token.reveal().to_string(), theme.warn),
            ]));
        }
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn first_line(app: &App, version: bool, admin: bool, full_url: bool) -> Line<'static> {
    let theme = &app.theme;
    let separator = || Span::styled(" │ ", theme.dim);
    let mut spans = vec![Span::styled(
        if version {
            format!(" wasimancer {}", app.info.version)
        } else {
            " wasimancer".to_string()
        },
        theme.title,
    )];
    spans.push(separator());
    spans.push(Span::raw(if full_url {
        format!("http://{}/mcp", app.info.address)
    } else {
        app.info.address.to_string()
    }));
    spans.push(separator());
    spans.push(Span::styled("auth ", theme.dim));
    match &app.info.mcp_token {
        Some(token) => spans.push(Span::raw(token.masked())),
        None => spans.push(Span::styled("OFF", theme.warn)),
    }
    if admin {
        spans.push(separator());
        spans.push(Span::styled("admin ", theme.dim));
        spans.push(match &app.info.admin_token {
            Some(_) => Span::styled("on", theme.ok),
            None => Span::styled("off", theme.dim),
        });
    }
    spans.push(separator());
    spans.push(Span::styled("up ", theme.dim));
    spans.push(Span::raw(format::uptime(app.uptime())));
    Line::from(spans)
}

/// The counters: plugins, rate, total (when `total`), errors, in flight.
fn second_line(app: &App, total: bool) -> Line<'static> {
    let theme = &app.theme;
    let separator = || Span::styled(" │ ", theme.dim);
    let (loaded, failed) = app
        .plugins
        .snapshot
        .as_ref()
        .map_or((0, 0), |snapshot| snapshot.plugin_counts());
    let stats = &app.stats;
    let mut second = vec![
        Span::styled(" plugins ", theme.dim),
        Span::styled(loaded.to_string(), theme.ok),
        Span::styled(" loaded ", theme.dim),
        Span::styled(
            failed.to_string(),
            if failed > 0 { theme.error } else { theme.dim },
        ),
        Span::styled(" failed", theme.dim),
        separator(),
        Span::raw(format!("{:.1}", stats.calls_per_second)),
        Span::styled(" calls/s", theme.dim),
    ];
    if total {
        second.push(separator());
        second.push(Span::raw(stats.calls.to_string()));
        second.push(Span::styled(" calls", theme.dim));
    }
    second.extend([
        separator(),
        Span::styled(
            stats.errors.to_string(),
            if stats.errors > 0 {
                theme.error
            } else {
                theme.dim
            },
        ),
        Span::styled(" errors", theme.dim),
        separator(),
        Span::raw(stats.in_flight.to_string()),
        Span::styled(" in flight", theme.dim),
    ]);
    if stats.dropped > 0 {
        second.push(separator());
        second.push(Span::styled(
            format!("{} dropped", stats.dropped),
            theme.warn,
        ));
    }
    Line::from(second)
}
