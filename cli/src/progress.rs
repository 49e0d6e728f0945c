//! Progress displays for `kiln build`, `kiln pull` and `kiln push`, after
//! `docker buildx build --progress`.
//!
//! Every step of a build (and every image transfer) is a *vertex* with a
//! number, given in the order vertices are first seen, starting at 1.
//!
//! # Modes
//!
//! - `auto`: `tty` when stderr is a terminal, else `plain`.
//! - `tty`: a live display on stderr: one line per step with a spinner and
//!   its running time, the last [`TAIL_LINES`] lines of a running step's
//!   output under it, finished steps collapsed to one line with their time,
//!   `CACHED` for cache hits, a bar per blob being pulled or pushed. When
//!   `tty` is asked for but stderr is not a terminal, nothing is drawn;
//!   the collapsed line of each finished step (` => NAME 0.3s`, ` => CACHED
//!   NAME`, ` => ERROR NAME`) and notes are written as plain text instead.
//! - `plain`: BuildKit's numbered lines: `#N NAME` when a step starts,
//!   `#N CACHED`, `#N cache miss: REASON`, `#N NOTE: ...`, each line of a
//!   RUN step's output as `#N 0.123 LINE` (seconds since the step started),
//!   a line per finished blob transfer (`#N sha256:abcd… 12.3 MB / 12.3 MB
//!   done`), `#N ERROR: ...` and `#N DONE 0.3s`.
//! - `rawjson`: one JSON object per line on stderr (see below), and nothing
//!   else from the build display.
//! - `quiet`: nothing; errors are still reported.
//!
//! # The `rawjson` schema
//!
//! Every line is one object with these fields:
//!
//! | field | type | present | meaning |
//! | --- | --- | --- | --- |
//! | `time` | string | always | RFC 3339 UTC time with milliseconds |
//! | `vertex` | number | always | the vertex number (1, 2, …) |
//! | `name` | string | always | the vertex name, e.g. `[stage 1] RUN make` |
//! | `event` | string | always | `started`, `cached`, `miss`, `note`, `log`, `transfer`, `done` or `error` |
//! | `reason` | string | `miss` | why the cache was not used |
//! | `message` | string | `note`, `error` | the note, or the error |
//! | `data` | string | `log` | one line of the step's output, with its newline (the last line of a step may have none; invalid UTF-8 is replaced) |
//! | `seconds` | number | `done` | how long the vertex took |
//! | `digest` | string | `transfer` | the blob |
//! | `current`, `total` | number | `transfer` | bytes transferred and the blob's size |
//! | `status` | string | `transfer` | `running`, `done`, `present` (already local), `mounted` or `exists` (already in the registry) |
//!
//! `transfer` events with `status: running` come at most twice a second
//! per blob. Log lines hold only what the process itself printed: secret
//! values are never added.

use crate::global::human_size;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use kiln_oci::{BlobOutcome, Digest, TransferObserver};
use kiln_solver::{Event, ProgressSink};
use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How many lines of a running step's output the `tty` display shows.
pub const TAIL_LINES: usize = 6;

/// A partial output line longer than this is shown without waiting for
/// its end.
const MAX_LINE: usize = 16 * 1024;

/// `--progress` modes (the names `docker buildx build` uses).
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum ProgressMode {
    /// tty when stderr is a terminal, else plain.
    Auto,
    /// A live display (needs a terminal; see the docs for without one).
    Tty,
    /// Numbered lines, with every RUN step's output.
    Plain,
    /// One JSON object per line, for tools.
    Rawjson,
    /// Nothing but errors.
    Quiet,
}

impl ProgressMode {
    /// `auto` made concrete: `tty` when stderr is a terminal, else `plain`.
    pub fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            other => other,
        }
    }
}

/// Writes one line to stderr, ignoring errors (a closed stderr must not
/// stop a build, nor panic as `eprintln!` does).
pub fn eprint_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}

/// One vertex as the display knows it.
struct Vertex {
    number: usize,
    started: Instant,
    /// Output bytes after the last newline.
    partial: Vec<u8>,
    /// The last lines of output (tty).
    tail: VecDeque<String>,
    /// The step's line (tty).
    bar: Option<ProgressBar>,
    /// The output lines under it (tty).
    pane: Option<ProgressBar>,
    /// Running blob transfers (tty bars, rawjson throttling).
    blobs: HashMap<String, Blob>,
    /// The last blob bar added (tty: the next one goes under it).
    last_blob: Option<ProgressBar>,
    finished: bool,
    /// Its `#N NAME` line was printed (plain).
    announced: bool,
    /// Counted among the finished steps of the header.
    counted: bool,
}

