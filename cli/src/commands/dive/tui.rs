//! The explorer: the layer list on the left (size, step), the merged file
//! tree of the selected layer on the right with what it added, changed
//! and removed marked (a letter and a colour), filters, collapse and
//! expand, and the keys in a footer.

use super::analysis::{compare, printable, tree_order, Analysis, Entry, Kind, Status, Tree};
use super::human_bytes;
use anyhow::{Context, Result};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use std::collections::{HashMap, HashSet};

/// Which pane the arrow keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Focus {
    Layers,
    Tree,
}

/// One line of the file tree.
#[derive(Debug, Clone)]
struct Row {
    path: String,
    name: String,
    depth: usize,
    is_dir: bool,
    status: Status,
    /// The newer entry, or the removed one; `None` for a directory only
    /// implied by the paths under it.
    entry: Option<Entry>,
    /// A file's size, or what a directory holds.
    size: u64,
}

/// The explorer's state.
pub struct App<'a> {
    analysis: &'a Analysis,
    layer: usize,
    focus: Focus,
    aggregated: bool,
    changed_only: bool,
    filter: String,
    typing: bool,
    collapsed: HashSet<String>,
    cursor: usize,
    offset: usize,
    rows: Vec<Row>,
}

impl<'a> App<'a> {
    /// The explorer on the base layer.
    pub fn new(analysis: &'a Analysis) -> App<'a> {
        let mut app = App {
            analysis,
            layer: 0,
            focus: Focus::Layers,
            aggregated: false,
            changed_only: false,
            filter: String::new(),
            typing: false,
            collapsed: HashSet::new(),
            cursor: 0,
            offset: 0,
            rows: Vec::new(),
        };
        app.rebuild();
        app
    }

    /// Recomputes the tree for the selected layer and mode.
    fn rebuild(&mut self) {
        let a = self.analysis;
        if a.layers.is_empty() {
            self.rows.clear();
            return;
        }
        let top = a.tree_at(Some(self.layer));
        let (base, written) = if self.aggregated && self.layer > 0 {
            (a.tree_at(Some(0)), a.written(1, self.layer))
        } else if self.layer > 0 {
            (
                a.tree_at(Some(self.layer - 1)),
                a.written(self.layer, self.layer),
            )
        } else {
            (Tree::new(), a.written(0, 0))
        };
        self.rows = rows(&base, &top, &written);
        self.cursor = 0;
        self.offset = 0;
    }

    /// The indices of the rows shown: filters applied, collapsed
    /// directories' contents left out.
    fn visible(&self) -> Vec<usize> {
        let keep: Option<HashSet<&str>> =
            (self.changed_only || !self.filter.is_empty()).then(|| {
                let mut keep = HashSet::new();
                for row in &self.rows {
                    let changed = !self.changed_only || row.status != Status::Unchanged;
                    let matches = self.filter.is_empty() || row.path.contains(self.filter.as_str());
                    if changed && matches {
                        let mut path = row.path.as_str();
                        keep.insert(path);
                        while let Some((parent, _)) = path.rsplit_once('/') {
                            if !keep.insert(parent) {
                                break;
                            }
                            path = parent;
                        }
                    }
                }
                keep
            });
        let mut out = Vec::new();
        let mut hidden_under: Option<String> = None;
        for (i, row) in self.rows.iter().enumerate() {
            if let Some(prefix) = &hidden_under {
                if row.path.len() > prefix.len()
                    && row.path.starts_with(prefix.as_str())
                    && row.path.as_bytes()[prefix.len()] == b'/'
                {
                    continue;
                }
                hidden_under = None;
            }
            if keep
                .as_ref()
                .is_some_and(|k| !k.contains(row.path.as_str()))
            {
                continue;
            }
            if row.is_dir && self.collapsed.contains(&row.path) {
                hidden_under = Some(row.path.clone());
            }
            out.push(i);
        }
        out
    }

    /// Handles one key; true when the explorer should quit.
    pub fn key(&mut self, key: KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return true;
        }
        if self.typing {
            match key.code {
                KeyCode::Enter => self.typing = false,
                KeyCode::Esc => {
                    self.typing = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if !ctrl => self.filter.push(c),
                _ => {}
            }
            self.cursor = 0;
            self.offset = 0;
            return false;
        }
        let visible = self.visible().len();
        match key.code {
            KeyCode::Char('q') => return true,
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Focus::Layers => Focus::Tree,
                    Focus::Tree => Focus::Layers,
                }
            }
            KeyCode::Char('/') => {
                self.typing = true;
                self.focus = Focus::Tree;
            }
            KeyCode::Char('f') if ctrl => {
                self.typing = true;
                self.focus = Focus::Tree;
            }
            KeyCode::Char('a') => {
                self.aggregated = !self.aggregated;
                self.rebuild();
            }
            KeyCode::Char('u') => {
                self.changed_only = !self.changed_only;
                self.cursor = 0;
                self.offset = 0;
            }
            KeyCode::Char('C') => {
                self.collapsed = self
                    .rows
                    .iter()
                    .filter(|r| r.is_dir)
                    .map(|r| r.path.clone())
                    .collect();
                self.cursor = 0;
                self.offset = 0;
            }
            KeyCode::Char('E') => self.collapsed.clear(),
            KeyCode::Char(' ') | KeyCode::Enter if self.focus == Focus::Tree => {
                let shown = self.visible();
                if let Some(row) = shown.get(self.cursor).map(|&i| &self.rows[i]) {
                    if row.is_dir && !self.collapsed.remove(&row.path) {
                        self.collapsed.insert(row.path.clone());
                    }
                }
            }
            KeyCode::Up | KeyCode::Char('k') => self.step(-1, visible),
            KeyCode::Down | KeyCode::Char('j') => self.step(1, visible),
            KeyCode::PageUp => self.step(-20, visible),
            KeyCode::PageDown => self.step(20, visible),
            _ => {}
        }
        false
    }

    fn step(&mut self, by: isize, visible: usize) {
        match self.focus {
            Focus::Layers => {
                let last = self.analysis.layers.len().saturating_sub(1);
                let next = self.layer.saturating_add_signed(by).min(last);
                if next != self.layer {
                    self.layer = next;
                    self.rebuild();
                }
            }
            Focus::Tree => {
                self.cursor = self
                    .cursor
                    .saturating_add_signed(by)
                    .min(visible.saturating_sub(1));
            }
        }
    }

    /// Draws the whole screen.
    pub fn draw(&mut self, frame: &mut Frame) {
        let [main, footer] = split(
            Direction::Vertical,
            frame.area(),
            [Constraint::Min(3), Constraint::Length(1)],
        );
        let [left, right] = split(
            Direction::Horizontal,
            main,
            [Constraint::Percentage(45), Constraint::Percentage(55)],
        );
        let layer_height = (self.analysis.layers.len() as u16 + 2)
            .min(left.height / 2)
            .max(3);
        let [layers, details] = split(
            Direction::Vertical,
            left,
            [Constraint::Length(layer_height), Constraint::Min(3)],
        );
        self.draw_layers(frame, layers);
        self.draw_details(frame, details);
        self.draw_tree(frame, right);
        let keys = if self.typing {
            format!(" Filter: {}█  Enter keep │ Esc clear", self.filter)
        } else {
            " q Quit │ Tab Switch │ ↑↓ Move │ Space Collapse dir │ C/E Collapse/Expand all │ u Changed only │ a Aggregated │ / Filter".to_string()
        };
        frame.render_widget(
            Paragraph::new(keys).style(Style::default().add_modifier(Modifier::REVERSED)),
            footer,
        );
    }

    fn block(&self, title: String, focus: Option<Focus>) -> Block<'static> {
        let style = if focus == Some(self.focus) {
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        Block::default()
            .borders(Borders::ALL)
            .border_style(style)
            .title(title)
    }

    fn draw_layers(&self, frame: &mut Frame, area: Rect) {
        let height = area.height.saturating_sub(2) as usize;
        let start = self.layer.saturating_sub(height.saturating_sub(1));
        let lines: Vec<Line> = self
            .analysis
            .layers
            .iter()
            .enumerate()
            .skip(start)
            .take(height)
            .map(|(i, l)| {
                let text = format!(
                    "{:>3} {:>9}  {}",
                    i,
                    human_bytes(l.size),
                    printable(&l.command)
                );
                let style = if i == self.layer {
                    Style::default().add_modifier(Modifier::REVERSED)
                } else {
                    Style::default()
                };
                Line::from(Span::styled(text, style))
            })
            .collect();
        frame.render_widget(
            Paragraph::new(lines).block(self.block(" Layers ".into(), Some(Focus::Layers))),
            area,
        );
    }

    fn draw_details(&self, frame: &mut Frame, area: Rect) {
        let a = self.analysis;
        let mut lines = Vec::new();
        if let Some(l) = a.layers.get(self.layer) {
            lines.push(Line::from(format!("Layer {}: {}", l.index, l.digest)));
            lines.push(Line::from(format!(
                "  {} added, {} changed, {} removed",
                l.added, l.changed, l.removed
            )));
            lines.push(Line::from(format!("  Command: {}", printable(&l.command))));
        }
        lines.push(Line::from(""));
        lines.push(Line::from(format!("Image name: {}", printable(&a.name))));
        lines.push(Line::from(format!(
            "Total Image size: {}",
            human_bytes(a.size)
        )));
        lines.push(Line::from(format!(
            "Potential wasted space: {}",
            human_bytes(a.wasted_bytes)
        )));
        lines.push(Line::from(format!(
            "Image efficiency score: {:.0} %",
            a.efficiency * 100.0
        )));
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            format!("{:<5} {:>11}  Path", "Count", "Total Space"),
            Style::default().add_modifier(Modifier::BOLD),
        )));
        for f in &a.inefficiencies {
            lines.push(Line::from(format!(
                "{:<5} {:>11}  {}",
                f.count,
                human_bytes(f.size),
                printable(&f.path)
            )));
        }
        frame.render_widget(
            Paragraph::new(lines).block(self.block(" Image Details ".into(), None)),
            area,
        );
    }

    fn draw_tree(&mut self, frame: &mut Frame, area: Rect) {
        let visible = self.visible();
        let height = area.height.saturating_sub(3) as usize;
        // A collapse or a filter may have left the cursor past the end.
        self.cursor = self.cursor.min(visible.len().saturating_sub(1));
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if height > 0 && self.cursor >= self.offset + height {
            self.offset = self.cursor + 1 - height;
        }
        let mut title = if self.aggregated {
            " Aggregated Layer Contents ".to_string()
        } else {
            " Current Layer Contents ".to_string()
        };
        if self.changed_only {
            title.push_str("[changed only] ");
        }
        if !self.filter.is_empty() {
            title.push_str(&format!("[filter: {}] ", self.filter));
        }
        let mut lines = vec![Line::from(Span::styled(
            "  Permission     UID:GID       Size  Filetree",
            Style::default().add_modifier(Modifier::BOLD),
        ))];
        for (n, &i) in visible.iter().enumerate().skip(self.offset).take(height) {
            let row = &self.rows[i];
            let color = match row.status {
                Status::Added => Some(Color::Green),
                Status::Changed => Some(Color::Yellow),
                Status::Removed => Some(Color::Red),
                Status::Unchanged => None,
            };
            let (perm, owner) = match &row.entry {
                Some(e) => (permissions(e), format!("{}:{}", e.uid, e.gid)),
                None => ("drwxr-xr-x".to_string(), "0:0".to_string()),
            };
            let marker = if !row.is_dir {
                "  "
            } else if self.collapsed.contains(&row.path) {
                "▸ "
            } else {
                "▾ "
            };
            let mut name = format!("{}{}{}", "  ".repeat(row.depth), marker, row.name);
            if row.is_dir {
                name.push('/');
            }
            if let Some(link) = row.entry.as_ref().and_then(|e| e.link.as_ref()) {
                name.push_str(&format!(" → {}", printable(link)));
            }
            let text = format!(
                "{} {} {:>9} {:>9}  {}",
                row.status.letter(),
                perm,
                owner,
                human_bytes(row.size),
                name
            );
            let mut style = color.map_or_else(Style::default, |c| Style::default().fg(c));
            if n == self.cursor && self.focus == Focus::Tree {
                style = style.add_modifier(Modifier::REVERSED);
            }
            lines.push(Line::from(Span::styled(text, style)));
        }
        frame.render_widget(
            Paragraph::new(lines).block(self.block(title, Some(Focus::Tree))),
            area,
        );
    }
}

