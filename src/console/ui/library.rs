//! The resources-and-prompts pane: fixed resources and templates under
//! "Resources", then "Prompts", each with what it takes.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Areas, pane_block, selected_row};
use crate::console::app::{App, LibraryRow, Pane, Section};
use crate::console::format::fit;
use crate::control::{PromptView, ResourceView};

pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect, areas: &Areas) {
    let theme = &app.theme;
    let block = pane_block(app, Pane::Library, areas, Vec::new());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let library = &app.library;
    if library.rows.is_empty() {
        frame.render_widget(
            Paragraph::new(vec![
                Line::raw("no resources or prompts are served."),
                Line::styled(
                    "Declare them in resources.yml and prompts.yml beside plugins.yml, then R.",
                    theme.dim,
                ),
            ])
            .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
        return;
    }
    let width = inner.width as usize;
    let lines: Vec<Line<'_>> = library
        .rows
        .iter()
        .enumerate()
        .skip(library.top)
        .take(inner.height as usize)
        .map(|(index, row)| {
            let line = match row {
                LibraryRow::Heading(section) => heading(app, *section),
                LibraryRow::Resource(i) => library
                    .resources
                    .get(*i)
                    .map(|resource| resource_line(app, resource, width))
                    .unwrap_or_default(),
                LibraryRow::Prompt(i) => library
                    .prompts
                    .get(*i)
                    .map(|prompt| prompt_line(app, prompt, width))
                    .unwrap_or_default(),
            };
            if index == library.selected {
                selected_row(app, Pane::Library, line, width)
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn heading(app: &App, section: Section) -> Line<'static> {
    let (resources, templates, prompts) = app.library.counts();
    let text = match section {
        Section::Resources => format!("Resources ({resources} fixed, {templates} templates)"),
        Section::Prompts => format!("Prompts ({prompts})"),
    };
    Line::styled(text, app.theme.title)
}

/// `  info  wasimancer://info`, `  dice  dice://{count}d{faces} ← roll-dice`.
fn resource_line(app: &App, resource: &ResourceView, width: usize) -> Line<'static> {
    let theme = &app.theme;
    let name = fit(&resource.name, width.saturating_sub(4) / 2);
    let mut detail = resource.uri.clone();
    if let Some((plugin, _)) = &resource.computed_by {
        detail.push_str(&format!(" ← {plugin}"));
    }
    let used = name.chars().count() + 4;
    Line::from(vec![
        Span::raw("  "),
        Span::styled(name, theme.name),
        Span::raw("  "),
        Span::styled(fit(&detail, width.saturating_sub(used)), theme.dim),
    ])
}

/// `  greet  (nickName, mood?)`.
fn prompt_line(app: &App, prompt: &PromptView, width: usize) -> Line<'static> {
    let theme = &app.theme;
    let name = fit(&prompt.name, width.saturating_sub(4) / 2);
    let arguments: Vec<String> = prompt
        .parameters
        .iter()
        .map(|p| {
            if p.required {
                p.name.clone()
            } else {
                format!("{}?", p.name)
            }
        })
        .collect();
    let used = name.chars().count() + 4;
    Line::from(vec![
        Span::raw("  "),
        Span::styled(name, theme.name),
        Span::raw("  "),
        Span::styled(
            fit(
                &format!("({})", arguments.join(", ")),
                width.saturating_sub(used),
            ),
            theme.dim,
        ),
    ])
}