struct Blob {
    bar: Option<ProgressBar>,
    last_report: Instant,
}

#[derive(Default)]
struct State {
    vertices: HashMap<String, Vertex>,
    next: usize,
    /// Vertices finished (done, cached or failed), for the header.
    completed: usize,
}

impl State {
    fn vertex(&mut self, name: &str) -> &mut Vertex {
        let next = &mut self.next;
        self.vertices.entry(name.to_string()).or_insert_with(|| {
            *next += 1;
            Vertex {
                number: *next,
                started: Instant::now(),
                partial: Vec::new(),
                tail: VecDeque::new(),
                bar: None,
                pane: None,
                blobs: HashMap::new(),
                last_blob: None,
                finished: false,
                announced: false,
                counted: false,
            }
        })
    }
}

/// The display: receives solver events ([`ProgressSink`]) and, through
/// [`Reporter::transfer`], registry transfer progress.
pub struct Reporter {
    mode: ProgressMode,
    state: Mutex<State>,
    /// The tty display (`None` in the other modes).
    multi: Option<MultiProgress>,
    /// buildx's `[+] Building 12.3s (7/9)` line atop the tty display
    /// (builds only).
    header: Option<Arc<Header>>,
}

/// The tty display's header: its line (when drawn), when it started and
/// the counts it shows. Shared with the thread that redraws it as time
/// passes, which never holds the [`Reporter`] (so the display always ends
/// where the build drops it, before the error is printed).
struct Header {
    bar: Option<ProgressBar>,
    started: Instant,
    completed: AtomicUsize,
    total: AtomicUsize,
}

impl Header {
    /// The header's text now.
    fn text(&self, finished: bool) -> String {
        header_text(
            self.started.elapsed().as_secs_f64(),
            self.completed.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
            finished,
        )
    }
}

/// `[+] Building 12.3s (7/9)`, and ` FINISHED` once the build is over:
/// buildx's header, counting finished steps of the steps seen.
fn header_text(seconds: f64, completed: usize, total: usize, finished: bool) -> String {
    format!(
        "[+] Building {seconds:.1}s ({completed}/{total}){}",
        if finished { " FINISHED" } else { "" }
    )
}

/// What happened to a blob, for the displays.
enum BlobEvent {
    Started(u64),
    Progress(u64, u64),
    Finished(u64, BlobOutcome),
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("secs", secs)
}

fn secs(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.1}s", state.elapsed().as_secs_f64());
}

/// A bar that draws nothing until it is added to the [`MultiProgress`]
/// (a bar made with `ProgressBar::new` draws on stderr on its own at its
/// first update, below the display).
fn hidden_bar(len: Option<u64>) -> ProgressBar {
    ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden())
}

fn running_style() -> ProgressStyle {
    style(" {spinner:.cyan} {wide_msg} {secs:>7}")
        .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "="])
}

fn finished_style() -> ProgressStyle {
    style(" {wide_msg} {prefix:>7}")
}

/// The first `width` characters of `text`.
fn clip(text: &str, width: usize) -> String {
    match text.char_indices().nth(width) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The terminal's width (80 when unknown).
fn term_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize we pass; nothing else is touched.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_col > 0 {
            usize::from(size.ws_col)
        } else {
            80
        }
    }
}

fn short(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("{}:{}", digest.algorithm(), &hex[..hex.len().min(12)])
}

