//! The files of a design: `runs.csv` (one row per proxy run: its weights, tokens and, once
//! trained, its loss) and `design.json` (the components' attributes), read into [`Runs`] for
//! the command and for Python alike.

use std::path::Path;

use super::{MixError, Runs};

fn invalid(message: String) -> MixError {
    MixError::Invalid(message)
}

/// The runs of a runs CSV: components, weights, losses and, where it has a `tokens` column,
/// each run's tokens (the `run`, `recipe` and `plan_id` columns are left out; every other
/// column but `loss` and `tokens` is a component's weight). Errors name the file and line.
pub fn read_runs(path: &Path) -> Result<Runs, MixError> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| invalid(format!("reading {shown}: {e}")))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| invalid(format!("{shown} is empty")))?
        .split(',')
        .map(str::trim)
        .collect();
    let loss_at = header
        .iter()
        .position(|h| *h == "loss")
        .ok_or_else(|| invalid(format!("{shown} has no loss column")))?;
    let tokens_at = header.iter().position(|h| *h == "tokens");
    let weight_cols: Vec<usize> = (0..header.len())
        .filter(|&i| i != loss_at && !matches!(header[i], "run" | "recipe" | "plan_id" | "tokens"))
        .collect();
    let mut runs = Runs {
        components: weight_cols.iter().map(|&i| header[i].to_string()).collect(),
        ..Runs::default()
    };
    for (n, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let row = n + 2;
        let number = |i: usize| -> Result<f64, MixError> {
            let cell = cells.get(i).copied().unwrap_or("");
            cell.parse().map_err(|_| {
                invalid(format!(
                    "{shown} line {row}: {} is {cell:?}, not a number{}",
                    header[i],
                    if i == loss_at && cell.is_empty() {
                        " (train this run and fill in its loss)"
                    } else {
                        ""
                    }
                ))
            })
        };
        runs.weights.push(
            weight_cols
                .iter()
                .map(|&i| number(i))
                .collect::<Result<Vec<_>, _>>()?,
        );
        runs.losses.push(number(loss_at)?);
        if let Some(at) = tokens_at {
            runs.tokens.push(number(at)?);
        }
    }
    Ok(runs)
}

/// Adds what design.json says of `runs`: each component's attributes (CH, RA, SIM), and the
/// tokens of a single-budget design where the runs file has no tokens column.
///
/// An attribute the lake has for no component (never curated, no test set compared) is left
/// out of the law (zero for all); one it has for only some components is refused, naming them;
/// a design with none of the three is refused.
pub fn read_design(path: &Path, runs: &mut Runs) -> Result<(), MixError> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| invalid(format!("reading {shown}: {e}")))?;
    let manifest: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        invalid(format!(
            "{shown} is not a design.json of `tokenlake mix design`: {e}"
        ))
    })?;
    // A runs file without a tokens column (written by hand, or by an earlier version) takes a
    // single budget from the manifest.
    let single = match &manifest["tokens"] {
        serde_json::Value::Array(budgets) if budgets.len() == 1 => budgets[0].as_f64(),
        other => other.as_f64(),
    };
    if let (true, Some(t)) = (runs.tokens.is_empty(), single) {
        runs.tokens = vec![t; runs.weights.len()];
    }
    let components = manifest["components"]
        .as_array()
        .ok_or_else(|| invalid(format!("{shown} lists no components")))?;
    // attrs[a][j]: attribute a of component j, None where the lake had no value.
    let mut attrs = vec![Vec::new(); 3];
    for name in &runs.components {
        let c = components
            .iter()
            .find(|c| c["name"].as_str() == Some(name.as_str()))
            .ok_or_else(|| invalid(format!("{shown} has no component {name:?}")))?;
        for (a, key) in ["ch", "ra", "sim"].iter().enumerate() {
            attrs[a].push(c[*key].as_f64());
        }
    }
    for (a, key) in ["CH", "RA", "SIM"].iter().enumerate() {
        let missing: Vec<&str> = runs
            .components
            .iter()
            .zip(&attrs[a])
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| n.as_str())
            .collect();
        if !missing.is_empty() && missing.len() < runs.components.len() {
            return Err(invalid(format!(
                "{shown}: {key} is unknown for {} (no document of theirs has it): label them, \
                 or fit another law",
                missing.join(", ")
            )));
        }
    }
    if !attrs.iter().any(|a| a.iter().all(Option::is_some)) {
        return Err(invalid(format!(
            "{shown}: the lake has none of Ziya2's attributes (CH, RA, SIM) for these \
             components: run `tokenlake curate` or `tokenlake similarity` first, or fit another \
             law"
        )));
    }
    runs.attributes = Some(
        (0..runs.components.len())
            .map(|j| std::array::from_fn(|a| attrs[a][j].unwrap_or(0.0)))
            .collect(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_design_files_are_read_with_errors_that_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("runs.csv");
        std::fs::write(
            &csv,
            "run,recipe,plan_id,tokens,a,b,loss\n1,r1,x,100,0.25,0.75,3.5\n\n2,r2,y,300,0.5,0.5,3.25\n",
        )
        .unwrap();
        let mut runs = read_runs(&csv).unwrap();
        assert_eq!(runs.components, ["a", "b"]);
        assert_eq!(runs.weights, [vec![0.25, 0.75], vec![0.5, 0.5]]);
        assert_eq!(
            (runs.losses, runs.tokens.clone()),
            (vec![3.5, 3.25], vec![100.0, 300.0])
        );
        let design = dir.path().join("design.json");
        std::fs::write(
            &design,
            r#"{"tokens": [100], "components": [
                {"name": "b", "ch": null, "ra": 0.5, "sim": null},
                {"name": "a", "ch": null, "ra": 0.25, "sim": null}]}"#,
        )
        .unwrap();
        runs = read_runs(&csv).unwrap();
        read_design(&design, &mut runs).unwrap();
        assert_eq!(
            runs.attributes,
            Some(vec![[0.0, 0.25, 0.0], [0.0, 0.5, 0.0]])
        );
        // RA for only one component: refused, naming the other.
        std::fs::write(
            &design,
            r#"{"components": [{"name": "a", "ra": 0.25}, {"name": "b", "ra": null}]}"#,
        )
        .unwrap();
        let e = read_design(&design, &mut runs).unwrap_err().to_string();
        assert!(e.contains("RA is unknown for b"), "{e}");
        std::fs::write(&csv, "a,b,loss\n0.5,0.5,\n").unwrap();
        let e = read_runs(&csv).unwrap_err().to_string();
        assert!(
            e.contains("line 2: loss is \"\"") && e.contains("fill in its loss"),
            "{e}"
        );
    }
}
