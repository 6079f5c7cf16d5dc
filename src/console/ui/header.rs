//! The header: where the server listens, authentication, uptime, what the
//! server is doing (loading, draining), plugins, the call counters, sessions
//! and rate-limited requests.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::app::{App, Connection, Role, ServerView};
use crate::console::format;
use crate::operations::Phase;

pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = &app.theme;
    let width = area.width as usize;
    // Each line drops what matters least until it fits: the version, the
    // admin API's state, the URL's scheme and path, the masked token; the
    // call total.
    let first = match &app.server {
        Some(server) => [
            Shown::ALL,
            Shown {
                version: false,
                ..Shown::ALL
            },
            Shown {
                admin: false,
                ..Shown::ALL
            },
            Shown {
                version: false,
                admin: false,
                ..Shown::ALL
            },
            Shown {
                version: false,
                admin: false,
                full_url: false,
                ..Shown::ALL
            },
            Shown::LEAST,
        ]
        .into_iter()
        .map(|shown| first_line(app, server, shown))
        .find(|line| line.width() <= width)
        .unwrap_or_else(|| first_line(app, server, Shown::LEAST)),
        None => Line::from(vec![
            Span::styled(" wasimancer", theme.title),
            Span::styled(" │ ", theme.dim),
            Span::raw(format!("attaching to {}…", app.target)),
        ]),
    };
    let second = match &app.connection {
        Connection::Lost { reason, retrying } => Line::from(vec![
            Span::styled(
                if *retrying {
                    " disconnected, retrying: "
                } else {
                    " disconnected: "
                },
                if *retrying { theme.warn } else { theme.error },
            ),
            Span::raw(reason.clone()),
        ]),
        Connection::Connecting => Line::styled(" waiting for the server's welcome…", theme.dim),
        // The second drops, until it fits: the resources and prompts (the
        // fourth pane lists them), the call total, the plugins' words, then
        // the call rate.
        Connection::Attached => (0..=Brevity::MOST)
            .map(|brevity| second_line(app, Brevity(brevity)))
            .find(|line| line.width() <= width)
            .unwrap_or_else(|| second_line(app, Brevity(Brevity::MOST))),
    };

    let mut lines = vec![first, second];
    if let Some(tokens) = &app.tokens {
        if let Some(token) = &tokens.mcp {
            lines.push(Line::from(vec![
                Span::styled(" MCP token: ", theme.dim),
                Span::styled(token.clone(), theme.warn),
                Span::styled("  (t hides)", theme.dim),
            ]));
        }
        if let Some(token) = &tokens.admin {
            lines.push(Line::from(vec![
                Span::styled(" admin token: ", theme.dim),
                Span::styled(token.clone(), theme.warn),
            ]));
        }
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// The optional parts of the first line.
#[derive(Debug, Clone, Copy)]
struct Shown {
    version: bool,
    admin: bool,
    full_url: bool,
    auth: bool,
}

impl Shown {
    const ALL: Shown = Shown {
        version: true,
        admin: true,
        full_url: true,
        auth: true,
    };
    const LEAST: Shown = Shown {
        version: false,
        admin: false,
        full_url: false,
        auth: false,
    };
}

fn first_line(app: &App, server: &ServerView, shown: Shown) -> Line<'static> {
    let Shown {
        version,
        admin,
        full_url,
        auth,
    } = shown;
    let theme = &app.theme;
    let summary = &server.summary;
    let separator = || Span::styled(" │ ", theme.dim);
    let mut spans = vec![Span::styled(
        if version {
            format!(" wasimancer {}", summary.version)
        } else {
            " wasimancer".to_string()
        },
        theme.title,
    )];
    // A server that is not simply serving says so first: it always shows.
    match app.stats.phase {
        Phase::Serving => {}
        Phase::Loading => {
            spans.push(separator());
            spans.push(Span::styled("loading plugins", theme.warn));
        }
        Phase::Draining => {
            spans.push(separator());
            spans.push(Span::styled("DRAINING", theme.error));
        }
    }
    spans.push(separator());
    spans.push(Span::raw(if full_url {
        format!("http://{}/mcp", summary.address)
    } else {
        summary.address.to_string()
    }));
    if auth {
        spans.push(separator());
        spans.push(Span::styled("auth ", theme.dim));
        match &summary.mcp_token {
            Some(masked) => spans.push(Span::raw(masked.clone())),
            None => spans.push(Span::styled("OFF", theme.warn)),
        }
    }
    if admin {
        spans.push(separator());
        spans.push(Span::styled("admin ", theme.dim));
        spans.push(match &summary.admin_token {
            Some(_) => Span::styled("on", theme.ok),
            None => Span::styled("open", theme.warn),
        });
    }
    spans.push(separator());
    spans.push(Span::styled("up ", theme.dim));
    spans.push(Span::raw(format::uptime(app.uptime())));
    spans.push(separator());
    spans.push(match app.role {
        Role::Owner => Span::styled("owner", theme.dim),
        Role::Attached => Span::styled(format!("attached to pid {}", summary.pid), theme.warn),
    });
    Line::from(spans)
}

