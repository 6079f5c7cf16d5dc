//! The one table of keys. Dispatch, the hint bar and the help overlay all
//! read [`KEYMAP`], so the help can never disagree with what a key does.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A key as the console matches it: printable keys by their character
/// (terminals disagree on whether Shift is reported with `G` or `?`),
/// control chords by their lower-case letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Char(char),
    Ctrl(char),
    F(u8),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    Backspace,
    Delete,
    /// Anything the console has no use for.
    Other,
}

impl Key {
    /// The key of a terminal key event.
    pub fn from_event(event: &KeyEvent) -> Self {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        let alt = event.modifiers.contains(KeyModifiers::ALT);
        match event.code {
            KeyCode::Char(c) if ctrl && !alt => Key::Ctrl(c.to_ascii_lowercase()),
            KeyCode::Char(_) if alt => Key::Other,
            KeyCode::Char(c) => Key::Char(c),
            KeyCode::F(n) => Key::F(n),
            KeyCode::Enter => Key::Enter,
            KeyCode::Esc => Key::Esc,
            KeyCode::Tab if event.modifiers.contains(KeyModifiers::SHIFT) => Key::BackTab,
            KeyCode::Tab => Key::Tab,
            KeyCode::BackTab => Key::BackTab,
            KeyCode::Up => Key::Up,
            KeyCode::Down => Key::Down,
            KeyCode::Left => Key::Left,
            KeyCode::Right => Key::Right,
            KeyCode::Home => Key::Home,
            KeyCode::End => Key::End,
            KeyCode::PageUp => Key::PageUp,
            KeyCode::PageDown => Key::PageDown,
            KeyCode::Backspace => Key::Backspace,
            KeyCode::Delete => Key::Delete,
            _ => Key::Other,
        }
    }

    /// How the key is written in the hint bar and the help.
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "Space".into(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("Ctrl-{}", c.to_ascii_uppercase()),
            Key::F(n) => format!("F{n}"),
            Key::Enter => "Enter".into(),
            Key::Esc => "Esc".into(),
            Key::Tab => "Tab".into(),
            Key::BackTab => "Shift-Tab".into(),
            Key::Up => "↑".into(),
            Key::Down => "↓".into(),
            Key::Left => "←".into(),
            Key::Right => "→".into(),
            Key::Home => "Home".into(),
            Key::End => "End".into(),
            Key::PageUp => "PgUp".into(),
            Key::PageDown => "PgDn".into(),
            Key::Backspace => "Backspace".into(),
            Key::Delete => "Del".into(),
            Key::Other => "?".into(),
        }
    }
}

/// Where the operator is: which group of bindings applies. A screen applies
/// several groups, the most specific first (see `App::modes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// In every screen, the JSON editor included.
    Always,
    /// Wherever no text is being typed.
    Global,
    /// Moving in a list or a scrolling view.
    Lists,
    Plugins,
    Calls,
    Log,
    /// The resources-and-prompts pane.
    Library,
    /// The call form's JSON editor.
    Form,
    /// Typing a filter for the call log.
    Filter,
    /// A call opened from the log.
    CallDetail,
    /// A plugin opened from the plugin list.
    PluginDetail,
    /// The outcome of a reload.
    Report,
    Help,
    /// "Quit while calls are in flight?"
    ConfirmQuit,
}

impl Mode {
    /// The heading of this group in the help.
    pub fn heading(self) -> &'static str {
        match self {
            Mode::Always => "Everywhere",
            Mode::Global => "Panes",
            Mode::Lists => "Lists and views",
            Mode::Plugins => "Plugins pane",
            Mode::Calls => "Calls pane",
            Mode::Log => "Log pane",
            Mode::Library => "Resources & prompts pane",
            Mode::Form => "Call form (JSON editor)",
            Mode::Filter => "Filter prompt",
            Mode::CallDetail => "Call details",
            Mode::PluginDetail => "Plugin details",
            Mode::Report => "Reload result",
            Mode::Help => "Help",
            Mode::ConfirmQuit => "Quit confirmation",
        }
    }
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Quit,
    Help,
    Suspend,
    NextPane,
    PreviousPane,
    FocusPlugins,
    FocusCalls,
    FocusLog,
    FocusLibrary,
    RevealTokens,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Back,
    Filter,
    ReloadPlugin,
    ReloadAll,
    ToggleFollow,
    Clear,
    Replay,
    Send,
    HistoryPrevious,
    HistoryNext,
    ResetDraft,
    ApplyFilter,
    ClearFilter,
    Confirm,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub mode: Mode,
    pub keys: &'static [Key],
    pub command: Command,
    /// What the key does, for the help.
    pub help: &'static str,
    /// A word or two for the hint bar; `None` keeps the key out of it.
    pub hint: Option<&'static str>,
}

