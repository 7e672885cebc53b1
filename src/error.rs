//! One error type for the library; the binary maps it to an exit code.

use std::time::Duration;

/// What the binary should exit with for an error (see README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 1: the run failed part-way; it is safe to investigate and run again.
    Failed = 1,
    /// 2: input was refused before anything in AWS was changed.
    Refused = 2,
    /// 3: the data check found the tables differ.
    Mismatch = 3,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input refused before any change in AWS. `field` names the input, `message` the rule and a
    /// valid example.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },

    #[error("could not read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "could not write {path}: {source}; make the directory writable or choose another with --report-dir"
    )]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// An AWS call failed for good (not retryable, or retries exhausted by the SDK).
    #[error("AWS {operation} on {resource} failed: {message}")]
    Aws {
        operation: &'static str,
        resource: String,
        /// What kind of failure it was, classified once from its error code by `aws::error_kind`.
        kind: AwsErrorKind,
        message: String,
    },

    /// A retry budget ran out; the items in flight were not written, so the run stops loudly.
    #[error(
        "{operation} on {table}: {attempts} attempts in a row got nothing through over {elapsed:?}, \
         with {pending} item(s) still unwritten (last cause: {last_cause}); nothing was skipped, the run \
         stopped. Wait for the table's capacity or lower --max-write-rate/--segments, raise \
         --retry-budget if the faults are transient, then run again"
    )]
    RetryBudgetExhausted {
        operation: &'static str,
        table: String,
        pending: usize,
        attempts: u32,
        elapsed: Duration,
        last_cause: String,
    },

    #[error("timed out after {waited:?} waiting for {what}; last seen state: {last_state}")]
    WaitTimeout {
        what: String,
        waited: Duration,
        last_state: String,
    },

    /// A resource reached a state the run cannot continue from.
    #[error("{what} is in state {state}: {hint}")]
    BadState {
        what: String,
        state: String,
        hint: String,
    },

    /// A resource of the name this execution would use exists, and AWS shows it is not this
    /// execution's: it is never adopted, tagged or deleted.
    #[error(
        "{what} exists but is not this execution's: {why}. dynamo-dr did not adopt, tag or delete \
         it, and {table} was not changed. Find out who made it (its tags, CloudTrail); to recover \
         {table} now, start again with a new incident id"
    )]
    NotOurs {
        what: String,
        why: String,
        table: String,
    },

    #[error(
        "item count check failed: {dest} has {dest_count} items but {source_table} has {source_count} \
         (counted by full consistent scans). The destination does not match the restore point; \
         do not end recovery mode. Keep the temporary table ({source_table}) and investigate"
    )]
    CountMismatch {
        source_table: String,
        dest: String,
        source_count: u64,
        dest_count: u64,
    },

    #[error(
        "verification failed: {dest} ({dest_items} items) does not equal {source_table} ({source_items} items): \
         {missing} missing, {extra} extra, {changed} changed; for example {sample}. Keep {source_table} and \
         investigate (dynamo-dr diff --source {source_table} --dest {dest} --out diff.jsonl); do not end \
         recovery mode"
    )]
    VerifyMismatch {
        source_table: String,
        dest: String,
        source_items: u64,
        dest_items: u64,
        missing: u64,
        extra: u64,
        changed: u64,
        sample: String,
    },

    #[error(
        "{conflicts} item(s) of {table} changed after the tool read them, so their targeted writes \
         were refused and the application's versions were kept; for example {sample}. Review them \
         (the incident report lists them); `dynamo-dr resume {execution}` plans them again \
         against the restore point, which keeps {restored}"
    )]
    Conflicts {
        table: String,
        execution: String,
        restored: String,
        conflicts: u64,
        sample: String,
    },

    #[error(
        "verification of the scope failed: {differing} of the {in_scope} items in scope of {table} \
         differ from the restore point in {restored}; for example {sample}. Keep {restored} and \
         investigate; `dynamo-dr resume {execution}` plans the scope again"
    )]
    ScopeMismatch {
        table: String,
        execution: String,
        restored: String,
        in_scope: u64,
        differing: u64,
        sample: String,
    },

    /// A phase failed after earlier phases changed things; `state` says what exists now.
    #[error("{phase} failed: {source}. Left in place: {state}")]
    PhaseFailed {
        phase: &'static str,
        state: String,
        #[source]
        source: Box<Error>,
    },

    /// The journal cannot be read or written; the message says which record and what to do.
    #[error("journal: {0}")]
    Journal(String),

    /// This writer's lease token is no longer the lease's: another holder took over, so this one
    /// stopped before its next write.
    #[error(
        "stale writer: the lease on {table} is no longer this writer's (fence {mine}); it is now \
         {now}. This writer stopped before its next write; the new holder carries the run on \
         (`dynamo-dr status` shows it)"
    )]
    Fenced {
        table: String,
        mine: u64,
        now: String,
    },

    /// A journal record changed under this writer: another writer saved it first.
    #[error(
        "journal: {what} was saved by another writer since this one read it (version {expected}); \
         this one wrote nothing and stopped. Look at it with `dynamo-dr status`: if no run holds \
         it now, `dynamo-dr resume` continues from the record as it is"
    )]
    Conflict { what: String, expected: u64 },

    /// Some of many independent calls failed; the message lists each.
    #[error("{0}")]
    Incomplete(String),

    /// Some tables of a multi-table restore were not recovered; `status` is the worst outcome.
    #[error("{message}")]
    Tables { message: String, status: ExitStatus },

    #[error("interrupted by the operator")]
    Interrupted,

    /// `check` found conditions a recovery needs that do not hold; the checklist says which.
    #[error(
        "{failed} preflight check(s) failed; fix them (see the checklist above) and run check again"
    )]
    ChecksFailed { failed: usize },
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Invalid { .. } => ExitStatus::Refused,
            Error::CountMismatch { .. }
            | Error::VerifyMismatch { .. }
            | Error::Conflicts { .. }
            | Error::ScopeMismatch { .. } => ExitStatus::Mismatch,
            Error::Tables { status, .. } => *status,
            // A refusal after changes were made is no longer "nothing changed".
            Error::PhaseFailed { source, .. } => match source.exit_status() {
                ExitStatus::Refused => ExitStatus::Failed,
                other => other,
            },
            _ => ExitStatus::Failed,
        }
    }
}