/// How much the second line leaves out to fit: each step drops one more
/// thing, in the order of [`Brevity::MOST`]'s list.
#[derive(Clone, Copy)]
struct Brevity(u8);

impl Brevity {
    /// 1 drops the resources and prompts, 2 the total, 3 the plugins'
    /// words, 4 the call rate.
    const MOST: u8 = 4;

    fn library(self) -> bool {
        self.0 < 1
    }
    fn total(self) -> bool {
        self.0 < 2
    }
    fn plugin_words(self) -> bool {
        self.0 < 3
    }
    fn rate(self) -> bool {
        self.0 < 4
    }
}

/// The counters: plugins, resources and prompts (when some are served),
/// the call rate, total, errors, in flight, sessions, rate-limited
/// requests; `brevity` says what to leave out.
fn second_line(app: &App, brevity: Brevity) -> Line<'static> {
    let theme = &app.theme;
    let separator = || Span::styled(" │ ", theme.dim);
    let (loaded, failed) = app.plugins.counts();
    let stats = &app.stats;
    let failed_style = if failed > 0 { theme.error } else { theme.dim };
    let mut second = if brevity.plugin_words() {
        vec![
            Span::styled(" plugins ", theme.dim),
            Span::styled(loaded.to_string(), theme.ok),
            Span::styled(" loaded ", theme.dim),
            Span::styled(failed.to_string(), failed_style),
            Span::styled(" failed", theme.dim),
        ]
    } else {
        let mut compact = vec![
            Span::raw(" "),
            Span::styled(loaded.to_string(), theme.ok),
            Span::styled(" plugins", theme.dim),
        ];
        if failed > 0 {
            compact.push(Span::styled(format!(" {failed} failed"), theme.error));
        }
        compact
    };
    let (resources, templates, prompts) = app.library.counts();
    if brevity.library() && resources + templates + prompts > 0 {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let resources = resources + templates;
        second.extend([
            separator(),
            Span::raw(resources.to_string()),
            Span::styled(format!(" resource{} ", plural(resources)), theme.dim),
            Span::raw(prompts.to_string()),
            Span::styled(format!(" prompt{}", plural(prompts)), theme.dim),
        ]);
    }
    if brevity.rate() {
        second.extend([
            separator(),
            Span::raw(format!("{:.1}", stats.calls_per_second)),
            Span::styled(" calls/s", theme.dim),
        ]);
    }
    if brevity.total() {
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
    if !app.server.as_ref().is_some_and(|s| s.summary.stateless) {
        second.extend([
            separator(),
            Span::raw(stats.sessions.to_string()),
            Span::styled(
                if stats.sessions == 1 {
                    " session"
                } else {
                    " sessions"
                },
                theme.dim,
            ),
        ]);
    }
    if stats.rate_limited > 0 {
        second.extend([
            separator(),
            Span::styled(format!("{} rate-limited", stats.rate_limited), theme.warn),
        ]);
    }
    if stats.dropped > 0 {
        second.push(separator());
        second.push(Span::styled(
            format!("{} dropped", stats.dropped),
            theme.warn,
        ));
    }
    Line::from(second)
}