const fn bind(
    mode: Mode,
    keys: &'static [Key],
    command: Command,
    help: &'static str,
    hint: Option<&'static str>,
) -> Binding {
    Binding {
        mode,
        keys,
        command,
        help,
        hint,
    }
}

use Command as C;
use Key as K;
use Mode as M;

/// Every key of the console. Within a screen, the first row that matches wins.
pub const KEYMAP: &[Binding] = &[
    // Lists first: in the panes their hints lead the hint bar.
    bind(
        M::Lists,
        &[K::Char('j'), K::Down],
        C::Down,
        "move down",
        None,
    ),
    bind(M::Lists, &[K::Char('k'), K::Up], C::Up, "move up", None),
    bind(
        M::Lists,
        &[K::PageDown, K::Ctrl('d')],
        C::PageDown,
        "page down",
        None,
    ),
    bind(
        M::Lists,
        &[K::PageUp, K::Ctrl('u')],
        C::PageUp,
        "page up",
        None,
    ),
    bind(
        M::Lists,
        &[K::Char('g'), K::Home],
        C::Top,
        "go to the top (oldest)",
        None,
    ),
    bind(
        M::Lists,
        &[K::Char('G'), K::End],
        C::Bottom,
        "go to the bottom (newest); the log follows again",
        None,
    ),
    // The plugins pane.
    bind(
        M::Plugins,
        &[K::Enter],
        C::Open,
        "on a function: open the call form; on a plugin: its details",
        Some("call/open"),
    ),
    bind(
        M::Plugins,
        &[K::Char('r')],
        C::ReloadPlugin,
        "reload the selected plugin",
        Some("reload"),
    ),
    // The calls pane.
    bind(
        M::Calls,
        &[K::Enter],
        C::Open,
        "open the selected call",
        Some("open"),
    ),
    bind(
        M::Calls,
        &[K::Char('e')],
        C::Replay,
        "open the selected call in the call form, to replay it",
        Some("replay"),
    ),
    bind(
        M::Calls,
        &[K::Char('f')],
        C::ToggleFollow,
        "follow new calls, or freeze the view",
        Some("follow"),
    ),
    bind(
        M::Calls,
        &[K::Char('/')],
        C::Filter,
        "filter by tool, plugin, source or outcome",
        Some("filter"),
    ),
    bind(
        M::Calls,
        &[K::Char('c')],
        C::Clear,
        "clear the view (calls keep being served)",
        Some("clear"),
    ),
    // The resources-and-prompts pane.
    bind(
        M::Library,
        &[K::Enter],
        C::Open,
        "open the form that reads the resource or renders the prompt",
        Some("read/render"),
    ),
    // The log pane.
    bind(
        M::Log,
        &[K::Char('f')],
        C::ToggleFollow,
        "follow new lines, or freeze the view",
        Some("follow"),
    ),
    bind(
        M::Log,
        &[K::Char('c')],
        C::Clear,
        "clear the view",
        Some("clear"),
    ),
    // Wherever no text is typed.
    bind(M::Global, &[K::Tab], C::NextPane, "next pane", Some("pane")),
    bind(
        M::Global,
        &[K::BackTab],
        C::PreviousPane,
        "previous pane",
        None,
    ),
    bind(
        M::Global,
        &[K::Char('1')],
        C::FocusPlugins,
        "plugins pane",
        None,
    ),
    bind(
        M::Global,
        &[K::Char('2')],
        C::FocusCalls,
        "calls pane",
        None,
    ),
    bind(
        M::Global,
        &[K::Char('3')],
        C::FocusLog,
        "server log pane",
        None,
    ),
    bind(
        M::Global,
        &[K::Char('4')],
        C::FocusLibrary,
        "resources and prompts pane",
        None,
    ),
    bind(
        M::Global,
        &[K::Char('R')],
        C::ReloadAll,
        "re-read plugins.yml and reload what changed",
        Some("reload all"),
    ),
    bind(
        M::Global,
        &[K::Char('t')],
        C::RevealTokens,
        "show or hide the tokens",
        None,
    ),
    bind(
        M::Global,
        &[K::Char('?')],
        C::Help,
        "this help",
        Some("help"),
    ),
    bind(
        M::Global,
        &[K::Char('q')],
        C::Quit,
        "quit (an attached console only detaches)",
        Some("quit"),
    ),
    // The call form: checked before the editor gets the key.
    bind(
        M::Form,
        &[K::Ctrl('s')],
        C::Send,
        "send the call",
        Some("send"),
    ),
    bind(
        M::Form,
        &[K::Esc],
        C::Back,
        "back to the panes; the draft is kept",
        Some("back"),
    ),
    bind(
        M::Form,
        &[K::Ctrl('p')],
        C::HistoryPrevious,
        "previous arguments sent",
        Some("history"),
    ),
    bind(
        M::Form,
        &[K::Ctrl('n')],
        C::HistoryNext,
        "next arguments sent",
        None,
    ),
    bind(
        M::Form,
        &[K::Ctrl('r')],
        C::ResetDraft,
        "reset the draft to the skeleton (Ctrl-U undoes)",
        Some("reset"),
    ),
    bind(
        M::Form,
        &[K::PageDown],
        C::PageDown,
        "scroll the result down",
        None,
    ),
    bind(
        M::Form,
        &[K::PageUp],
        C::PageUp,
        "scroll the result up",
        None,
    ),
    // The filter prompt.
    bind(
        M::Filter,
        &[K::Enter],
        C::ApplyFilter,
        "apply the filter",
        Some("apply"),
    ),
    bind(
        M::Filter,
        &[K::Esc],
        C::Back,
        "cancel; the previous filter stays",
        Some("cancel"),
    ),
    bind(
        M::Filter,
        &[K::Ctrl('u')],
        C::ClearFilter,
        "clear the filter text",
        Some("clear"),
    ),
    // Details and reports.
    bind(
        M::CallDetail,
        &[K::Char('e')],
        C::Replay,
        "open this call in the call form, to replay it",
        Some("replay"),
    ),
    bind(
        M::CallDetail,
        &[K::Esc, K::Enter, K::Char('q')],
        C::Back,
        "close",
        Some("close"),
    ),
    bind(
        M::PluginDetail,
        &[K::Char('r')],
        C::ReloadPlugin,
        "reload this plugin",
        Some("reload"),
    ),
    bind(
        M::PluginDetail,
        &[K::Esc, K::Enter, K::Char('q')],
        C::Back,
        "close",
        Some("close"),
    ),
    bind(
        M::Report,
        &[K::Esc, K::Enter, K::Char('q')],
        C::Back,
        "close",
        Some("close"),
    ),
    bind(
        M::Help,
        &[K::Esc, K::Char('?'), K::Char('q')],
        C::Back,
        "close the help",
        Some("close"),
    ),
    bind(
        M::ConfirmQuit,
        &[K::Char('y'), K::Enter],
        C::Confirm,
        "quit anyway",
        Some("quit"),
    ),
    bind(
        M::ConfirmQuit,
        &[K::Char('n'), K::Esc],
        C::Back,
        "stay",
        Some("stay"),
    ),
    // Everywhere.
    bind(
        M::Always,
        &[K::F(1)],
        C::Help,
        "help (also in the call form)",
        None,
    ),
    bind(
        M::Always,
        &[K::Ctrl('c')],
        C::Quit,
        "quit or detach, as q",
        None,
    ),
    bind(
        M::Always,
        &[K::Ctrl('z')],
        C::Suspend,
        "suspend to the shell; `fg` comes back",
        None,
    ),
];

