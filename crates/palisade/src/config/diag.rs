//! Config diagnostics that point at file:line:column and say what would be
//! right, in one line each (with the offending source line shown under it by
//! [`LoadError::render`]).

use std::fmt;
use std::ops::Range;
use std::path::Path;

/// One error or warning about the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; `None` when the problem is not at a place in the file (the file
    /// cannot be read at all).
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Which table it is in, e.g. "manual SA `lab`".
    pub context: Option<String>,
    /// The key at fault, e.g. "spi_in".
    pub field: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// What would be right.
    pub fix: Option<String>,
    /// The source line, for rendering.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at byte range `span` of `src`.
    pub(crate) fn at(file: &str, src: &str, span: Range<usize>) -> Diagnostic {
        let start = span.start.min(src.len());
        let before = &src[..floor_char_boundary(src, start)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        let source_line = src[line_start..].lines().next().map(str::to_string);
        Diagnostic {
            file: file.to_string(),
            line: Some(line),
            column: Some(column),
            context: None,
            field: None,
            problem: String::new(),
            fix: None,
            source_line,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        write!(f, ": ")?;
        if let Some(ctx) = &self.context {
            write!(f, "{ctx}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "`{field}`: ")?;
        }
        write!(f, "{}", self.problem)?;
        if let Some(fix) = &self.fix {
            write!(f, "; {fix}")?;
        }
        Ok(())
    }
}

/// Why a config was not loaded: every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub errors: Vec<Diagnostic>,
    /// Warnings found along the way (shown with the errors).
    pub warnings: Vec<Diagnostic>,
}

impl LoadError {
    pub(crate) fn io(path: &Path, e: &std::io::Error) -> LoadError {
        let fix = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "check the path; the examples/ directory has configs to start from"
            }
            std::io::ErrorKind::PermissionDenied => {
                "run as root, or make the file readable by this user"
            }
            _ => "check that the path names a readable file",
        };
        LoadError {
            errors: vec![Diagnostic {
                file: path.display().to_string(),
                line: None,
                column: None,
                context: None,
                field: None,
                problem: format!("cannot read the config: {e}"),
                fix: Some(fix.into()),
                source_line: None,
            }],
            warnings: Vec::new(),
        }
    }

    /// Every error, each followed by the source line and a caret, for a person
    /// at a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.errors {
            out.push_str(&format!("error: {d}\n"));
            if let (Some(line), Some(col), Some(src)) = (d.line, d.column, &d.source_line) {
                let n = line.to_string();
                out.push_str(&format!(
                    "{:w$} |\n{n} | {src}\n{:w$} | {:>c$}\n",
                    "",
                    "",
                    "^",
                    w = n.len(),
                    c = col
                ));
            }
        }
        out
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}
