//! The resources-and-prompts pane: what resources.yml and prompts.yml
//! serve, in one list under two headings. Enter opens the form that reads a
//! resource (a template's variables in it) or renders a prompt.

use super::{Action, App};
use crate::console::form::FormTarget;
use crate::control::{PromptView, ResourceView};

/// A row of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibraryRow {
    /// "Resources" or "Prompts"; not selectable.
    Heading(Section),
    Resource(usize),
    Prompt(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Resources,
    Prompts,
}

/// The pane's state.
#[derive(Debug, Default)]
pub struct LibraryPane {
    pub resources: Vec<ResourceView>,
    pub prompts: Vec<PromptView>,
    pub rows: Vec<LibraryRow>,
    pub selected: usize,
    pub top: usize,
}

impl LibraryPane {
    fn rebuild(&mut self) {
        let selected = self
            .rows
            .get(self.selected)
            .and_then(|row| self.row_key(*row));
        let mut rows = Vec::new();
        if !self.resources.is_empty() {
            rows.push(LibraryRow::Heading(Section::Resources));
            rows.extend((0..self.resources.len()).map(LibraryRow::Resource));
        }
        if !self.prompts.is_empty() {
            rows.push(LibraryRow::Heading(Section::Prompts));
            rows.extend((0..self.prompts.len()).map(LibraryRow::Prompt));
        }
        self.rows = rows;
        // Stay on the same entry; else on the first one that can be selected.
        self.selected = selected
            .and_then(|key| {
                self.rows
                    .iter()
                    .position(|row| self.row_key(*row).as_ref() == Some(&key))
            })
            .or_else(|| {
                self.rows
                    .iter()
                    .position(|row| !matches!(row, LibraryRow::Heading(_)))
            })
            .unwrap_or(0);
    }

    /// A row's identity that survives a new list.
    fn row_key(&self, row: LibraryRow) -> Option<(Section, String)> {
        match row {
            LibraryRow::Heading(_) => None,
            LibraryRow::Resource(i) => {
                Some((Section::Resources, self.resources.get(i)?.name.clone()))
            }
            LibraryRow::Prompt(i) => Some((Section::Prompts, self.prompts.get(i)?.name.clone())),
        }
    }

    /// What the form of `row` sends to.
    pub fn target(&self, row: LibraryRow) -> Option<FormTarget> {
        match row {
            LibraryRow::Heading(_) => None,
            LibraryRow::Resource(i) => self.resources.get(i).cloned().map(FormTarget::Resource),
            LibraryRow::Prompt(i) => self.prompts.get(i).cloned().map(FormTarget::Prompt),
        }
    }

    pub fn resource(&self, name: &str) -> Option<&ResourceView> {
        self.resources.iter().find(|resource| resource.name == name)
    }

    pub fn prompt(&self, name: &str) -> Option<&PromptView> {
        self.prompts.iter().find(|prompt| prompt.name == name)
    }

    /// (fixed resources, templates, prompts), for the header.
    pub fn counts(&self) -> (usize, usize, usize) {
        let templates = self.resources.iter().filter(|r| r.is_template()).count();
        (
            self.resources.len() - templates,
            templates,
            self.prompts.len(),
        )
    }
}

impl App {
    pub(super) fn set_resources(&mut self, resources: Vec<ResourceView>) {
        self.library.resources = resources;
        self.library_changed();
    }

    pub(super) fn set_prompts(&mut self, prompts: Vec<PromptView>) {
        self.library.prompts = prompts;
        self.library_changed();
    }

    fn library_changed(&mut self) {
        self.library.rebuild();
        // Forms follow their resources and prompts to new versions.
        for form in self.forms.values_mut() {
            let newer = match &form.target {
                FormTarget::Resource(old) => self
                    .library
                    .resource(&old.name)
                    .cloned()
                    .map(FormTarget::Resource),
                FormTarget::Prompt(old) => self
                    .library
                    .prompt(&old.name)
                    .cloned()
                    .map(FormTarget::Prompt),
                FormTarget::Tool(_) => None,
            };
            if let Some(newer) = newer {
                form.set_target(newer);
            }
        }
        self.keep_library_selection_visible();
    }

    pub(super) fn move_library_selection(&mut self, delta: isize) {
        let rows = &self.library.rows;
        if rows.is_empty() {
            return;
        }
        let last = rows.len() - 1;
        let target = self.library.selected.saturating_add_signed(delta).min(last);
        let entry = |i: &usize| !matches!(rows[*i], LibraryRow::Heading(_));
        // Headings are skipped in the direction of travel; at either end,
        // the other way.
        let (mut ahead, mut behind): (Vec<usize>, Vec<usize>) = if delta > 0 {
            ((target..=last).collect(), (0..target).rev().collect())
        } else {
            ((0..=target).rev().collect(), (target + 1..=last).collect())
        };
        ahead.retain(entry);
        behind.retain(entry);
        if let Some(found) = ahead.first().or(behind.first()) {
            self.library.selected = *found;
        }
        self.keep_library_selection_visible();
    }

    pub(super) fn keep_library_selection_visible(&mut self) {
        let height = self.library_height().max(1);
        let pane = &mut self.library;
        if pane.selected < pane.top {
            // Show the heading above the first entry too.
            pane.top = pane.selected.saturating_sub(1);
        } else if pane.selected >= pane.top + height {
            pane.top = pane.selected + 1 - height;
        }
        pane.top = pane.top.min(pane.rows.len().saturating_sub(height));
    }

    /// Enter: the form that reads the resource or renders the prompt.
    pub(super) fn open_library_row(&mut self) -> Option<Action> {
        let row = *self.library.rows.get(self.library.selected)?;
        let target = self.library.target(row)?;
        self.open_form_for(target);
        None
    }
}
