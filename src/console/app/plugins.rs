//! The plugins pane: the list of plugins and their functions, the
//! selection, reloads, and Enter (a function's call form, a plugin's details).

use std::collections::BTreeSet;

use super::{App, Notice, Overlay, Pending, ReportView};
use crate::console::form::FormTarget;
use crate::control::{PluginView, Reply, Request, ToolView};

/// A row of the plugin list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginRow {
    Plugin {
        plugin: usize,
    },
    /// Why the plugin failed (or why its reload failed); not selectable.
    Reason {
        plugin: usize,
    },
    Function {
        plugin: usize,
        function: usize,
    },
}

impl PluginRow {
    pub fn plugin(self) -> usize {
        match self {
            PluginRow::Plugin { plugin }
            | PluginRow::Reason { plugin }
            | PluginRow::Function { plugin, .. } => plugin,
        }
    }

    fn selectable(self) -> bool {
        !matches!(self, PluginRow::Reason { .. })
    }
}

/// The plugins pane.
#[derive(Debug, Default)]
pub struct PluginsPane {
    /// The plugins as last heard of; `None` before the server's welcome.
    pub plugins: Option<Vec<PluginView>>,
    pub rows: Vec<PluginRow>,
    pub selected: usize,
    pub top: usize,
    /// Plugins being reloaded now (from the server's lifecycle events).
    pub reloading: BTreeSet<String>,
}

impl PluginsPane {
    pub fn list(&self) -> &[PluginView] {
        self.plugins.as_deref().unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&PluginView> {
        self.list().iter().find(|plugin| plugin.name == name)
    }

    /// The tool served by that name (or display name, as WASImancer
    /// clients call tools).
    pub fn tool(&self, name: &str) -> Option<&ToolView> {
        let served = || {
            self.list()
                .iter()
                .filter(|plugin| plugin.serving())
                .flat_map(|plugin| &plugin.tools)
        };
        served()
            .find(|tool| tool.name == name)
            .or_else(|| served().find(|tool| tool.title == name))
    }

    /// (plugins serving, plugins that are not).
    pub fn counts(&self) -> (usize, usize) {
        let serving = self.list().iter().filter(|p| p.serving()).count();
        (serving, self.list().len() - serving)
    }

    /// A row's identity that survives a new list: (plugin, function).
    fn row_key(&self, row: PluginRow) -> Option<(String, Option<String>)> {
        let plugin = self.list().get(row.plugin())?;
        let function = match row {
            PluginRow::Function { function, .. } => Some(plugin.tools.get(function)?.name.clone()),
            _ => None,
        };
        Some((plugin.name.clone(), function))
    }
}

impl App {
    pub(super) fn set_plugins(&mut self, plugins: Vec<PluginView>) {
        let pane = &mut self.plugins;
        let selected = pane
            .rows
            .get(pane.selected)
            .and_then(|row| pane.row_key(*row));
        let mut rows = Vec::new();
        for (p, plugin) in plugins.iter().enumerate() {
            rows.push(PluginRow::Plugin { plugin: p });
            if plugin.error.is_some() {
                rows.push(PluginRow::Reason { plugin: p });
            }
            rows.extend((0..plugin.tools.len()).map(|function| PluginRow::Function {
                plugin: p,
                function,
            }));
        }
        // Forms follow their tools to new versions.
        pane.rows = rows;
        pane.plugins = Some(plugins);
        for form in self.forms.values_mut() {
            if let FormTarget::Tool(old) = &form.target
                && let Some(tool) = pane.tool(&old.name)
            {
                form.set_target(FormTarget::Tool(tool.clone()));
            }
        }
        pane.selected = selected
            .and_then(|key| {
                pane.rows
                    .iter()
                    .position(|row| pane.row_key(*row).as_ref() == Some(&key))
            })
            .unwrap_or(0)
            .min(pane.rows.len().saturating_sub(1));
        self.keep_plugin_selection_visible();
    }

    pub(super) fn move_plugin_selection(&mut self, delta: isize) {
        let rows = &self.plugins.rows;
        if rows.is_empty() {
            return;
        }
        let last = rows.len() - 1;
        let mut target = self.plugins.selected.saturating_add_signed(delta).min(last);
        // Skip the rows that cannot be selected, in the direction of travel.
        while !rows[target].selectable() {
            match (delta > 0, target) {
                (true, t) if t < last => target += 1,
                (false, t) if t > 0 => target -= 1,
                _ => {
                    target = self.plugins.selected;
                    break;
                }
            }
        }
        self.plugins.selected = target;
        self.keep_plugin_selection_visible();
    }

    pub(super) fn keep_plugin_selection_visible(&mut self) {
        let height = self.plugins_height().max(1);
        let pane = &mut self.plugins;
        if pane.selected < pane.top {
            pane.top = pane.selected;
        } else if pane.selected >= pane.top + height {
            pane.top = pane.selected + 1 - height;
        }
        pane.top = pane.top.min(pane.rows.len().saturating_sub(height));
    }

    /// The plugin of the selected row.
    pub fn selected_plugin(&self) -> Option<&PluginView> {
        let row = self.plugins.rows.get(self.plugins.selected)?;
        self.plugins.list().get(row.plugin())
    }

    pub(super) fn reload_selected(&mut self) -> Option<super::Action> {
        let name = match &self.overlay {
            Some(Overlay::PluginDetail { plugin, .. }) => plugin.clone(),
            _ => self.selected_plugin()?.name.clone(),
        };
        self.overlay = None;
        self.plugins.reloading.insert(name.clone());
        self.notice = Notice::info(format!("reloading {name}…"));
        self.request(
            Request::ReloadPlugin {
                plugin: name.clone(),
            },
            Pending::Reload { plugin: Some(name) },
        )
    }

    pub(super) fn on_reload_reply(&mut self, plugin: Option<String>, reply: Reply) {
        let result = match reply {
            Reply::Reloaded { result } => result,
            Reply::Failed { reason } => Err(reason),
            other => Err(format!("the server answered something else: {other:?}")),
        };
        match &plugin {
            Some(name) => {
                self.plugins.reloading.remove(name);
            }
            None if result.is_err() => self.plugins.reloading.clear(),
            None => {}
        }
        self.notice = None;
        self.overlay = Some(Overlay::Report(ReportView {
            plugin,
            result,
            scroll: 0,
        }));
    }

    /// Enter in the plugins pane.
    pub(super) fn open_plugin_row(&mut self) -> Option<super::Action> {
        let row = *self.plugins.rows.get(self.plugins.selected)?;
        let plugin = self.plugins.list().get(row.plugin())?;
        match row {
            PluginRow::Function { function, .. } => {
                let name = plugin.tools.get(function)?.name.clone();
                match self.plugins.tool(&name) {
                    Some(tool) => {
                        let target = FormTarget::Tool(tool.clone());
                        self.open_form_for(target);
                    }
                    None => {
                        self.notice = Notice::error(format!(
                            "`{name}` is not served: plugin {} failed to load (Enter on the plugin tells why)",
                            plugin.name
                        ))
                    }
                }
            }
            PluginRow::Plugin { .. } | PluginRow::Reason { .. } => {
                self.overlay = Some(Overlay::PluginDetail {
                    plugin: plugin.name.clone(),
                    scroll: 0,
                });
            }
        }
        None
    }
}