/// The kinds of AWS failure the tool acts on; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// DynamoDB asked the caller to slow down.
    Throttled,
    /// The table, backup or function does not exist.
    NotFound,
    /// A table of that name exists (or is being created or deleted).
    AlreadyExists,
    /// A condition expression did not hold.
    ConditionFailed,
    Other,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Every `.rs` file under `dir`.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// A literal's text as the program holds it: `\` continuations skipped, `\n` and `\x20`
    /// unescaped, a raw line break kept as `\n` (other escapes stay as written).
    fn unescape(body: &str) -> String {
        let mut out = String::new();
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('\n') => while chars.next_if(|c| c.is_whitespace()).is_some() {},
                Some('n') => out.push('\n'),
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(u8::from_str_radix(&hex, 16).map_or('?', char::from));
                }
                Some(other) => out.extend(['\\', other]),
                None => {}
            }
        }
        out
    }

    /// The string literals of `src` before its test module: (line, as written, as held).
    fn literals(src: &str) -> Vec<(usize, String, String)> {
        let src = src.split("#[cfg(test)]").next().unwrap_or_default();
        let (b, mut i, mut found) = (src.as_bytes(), 0, Vec::new());
        let line = |at: usize| src[..at].matches('\n').count() + 1;
        while i < b.len() {
            let rest = &src[i..];
            let after_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
            if rest.starts_with("//") {
                i += rest.find('\n').unwrap_or(rest.len());
            } else if b[i] == b'\'' {
                // A char literal ('"', '\'', '\u{..}'), or a lifetime's quote.
                let close = match rest.as_bytes().get(1) {
                    Some(b'\\') => rest[2..].find('\'').map(|n| n + 3),
                    _ => rest
                        .char_indices()
                        .nth(2)
                        .filter(|(_, c)| *c == '\'')
                        .map(|(n, _)| n + 1),
                };
                i += close.unwrap_or(1);
            } else if !after_ident && (rest.starts_with("r\"") || rest.starts_with("r#")) {
                let hashes = rest[1..].len() - rest[1..].trim_start_matches('#').len();
                let open = 2 + hashes;
                let end = format!("\"{}", "#".repeat(hashes));
                let close = rest[open..].find(&end).expect("raw string end") + open;
                let body = &rest[open..close];
                found.push((line(i), body.to_string(), body.to_string()));
                i += close + end.len();
            } else if b[i] == b'"' {
                let mut j = i + 1;
                while b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let body = &src[i + 1..j];
                found.push((line(i), body.to_string(), unescape(body)));
                i = j + 1;
            } else {
                i += 1;
            }
        }
        found
    }

    /// Where a literal has a run of spaces inside a sentence: a line break in the source not
    /// escaped with `\\` (its indentation joins the text), or two or more spaces after a word.
    /// Indentation and column alignment (after `:` or `}`, as in the plan and `status`) are
    /// layout, not sentences.
    fn spaced<'a>(raw: &'a str, text: &'a str) -> Option<&'a str> {
        let broken = raw
            .match_indices("\n ")
            .any(|(at, _)| !raw[..at].ends_with('\\'));
        if broken {
            return Some(raw);
        }
        text.split('\n').find(|line| {
            let b = line.trim().as_bytes();
            (1..b.len().saturating_sub(1)).any(|k| {
                b[k] == b' ' && b[k + 1] == b' ' && !matches!(b[k - 1], b' ' | b':' | b'}')
            })
        })
    }

    #[test]
    fn no_message_has_a_run_of_spaces_inside_a_sentence() {
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut bad = Vec::new();
        for file in files {
            let src = std::fs::read_to_string(&file).expect("read");
            for (line, raw, text) in literals(&src) {
                if let Some(at) = spaced(&raw, &text) {
                    bad.push(format!("{}:{line}: {at:?}", file.display()));
                }
            }
        }
        assert!(
            bad.is_empty(),
            "runs of spaces in messages:\n{}",
            bad.join("\n")
        );
    }
}
