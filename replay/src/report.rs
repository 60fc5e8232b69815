//! Running a set of transcript files and reporting one line per transcript,
//! then the `N passed, M failed` summary. On request, a failure is followed
//! by the transcript steps leading to it (the context of the first
//! difference).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::expect::shorten;
use super::runner::{run_transcript, RunConfig};
use super::transcript::Transcript;

/// A transcript path argument could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct CollectError {
    /// The path given.
    pub path: String,
    /// The underlying error.
    pub source: std::io::Error,
}

/// Expands the arguments into transcript files: files are taken as given,
/// folders contribute every `*.json` directly inside them, sorted by name.
/// Files whose name starts with one of `excludes` (a trailing `*` is
/// ignored) are left out.
pub fn collect(paths: &[PathBuf], excludes: &[String]) -> Result<Vec<PathBuf>, CollectError> {
    let mut out = Vec::new();
    for path in paths {
        let err = |source| CollectError {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(err)?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(err)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
            out.extend(files);
        } else {
            out.push(path.clone());
        }
    }
    out.retain(|p| !is_excluded(p, excludes));
    Ok(out)
}

fn is_excluded(path: &Path, excludes: &[String]) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    excludes.iter().any(|prefix| {
        let prefix = prefix.trim_end_matches('*');
        !prefix.is_empty() && name.starts_with(prefix)
    })
}

/// The name printed for a transcript: its file name without `.json`.
pub fn display_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Transcripts that replayed identically.
    pub passed: usize,
    /// Transcripts that did not.
    pub failed: usize,
}

impl Summary {
    /// Whether the run counts as a success (something ran and nothing failed).
    pub fn success(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

/// Replays one transcript file; `Err` carries the one-line failure reason.
pub async fn replay_file(path: &Path, config: &RunConfig) -> Result<(), String> {
    replay_file_with_context(path, config, 0)
        .await
        .map_err(|(reason, _)| reason)
}

/// Replays one transcript file; `Err` carries the one-line failure reason
/// and up to `context` recorded steps before the failing one, and that one,
/// rendered one per line.
pub async fn replay_file_with_context(
    path: &Path,
    config: &RunConfig,
    context: usize,
) -> Result<(), (String, Vec<String>)> {
    let transcript = Transcript::load(path).map_err(|e| (e.to_string(), Vec::new()))?;
    run_transcript(&transcript, config).await.map_err(|e| {
        let reason = e.to_string().replace(['\n', '\r'], " ");
        let lines = match e.step() {
            Some(step) if context > 0 => context_lines(&transcript, step, context),
            _ => Vec::new(),
        };
        (reason, lines)
    })
}

/// The steps `step - context ..= step` of `transcript`, one per line, the
/// failing one marked with `>`.
pub fn context_lines(transcript: &Transcript, step: usize, context: usize) -> Vec<String> {
    let first = step.saturating_sub(context);
    transcript
        .steps
        .iter()
        .enumerate()
        .skip(first)
        .take(step + 1 - first)
        .map(|(i, raw)| {
            let text = serde_json::to_string(raw).unwrap_or_default();
            let mark = if i == step { '>' } else { ' ' };
            format!("  {mark} step {i}: {}", shorten(&text))
        })
        .collect()
}

/// Replays `files` in order, writing `PASS name` / `FAIL name: reason` per
/// transcript and the final `N passed, M failed` line to `out`.
pub async fn run_files<W: Write>(
    files: &[PathBuf],
    config: &RunConfig,
    out: &mut W,
) -> std::io::Result<Summary> {
    run_files_with_context(files, config, 0, out).await
}

/// [`run_files`], where each `FAIL` line is followed by up to `context`
/// recorded steps before the failing step, and that step (marked `>`).
pub async fn run_files_with_context<W: Write>(
    files: &[PathBuf],
    config: &RunConfig,
    context: usize,
    out: &mut W,
) -> std::io::Result<Summary> {
    let mut summary = Summary::default();
    for path in files {
        let name = display_name(path);
        match replay_file_with_context(path, config, context).await {
            Ok(()) => {
                summary.passed += 1;
                writeln!(out, "PASS {name}")?;
            }
            Err((reason, lines)) => {
                summary.failed += 1;
                writeln!(out, "FAIL {name}: {reason}")?;
                for line in lines {
                    writeln!(out, "{line}")?;
                }
            }
        }
        out.flush()?;
    }
    writeln!(out, "{} passed, {} failed", summary.passed, summary.failed)?;
    out.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_by_file_name_prefix() {
        let ex = vec!["presence_".to_owned(), "longpoll*".to_owned()];
        assert!(is_excluded(Path::new("/x/presence_single.json"), &ex));
        assert!(is_excluded(Path::new("longpoll_basic.json"), &ex));
        assert!(!is_excluded(Path::new("/presence_/echo.json"), &ex));
        assert_eq!(display_name(Path::new("/a/b/echo.json")), "echo");
    }

    #[test]
    fn context_shows_the_steps_before_the_failing_one() {
        let t = Transcript::from_json(
            r#"{"scenario":"x","steps":[{"sleep_ms":1},{"sleep_ms":2},{"sleep_ms":3},{"sleep_ms":4}]}"#,
        )
        .expect("parses");
        let lines = context_lines(&t, 2, 1);
        assert_eq!(
            lines,
            [
                "    step 1: {\"sleep_ms\":2}",
                "  > step 2: {\"sleep_ms\":3}"
            ]
        );
        assert_eq!(context_lines(&t, 0, 3).len(), 1);
    }

    #[test]
    fn collects_sorted_json_from_folders() {
        let dir = std::env::temp_dir().join(format!("fawkes-collect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for name in ["b.json", "a.json", "presence_x.json", "notes.txt"] {
            std::fs::write(dir.join(name), "{}").expect("write");
        }
        let files = collect(std::slice::from_ref(&dir), &["presence_".to_owned()]).expect("ok");
        let names: Vec<_> = files.iter().map(|p| display_name(p)).collect();
        assert_eq!(names, ["a", "b"]);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(collect(&[dir], &[]).is_err());
    }
}