fn split<const N: usize>(
    direction: Direction,
    area: Rect,
    constraints: [Constraint; N],
) -> [Rect; N] {
    Layout::default()
        .direction(direction)
        .constraints(constraints)
        .areas(area)
}

/// `ls -l`'s mode column.
fn permissions(e: &Entry) -> String {
    let mut s = String::with_capacity(10);
    s.push(e.kind.letter());
    for shift in [6u32, 3, 0] {
        let bits = (e.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// The tree's rows: every path of either tree (and the directories they
/// imply), in tree order, each with its status and size.
fn rows(base: &Tree, top: &Tree, written: &HashSet<String>) -> Vec<Row> {
    let compared = compare(base, top, written, true);
    let present: HashSet<&str> = compared.iter().map(|c| c.path.as_str()).collect();
    let mut implied: HashSet<String> = HashSet::new();
    for c in &compared {
        let mut path = c.path.as_str();
        while let Some((parent, _)) = path.rsplit_once('/') {
            if present.contains(parent) || !implied.insert(parent.to_string()) {
                break;
            }
            path = parent;
        }
    }
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for c in &compared {
        let Some(e) = &c.new else { continue };
        if e.size == 0 {
            continue;
        }
        let mut path = c.path.as_str();
        while let Some((parent, _)) = path.rsplit_once('/') {
            *sizes.entry(parent.to_string()).or_default() += e.size;
            path = parent;
        }
    }
    let mut out: Vec<Row> = compared
        .into_iter()
        .map(|c| {
            let entry = c.new.or(c.old);
            let is_dir = entry.as_ref().is_some_and(|e| e.kind == Kind::Dir);
            let size = if is_dir {
                sizes.get(&c.path).copied().unwrap_or(0)
            } else {
                entry.as_ref().map_or(0, |e| e.size)
            };
            row(c.path, c.status, entry, is_dir, size)
        })
        .collect();
    for path in implied {
        let size = sizes.get(&path).copied().unwrap_or(0);
        out.push(row(path, Status::Unchanged, None, true, size));
    }
    out.sort_by(|a, b| tree_order(&a.path, &b.path));
    out
}

fn row(path: String, status: Status, entry: Option<Entry>, is_dir: bool, size: u64) -> Row {
    let depth = path.matches('/').count();
    let name = printable(path.rsplit('/').next().unwrap_or(&path)).into_owned();
    Row {
        path,
        name,
        depth,
        is_dir,
        status,
        entry,
        size,
    }
}

/// Puts the terminal back (raw mode off, main screen, cursor shown) when
/// dropped: on return, error or panic.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = disable_raw_mode();
        let _ = execute!(std::io::stdout(), LeaveAlternateScreen, cursor::Show);
    }
}

/// Runs the explorer until q or Ctrl-C.
pub fn run(analysis: &Analysis) -> Result<()> {
    enable_raw_mode().context("switching the terminal to raw mode")?;
    let _restore = Restore;
    execute!(std::io::stdout(), EnterAlternateScreen).context("opening the alternate screen")?;
    let backend = ratatui::backend::CrosstermBackend::new(std::io::stdout());
    let mut terminal = ratatui::Terminal::new(backend).context("opening the terminal")?;
    let mut app = App::new(analysis);
    loop {
        terminal.draw(|f| app.draw(f)).context("drawing")?;
        if let Event::Key(key) = event::read().context("reading a key")? {
            if key.kind != KeyEventKind::Release && app.key(key) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::analysis::{analyse, read_layer, tests::layer, Budget, LayerMeta};
    use super::*;
    use ratatui::backend::TestBackend;

    fn image() -> Analysis {
        let dir = tar::EntryType::Directory;
        let file = tar::EntryType::Regular;
        let big = vec![1u8; 3000];
        let layers = [
            layer(&[
                ("bin/", dir, b""),
                ("bin/sh", file, b"#!shell"),
                ("etc/", dir, b""),
                ("etc/passwd", file, b"root:x:0:0"),
                ("etc/group", file, b"root:x:0"),
            ]),
            layer(&[("app/", dir, b""), ("app/data.bin", file, &big)]),
            layer(&[
                ("app/data.bin", file, b"small"),
                ("etc/.wh.group", file, b""),
            ]),
        ];
        let mut budget = Budget::image();
        let changes = layers
            .iter()
            .map(|l| read_layer(&mut &l[..], false, &mut budget).expect("reads"))
            .collect();
        let metas = ["FROM busybox", "COPY data.bin /app/", "RUN rm /etc/group"]
            .iter()
            .enumerate()
            .map(|(i, c)| LayerMeta {
                digest: format!("sha256:{i:064}"),
                diff_id: None,
                blob_size: 0,
                command: c.to_string(),
            })
            .collect();
        analyse("test:1".into(), metas, changes)
    }

    fn screen(app: &mut App) -> Vec<String> {
        let mut terminal = ratatui::Terminal::new(TestBackend::new(140, 30)).expect("terminal");
        terminal.draw(|f| app.draw(f)).expect("draws");
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect()
    }

    /// The first line of the tree pane (the right 55%) holding `text`.
    fn line_with(screen: &[String], text: &str) -> Option<String> {
        screen
            .iter()
            .map(|l| l.chars().skip(63).collect::<String>())
            .find(|l| l.contains(text))
    }

    /// The first line of the screen holding `text`.
    fn anywhere(screen: &[String], text: &str) -> Option<String> {
        screen.iter().find(|l| l.contains(text)).cloned()
    }

    fn press(app: &mut App, code: KeyCode) -> bool {
        app.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn the_screen_lists_layers_and_marks_the_tree() {
        let a = image();
        let mut app = App::new(&a);
        let s = screen(&mut app);
        assert!(anywhere(&s, "COPY data.bin /app/").is_some(), "{s:#?}");
        assert!(anywhere(&s, "RUN rm /etc/group").is_some());
        assert!(anywhere(&s, "q Quit").is_some());
        // The base layer added everything.
        let passwd = line_with(&s, "passwd").expect("passwd shown");
        assert!(passwd.contains("│A -rw-r--r--"), "{passwd}");
        // Layer 2: data.bin changed, group removed, passwd untouched.
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        let s = screen(&mut app);
        assert!(line_with(&s, "data.bin").expect("data").contains("│C -rw"));
        assert!(line_with(&s, "group").expect("group").contains("│R -rw"));
        assert!(line_with(&s, "passwd").expect("passwd").contains("│  -rw"));
        assert!(
            anywhere(&s, "Potential wasted space: 3.0 kB").is_some(),
            "{s:#?}"
        );
        // Changed only: passwd and sh go, their directories stay.
        press(&mut app, KeyCode::Char('u'));
        let s = screen(&mut app);
        assert!(line_with(&s, "passwd").is_none());
        assert!(line_with(&s, "▾ bin/").is_none(), "{s:#?}");
        assert!(line_with(&s, "group").is_some());
        assert!(line_with(&s, "[changed only]").is_some());
    }

    #[test]
    fn filter_and_collapse_hide_rows() {
        let a = image();
        let mut app = App::new(&a);
        press(&mut app, KeyCode::Char('/'));
        for c in "pass".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        press(&mut app, KeyCode::Enter);
        let s = screen(&mut app);
        assert!(line_with(&s, "passwd").is_some());
        assert!(line_with(&s, "group").is_none(), "{s:#?}");
        assert!(line_with(&s, "[filter: pass]").is_some());
        // Esc on a new filter clears it.
        press(&mut app, KeyCode::Char('/'));
        press(&mut app, KeyCode::Esc);
        let s = screen(&mut app);
        assert!(line_with(&s, "group").is_some());
        // Collapse etc/ (the filter put the focus on the tree): the
        // cursor is on bin/, one down is sh, then etc/.
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Char(' '));
        let s = screen(&mut app);
        assert!(line_with(&s, "▸ etc/").is_some(), "{s:#?}");
        assert!(line_with(&s, "passwd").is_none());
        press(&mut app, KeyCode::Char('E'));
        let s = screen(&mut app);
        assert!(line_with(&s, "passwd").is_some());
        assert!(press(&mut app, KeyCode::Char('q')));
    }

    #[test]
    fn aggregated_changes_compare_with_the_base_layer() {
        let a = image();
        let mut app = App::new(&a);
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Char('a'));
        let s = screen(&mut app);
        assert!(line_with(&s, "Aggregated Layer Contents").is_some());
        // Against the base layer, data.bin is new, not changed.
        assert!(line_with(&s, "data.bin").expect("data").contains("│A -rw"));
        assert!(line_with(&s, "group").expect("group").contains("│R -rw"));
    }
}