/// In debug builds with `WASIMANCER_DEBUG_PANIC` set, this key panics the
/// console thread: the test that the terminal is given back after a panic
/// presses it. It is in no table: nobody should find it by accident.
#[cfg(debug_assertions)]
pub const DEBUG_PANIC_KEY: Key = Key::F(12);

/// The command `key` runs in a screen that applies `modes`, most specific first.
pub fn lookup(modes: &[Mode], key: Key) -> Option<Command> {
    modes.iter().find_map(|mode| {
        KEYMAP
            .iter()
            .find(|binding| binding.mode == *mode && binding.keys.contains(&key))
            .map(|binding| binding.command)
    })
}

/// The bindings of `modes` in the order the hint bar shows them.
pub fn hints(modes: &[Mode]) -> impl Iterator<Item = &'static Binding> + '_ {
    modes.iter().flat_map(|mode| {
        KEYMAP
            .iter()
            .filter(move |binding| binding.mode == *mode && binding.hint.is_some())
    })
}

/// The keys of a binding as the help writes them: "j/↓".
pub fn keys_label(binding: &Binding) -> String {
    binding
        .keys
        .iter()
        .map(|key| key.label())
        .collect::<Vec<_>>()
        .join("/")
}

/// The groups of the help, in order.
pub const HELP_ORDER: &[Mode] = &[
    Mode::Always,
    Mode::Global,
    Mode::Lists,
    Mode::Plugins,
    Mode::Calls,
    Mode::Log,
    Mode::Library,
    Mode::Form,
    Mode::Filter,
    Mode::CallDetail,
    Mode::PluginDetail,
    Mode::Report,
    Mode::Help,
    Mode::ConfirmQuit,
];

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventKind;

    fn event(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        let mut event = KeyEvent::new(code, modifiers);
        event.kind = KeyEventKind::Press;
        event
    }

    #[test]
    fn printable_keys_match_by_character_whatever_shift_says() {
        assert_eq!(
            Key::from_event(&event(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Key::Char('G')
        );
        assert_eq!(
            Key::from_event(&event(KeyCode::Char('G'), KeyModifiers::NONE)),
            Key::Char('G')
        );
        assert_eq!(
            Key::from_event(&event(
                KeyCode::Char('S'),
                KeyModifiers::CONTROL | KeyModifiers::SHIFT
            )),
            Key::Ctrl('s')
        );
    }

    #[test]
    fn no_key_is_bound_twice_in_one_mode() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for b in &KEYMAP[i + 1..] {
                if a.mode == b.mode {
                    for key in a.keys {
                        assert!(
                            !b.keys.contains(key),
                            "{key:?} is bound twice in {:?}",
                            a.mode
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_form_sees_ctrl_s_before_the_editor_and_typing_is_not_a_command() {
        let form = [Mode::Form, Mode::Always];
        assert_eq!(lookup(&form, Key::Ctrl('s')), Some(Command::Send));
        assert_eq!(lookup(&form, Key::Ctrl('c')), Some(Command::Quit));
        assert_eq!(lookup(&form, Key::Char('q')), None);
        assert_eq!(lookup(&form, Key::Char('j')), None);
        assert_eq!(lookup(&form, Key::Enter), None);
    }

    /// The key table of README.md, written from [`KEYMAP`].
    fn readme_table() -> String {
        let mut table = String::from("| where | keys | what |\n|---|---|---|\n");
        for mode in HELP_ORDER {
            for binding in KEYMAP.iter().filter(|binding| binding.mode == *mode) {
                table.push_str(&format!(
                    "| {} | `{}` | {} |\n",
                    mode.heading(),
                    keys_label(binding),
                    binding.help
                ));
            }
        }
        table
    }

    #[test]
    fn the_readme_lists_every_key_as_the_help_does() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md is readable");
        let table = readme_table();
        assert!(
            readme.contains(&table),
            "README.md's key table is out of date; replace it with:\n\n{table}"
        );
    }

    #[test]
    fn every_mode_has_a_help_heading_in_the_help() {
        for binding in KEYMAP {
            assert!(HELP_ORDER.contains(&binding.mode), "{:?}", binding.mode);
        }
    }
}