impl Reporter {
    /// A display in `mode` (`auto` is resolved here).
    pub fn new(mode: ProgressMode) -> Arc<Reporter> {
        let mode = mode.resolve();
        let multi = (mode == ProgressMode::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Arc::new(Reporter {
            mode,
            state: Mutex::new(State::default()),
            multi,
            header: None,
        })
    }

    /// A display in `mode` for a build: as [`Reporter::new`], with
    /// buildx's `[+] Building 12.3s (7/9)` header atop the tty display,
    /// live, ending with `FINISHED` (written once at the end when the
    /// tty display is forced without a terminal).
    pub fn building(mode: ProgressMode) -> Arc<Reporter> {
        let mode = mode.resolve();
        let multi = (mode == ProgressMode::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let header = (mode == ProgressMode::Tty).then(|| {
            let bar = multi.as_ref().filter(|m| !m.is_hidden()).map(|m| {
                let bar = m.add(hidden_bar(None));
                bar.set_style(style("{msg}"));
                bar.set_message(header_text(0.0, 0, 0, false));
                bar
            });
            Arc::new(Header {
                bar,
                started: Instant::now(),
                completed: AtomicUsize::new(0),
                total: AtomicUsize::new(0),
            })
        });
        if let Some(header) = header.clone().filter(|h| h.bar.is_some()) {
            // The time moves between events too.
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                let Some(bar) = &header.bar else { break };
                if bar.is_finished() {
                    break;
                }
                bar.set_message(header.text(false));
            });
        }
        Arc::new(Reporter {
            mode,
            state: Mutex::new(State::default()),
            multi,
            header,
        })
    }

    /// Redraws the header with the current counts.
    fn update_header(&self, state: &State) {
        let Some(header) = &self.header else { return };
        header.completed.store(state.completed, Ordering::Relaxed);
        header.total.store(state.next, Ordering::Relaxed);
        if let Some(bar) = &header.bar {
            bar.set_message(header.text(false));
        }
    }

    /// Whether the command may print its own human-readable summary lines
    /// on stderr (not in `quiet` and `rawjson`).
    pub fn prints_summary(&self) -> bool {
        !matches!(self.mode, ProgressMode::Quiet | ProgressMode::Rawjson)
    }

