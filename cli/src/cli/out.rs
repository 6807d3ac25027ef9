//! Standard output for every command: lines, tables and JSON, in colour only where it shows.
//!
//! Everything goes through [`anstream`], which drops the colour codes when standard output is
//! not a terminal or `NO_COLOR` is set. A reader that goes away (`shmq ls | head`) ends the
//! command quietly with status 0, as `cat` does; any other write error is one `shmq:` line
//! and status 1. Never a panic.

use std::fmt;
use std::io::{self, Write};

use anstyle::{AnsiColor, Style};

/// Marks what went wrong (a dead process, a failed check).
pub(crate) const BAD: Style = AnsiColor::Red.on_default();
/// Marks what deserves a look (a problem in a segment, one being initialised).
pub(crate) const WARN: Style = AnsiColor::Yellow.on_default();
/// Table headings.
const HEADING: Style = Style::new().bold();

/// `println!` to [`line()`]: ends the process quietly when the reader went away.
macro_rules! say {
    ($($t:tt)*) => {
        crate::cli::out::line(format_args!($($t)*))
    };
}
pub(crate) use say;

/// Writes one line to standard output (see the module docs for errors).
pub(crate) fn line(args: fmt::Arguments<'_>) {
    let mut out = anstream::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    exit_on_error(written.and_then(|()| out.flush()));
}

/// Writes `value` as pretty-printed JSON and a newline to standard output.
pub(crate) fn json(value: &serde_json::Value) {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value always serializes");
    text.push('\n');
    let mut out = io::stdout().lock();
    exit_on_error(out.write_all(text.as_bytes()).and_then(|()| out.flush()));
}

/// Standard output was closed (the reader went away): the way `head` says it has enough.
pub(crate) fn is_closed(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

fn exit_on_error(result: io::Result<()>) {
    match result {
        Ok(()) => {}
        Err(e) if is_closed(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("shmq: cannot write the output: {e}");
            std::process::exit(1);
        }
    }
}

/// `text` in `style` (plain where colour does not show: [`line()`] strips it).
pub(crate) fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// One table cell: its text and how it is shown.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    pub(crate) fn styled(style: Style, text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            style,
        }
    }
}

impl<T: Into<String>> From<T> for Cell {
    fn from(text: T) -> Cell {
        Cell {
            text: text.into(),
            style: Style::new(),
        }
    }
}

/// Prints rows as left-aligned columns padded to their widest cell, two spaces apart, the
/// first row as the heading.
pub(crate) fn table(rows: &[Vec<Cell>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.text.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let mut text = String::new();
        for (c, cell) in row.iter().enumerate() {
            let style = if i == 0 { HEADING } else { cell.style };
            text.push_str(&paint(style, &cell.text));
            if c + 1 < row.len() {
                let pad = widths[c] - cell.text.chars().count() + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        say!("{text}");
    }
}
