//! datatrove's rate on the four published rule sets (Gopher quality and repetition, C4,
//! FineWeb), one core, measured by running its reference script in the same run as ours, so
//! `tokenlake bench curate` reports ratios rather than absolute rates from another day.

use std::path::Path;

/// The reference script, shipped inside the binary so the bench runs from anywhere. The
/// corpus-scale agreement tests run the same file to write datatrove's verdicts.
pub const DATATROVE_SCRIPT: &str = include_str!("../python/datatrove_verdicts.py");

/// Documents per second datatrove's rule sets label on one core, over the first `docs`
/// documents of `input`, with `python` (which must have datatrove, spacy and regex). The error
/// says why datatrove was not measured, for the report to show instead of a rate.
pub fn datatrove_rate(python: &Path, input: &Path, docs: usize) -> Result<f64, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let script = dir.path().join("datatrove_verdicts.py");
    std::fs::write(&script, DATATROVE_SCRIPT).map_err(|e| e.to_string())?;
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(input)
        .args(["--limit", &docs.to_string(), "--timing"])
        .output()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "datatrove not measured ({}): {}",
            python.display(),
            err.lines().last().unwrap_or("failed")
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let docs = v["docs"].as_f64().unwrap_or(0.0);
    let secs = v["seconds"].as_f64().unwrap_or(0.0).max(1e-9);
    Ok(docs / secs)
}