    /// A transfer shown as vertex `name` (e.g. `pulling busybox:latest`):
    /// starts it now; pass it to the registry client, then call
    /// [`Transfer::done`] or [`Transfer::failed`].
    pub fn transfer(self: &Arc<Self>, name: &str) -> Arc<Transfer> {
        self.event(Event::Started {
            name: name.to_string(),
        });
        Arc::new(Transfer {
            reporter: self.clone(),
            name: name.to_string(),
            started: Instant::now(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tty display, when it is drawn.
    fn visible(&self) -> Option<&MultiProgress> {
        self.multi.as_ref().filter(|m| !m.is_hidden())
    }

    /// A line for a forced tty display without a terminal.
    fn hidden_line(&self, text: &str) {
        if self.mode == ProgressMode::Tty && self.visible().is_none() {
            eprint_line(text);
        }
    }

    fn json(&self, vertex: &Vertex, name: &str, event: &str, extra: serde_json::Value) {
        let mut object = serde_json::json!({
            "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "vertex": vertex.number,
            "name": name,
            "event": event,
        });
        if let (Some(o), serde_json::Value::Object(extra)) = (object.as_object_mut(), extra) {
            o.extend(extra);
        }
        eprint_line(&object.to_string());
    }

    /// Prints `#N NAME` for `v` in plain mode, once: the first event of a
    /// step (an error before it ran, a note) comes under its header.
    fn announce(&self, v: &mut Vertex, name: &str) {
        if self.mode == ProgressMode::Plain && !v.announced {
            v.announced = true;
            eprint_line(&format!("#{} {name}", v.number));
        }
    }

    /// Takes the complete lines out of `v.partial` (all of it with `all`).
    fn take_lines(v: &mut Vertex, all: bool) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(end) = v.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = v.partial.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        if (all && !v.partial.is_empty()) || v.partial.len() > MAX_LINE {
            let rest = std::mem::take(&mut v.partial);
            lines.push(String::from_utf8_lossy(&rest).into_owned());
        }
        lines
    }

    /// Shows the lines of output of `v`.
    fn show_lines(&self, v: &mut Vertex, name: &str, lines: Vec<String>) {
        match self.mode {
            ProgressMode::Plain => {
                let secs = v.started.elapsed().as_secs_f64();
                for line in lines {
                    let line = line.strip_suffix('\n').unwrap_or(&line);
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    eprint_line(&format!("#{} {secs:.3} {line}", v.number));
                }
            }
            ProgressMode::Rawjson => {
                for line in lines {
                    self.json(v, name, "log", serde_json::json!({ "data": line }));
                }
            }
            ProgressMode::Tty => {
                let Some(multi) = self.visible() else { return };
                let width = term_width().saturating_sub(8).max(20);
                for line in lines {
                    let line = line.trim_end_matches(['\n', '\r']);
                    // A progress meter redraws with \r: its last state.
                    let line = line.rsplit('\r').next().unwrap_or(line);
                    v.tail.push_back(clip(line, width));
                    while v.tail.len() > TAIL_LINES {
                        v.tail.pop_front();
                    }
                }
                if v.tail.is_empty() {
                    return;
                }
                let pane = v.pane.get_or_insert_with(|| {
                    let pane = hidden_bar(None).with_style(style("{msg:.dim}"));
                    match &v.bar {
                        Some(bar) => multi.insert_after(bar, pane),
                        None => multi.add(pane),
                    }
                });
                let text: Vec<String> = v.tail.iter().map(|l| format!("    > {l}")).collect();
                pane.set_message(text.join("\n"));
            }
            ProgressMode::Auto | ProgressMode::Quiet => {}
        }
    }

    /// Ends the tty line of `v` with `text` and `prefix` (collapsed).
    fn collapse(&self, v: &mut Vertex, text: String, prefix: String) {
        if let Some(pane) = v.pane.take() {
            pane.finish_and_clear();
            if let Some(multi) = &self.multi {
                multi.remove(&pane);
            }
        }
        for (_, blob) in v.blobs.drain() {
            if let Some(bar) = blob.bar {
                bar.finish_and_clear();
                if let Some(multi) = &self.multi {
                    multi.remove(&bar);
                }
            }
        }
        v.tail.clear();
        v.last_blob = None;
        if let Some(multi) = self.visible() {
            let bar = v.bar.take().unwrap_or_else(|| multi.add(hidden_bar(None)));
            bar.set_style(finished_style());
            bar.set_prefix(prefix);
            bar.finish_with_message(text);
        } else {
            self.hidden_line(&format!(" {text} {prefix}"));
        }
        v.finished = true;
    }

    fn blob(&self, name: &str, digest: &Digest, what: BlobEvent) {
        if self.mode == ProgressMode::Quiet {
            return;
        }
        let mut state = self.lock();
        let v = state.vertex(name);
        let key = digest.to_string();
        match self.mode {
            ProgressMode::Plain => {
                if let BlobEvent::Finished(size, outcome) = what {
                    let text = match outcome {
                        BlobOutcome::Fetched | BlobOutcome::Uploaded => {
                            format!("{} / {} done", human_size(size), human_size(size))
                        }
                        BlobOutcome::Present => "already present".into(),
                        BlobOutcome::Mounted => "mounted from another repository".into(),
                        BlobOutcome::Exists => "already in the registry".into(),
                    };
                    eprint_line(&format!(
                        "#{} {} {text} {:.1}s",
                        v.number,
                        short(digest),
                        v.started.elapsed().as_secs_f64()
                    ));
                }
            }
            ProgressMode::Rawjson => {
                let (current, total, status) = match what {
                    BlobEvent::Started(size) => {
                        v.blobs.insert(
                            key,
                            Blob {
                                bar: None,
                                last_report: Instant::now(),
                            },
                        );
                        (0, size, "running")
                    }
                    BlobEvent::Progress(done, size) => {
                        match v.blobs.get_mut(&key) {
                            Some(b) if b.last_report.elapsed() >= Duration::from_millis(500) => {
                                b.last_report = Instant::now();
                            }
                            _ => return,
                        }
                        (done, size, "running")
                    }
                    BlobEvent::Finished(size, outcome) => {
                        v.blobs.remove(&key);
                        let status = match outcome {
                            BlobOutcome::Fetched | BlobOutcome::Uploaded => "done",
                            BlobOutcome::Present => "present",
                            BlobOutcome::Mounted => "mounted",
                            BlobOutcome::Exists => "exists",
                        };
                        (size, size, status)
                    }
                };
                let extra = serde_json::json!({
                    "digest": digest.to_string(),
                    "current": current,
                    "total": total,
                    "status": status,
                });
                self.json(v, name, "transfer", extra);
            }
            ProgressMode::Tty => {
                let Some(multi) = self.visible() else { return };
                match what {
                    BlobEvent::Started(size) => {
                        let bar = hidden_bar(Some(size)).with_style(
                            style("   {prefix} {bar:30.cyan/blue} {bytes}/{total_bytes}")
                                .progress_chars("=> "),
                        );
                        let after = v.last_blob.as_ref().or(v.pane.as_ref()).or(v.bar.as_ref());
                        let bar = match after {
                            Some(a) => multi.insert_after(a, bar),
                            None => multi.add(bar),
                        };
                        bar.set_prefix(short(digest));
                        v.last_blob = Some(bar.clone());
                        v.blobs.insert(
                            key,
                            Blob {
                                bar: Some(bar),
                                last_report: Instant::now(),
                            },
                        );
                    }
                    BlobEvent::Progress(done, _) => {
                        if let Some(bar) = v.blobs.get(&key).and_then(|b| b.bar.as_ref()) {
                            bar.set_position(done);
                        }
                    }
                    BlobEvent::Finished(size, _) => {
                        // It stays (full) until the vertex is collapsed:
                        // removing lines while others tick confuses the
                        // redraw.
                        if let Some(bar) = v.blobs.get(&key).and_then(|b| b.bar.as_ref()) {
                            bar.set_length(size);
                            bar.set_position(size);
                            bar.finish();
                        }
                    }
                }
            }
            ProgressMode::Auto | ProgressMode::Quiet => {}
        }
    }
}

impl ProgressSink for Reporter {
    fn event(&self, event: Event) {
        if self.mode == ProgressMode::Quiet {
            return;
        }
        let mut state = self.lock();
        let finishing = matches!(
            event,
            Event::Cached { .. } | Event::Error { .. } | Event::Done { .. }
        );
        let name = match &event {
            Event::Started { name }
            | Event::Cached { name }
            | Event::Miss { name, .. }
            | Event::Note { name, .. }
            | Event::Log { name, .. }
            | Event::Error { name, .. }
            | Event::Done { name, .. } => name.clone(),
        };
        self.show(&mut state, event);
        let v = state.vertex(&name);
        if finishing && !v.counted {
            v.counted = true;
            state.completed += 1;
        }
        self.update_header(&state);
    }
}

impl Reporter {
    /// Shows one event.
    fn show(&self, state: &mut State, event: Event) {
        match event {
            Event::Started { name } => {
                let v = state.vertex(&name);
                v.started = Instant::now();
                match self.mode {
                    ProgressMode::Plain => self.announce(v, &name),
                    ProgressMode::Rawjson => self.json(v, &name, "started", serde_json::json!({})),
                    _ => {
                        if let Some(multi) = self.visible() {
                            let bar = multi.add(hidden_bar(None));
                            bar.set_style(running_style());
                            bar.set_message(name.clone());
                            bar.enable_steady_tick(Duration::from_millis(100));
                            v.bar = Some(bar);
                        }
                    }
                }
            }
            Event::Cached { name } => {
                let v = state.vertex(&name);
                match self.mode {
                    ProgressMode::Plain => {
                        self.announce(v, &name);
                        eprint_line(&format!("#{} CACHED", v.number))
                    }
                    ProgressMode::Rawjson => self.json(v, &name, "cached", serde_json::json!({})),
                    _ => self.collapse(v, format!("=> CACHED {name}"), "0.0s".into()),
                }
            }
            Event::Miss { name, reason } => {
                let v = state.vertex(&name);
                match self.mode {
                    ProgressMode::Plain => {
                        self.announce(v, &name);
                        eprint_line(&format!("#{} cache miss: {reason}", v.number))
                    }
                    ProgressMode::Rawjson => {
                        self.json(v, &name, "miss", serde_json::json!({ "reason": reason }))
                    }
                    _ => {}
                }
            }
            Event::Note { name, message } => {
                let v = state.vertex(&name);
                match self.mode {
                    ProgressMode::Plain => {
                        self.announce(v, &name);
                        eprint_line(&format!("#{} NOTE: {message}", v.number))
                    }
                    ProgressMode::Rawjson => {
                        self.json(v, &name, "note", serde_json::json!({ "message": message }))
                    }
                    _ => match self.visible() {
                        Some(multi) => {
                            let _ = multi.println(format!("NOTE: {name}: {message}"));
                        }
                        None => self.hidden_line(&format!("NOTE: {name}: {message}")),
                    },
                }
            }
            Event::Log { name, data } => {
                let v = state.vertex(&name);
                self.announce(v, &name);
                v.partial.extend_from_slice(&data);
                let lines = Self::take_lines(v, false);
                if !lines.is_empty() {
                    self.show_lines(v, &name, lines);
                }
            }
            Event::Error { name, message } => {
                let v = state.vertex(&name);
                self.announce(v, &name);
                let lines = Self::take_lines(v, true);
                self.show_lines(v, &name, lines);
                let first = message.lines().next().unwrap_or_default();
                match self.mode {
                    ProgressMode::Plain => eprint_line(&format!("#{} ERROR: {first}", v.number)),
                    ProgressMode::Rawjson => {
                        self.json(v, &name, "error", serde_json::json!({ "message": message }))
                    }
                    _ => {
                        let secs = format!("{:.1}s", v.started.elapsed().as_secs_f64());
                        // The error itself follows when the command fails.
                        self.collapse(v, format!("=> ERROR {name}"), secs);
                    }
                }
            }
            Event::Done { name, seconds } => {
                let v = state.vertex(&name);
                self.announce(v, &name);
                let lines = Self::take_lines(v, true);
                self.show_lines(v, &name, lines);
                match self.mode {
                    ProgressMode::Plain => {
                        eprint_line(&format!("#{} DONE {seconds:.1}s", v.number))
                    }
                    ProgressMode::Rawjson => {
                        self.json(v, &name, "done", serde_json::json!({ "seconds": seconds }))
                    }
                    _ => self.collapse(v, format!("=> {name}"), format!("{seconds:.1}s")),
                }
            }
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        // Stop the spinners of whatever never finished (a failed pull).
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(header) = &self.header {
            header.completed.store(state.completed, Ordering::Relaxed);
            header.total.store(state.next, Ordering::Relaxed);
            let text = header.text(true);
            match &header.bar {
                Some(bar) => bar.finish_with_message(text),
                None => eprint_line(&text),
            }
        }
        for v in state.vertices.values_mut() {
            if let Some(pane) = v.pane.take() {
                pane.finish_and_clear();
            }
            for (_, blob) in v.blobs.drain() {
                if let Some(bar) = blob.bar {
                    bar.finish_and_clear();
                }
            }
            if let Some(bar) = v.bar.take() {
                if !v.finished {
                    bar.abandon();
                }
            }
        }
    }
}

/// One image transfer shown as a vertex, with a line or bar per blob.
pub struct Transfer {
    reporter: Arc<Reporter>,
    name: String,
    started: Instant,
}

impl Transfer {
    /// The transfer succeeded.
    pub fn done(&self) {
        self.reporter.event(Event::Done {
            name: self.name.clone(),
            seconds: self.started.elapsed().as_secs_f64(),
        });
    }

    /// The transfer failed with `error`.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.reporter.event(Event::Error {
            name: self.name.clone(),
            message: error.to_string(),
        });
    }
}

impl TransferObserver for Transfer {
    fn blob_started(&self, digest: &Digest, size: u64) {
        self.reporter
            .blob(&self.name, digest, BlobEvent::Started(size));
    }

    fn blob_progress(&self, digest: &Digest, done: u64, size: u64) {
        self.reporter
            .blob(&self.name, digest, BlobEvent::Progress(done, size));
    }

    fn blob_finished(&self, digest: &Digest, size: u64, outcome: BlobOutcome) {
        self.reporter
            .blob(&self.name, digest, BlobEvent::Finished(size, outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex() -> Vertex {
        let mut state = State::default();
        state.vertex("a");
        state.vertices.remove("a").expect("vertex")
    }

    #[test]
    fn lines_are_split_at_newlines_and_flushed_at_the_end() {
        let mut v = vertex();
        v.partial.extend_from_slice(b"one\ntw");
        assert_eq!(Reporter::take_lines(&mut v, false), vec!["one\n"]);
        v.partial.extend_from_slice(b"o\nthree");
        assert_eq!(Reporter::take_lines(&mut v, false), vec!["two\n"]);
        assert_eq!(Reporter::take_lines(&mut v, true), vec!["three"]);
        assert!(Reporter::take_lines(&mut v, true).is_empty());
    }

    #[test]
    fn a_long_line_is_not_held_back_forever() {
        let mut v = vertex();
        v.partial = vec![b'x'; MAX_LINE + 1];
        assert_eq!(Reporter::take_lines(&mut v, false).len(), 1);
        assert!(v.partial.is_empty());
    }

    #[test]
    fn clip_cuts_at_characters() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("hi", 5), "hi");
    }
}
