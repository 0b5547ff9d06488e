//! The repository's map matches the repository: every workspace member has its row in
//! ARCHITECTURE.md, the design documents it links exist, no production crate reads files from
//! `tests/`, and no crate's modules use each other in a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace members' folders, as the root Cargo.toml lists them.
fn members() -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let list = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("the workspace lists its members");
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

fn package_name(folder: &str) -> String {
    let manifest = std::fs::read_to_string(root().join(folder).join("Cargo.toml")).unwrap();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = "))
        .map(|n| n.trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{folder}/Cargo.toml has no package name"))
}

#[test]
fn architecture_has_a_row_for_every_workspace_member() {
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let members = members();
    assert!(members.len() >= 12, "{members:?}");
    for folder in members {
        let row = format!("| `{}` (`{}", package_name(&folder), folder);
        assert!(
            architecture.contains(&row),
            "ARCHITECTURE.md has no row starting {row:?}: say what the crate owns and what it \
             must not know"
        );
    }
}

#[test]
fn the_design_documents_linked_from_the_readme_and_architecture_exist() {
    for doc in ["README.md", "ARCHITECTURE.md", "docs/README.md"] {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        let base = root().join(doc).parent().unwrap().to_path_buf();
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap();
            if target.starts_with("http") || target.starts_with('#') {
                continue;
            }
            let path = base.join(target.split('#').next().unwrap());
            assert!(path.exists(), "{doc} links {target}, which does not exist");
        }
        assert!(
            !text.contains("DESIGN.md"),
            "{doc} cites a DESIGN.md the repository lacks"
        );
    }
}

#[test]
fn no_production_crate_reads_from_tests() {
    for folder in members() {
        let src = root().join(&folder).join("src");
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for line in text.lines().filter(|l| l.contains("include_")) {
                        assert!(
                            !line.contains("tests/"),
                            "{} includes a file from tests/: {line}",
                            path.display()
                        );
                    }
                }
            }
        }
    }
}

/// The identifiers a `crate::…` path names first: `crate::a::b` gives `a`, `crate::{a, b::c}`
/// gives `a` and `b`.
fn crate_paths(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| ident(p.trim())));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// Names the crate root re-exports (`pub use module::{A, B};`, `pub use module::A;`), by the
/// module that defines them, so `use crate::A` counts as a use of that module.
fn reexports(root: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (at, _) in root.match_indices("pub use ") {
        let rest = &root[at + "pub use ".len()..];
        let statement = &rest[..rest.find(';').unwrap_or(rest.len())];
        let Some((module, items)) = statement.split_once("::") else {
            continue;
        };
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = item
                .trim()
                .rsplit("::")
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            if !name.is_empty() {
                out.insert(name, module.trim().to_string());
            }
        }
    }
    out
}

#[test]
fn no_crate_has_a_module_cycle() {
    for folder in members() {
        let src = root().join(&folder).join("src");
        let root_file = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .find(|p| p.exists())
            .unwrap();
        let reexported = reexports(&std::fs::read_to_string(&root_file).unwrap());
        // Top-level module → the top-level modules its files name.
        let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut files = vec![src.clone()];
        let mut sources = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "rs") && path != root_file {
                let relative = path.strip_prefix(&src).unwrap();
                let first = relative.components().next().unwrap().as_os_str();
                let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
                sources.push((module, path));
            }
        }
        let modules: BTreeSet<String> = sources.iter().map(|(m, _)| m.clone()).collect();
        for (module, path) in &sources {
            let code: String = std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let entry = uses.entry(module.clone()).or_default();
            for name in crate_paths(&code) {
                let target = if modules.contains(&name) {
                    Some(name)
                } else {
                    reexported.get(&name).cloned()
                };
                if let Some(target) = target.filter(|t| t != module) {
                    entry.insert(target);
                }
            }
        }
        // Depth-first search; a module met again while on the path closes a cycle.
        fn visit(
            module: &str,
            uses: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|m| m == module) {
                let mut cycle = path[at..].to_vec();
                cycle.push(module.to_string());
                return Some(cycle);
            }
            if !done.insert(module.to_string()) {
                return None;
            }
            path.push(module.to_string());
            for next in uses.get(module).into_iter().flatten() {
                if let Some(cycle) = visit(next, uses, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        for module in uses.keys() {
            if let Some(cycle) = visit(module, &uses, &mut Vec::new(), &mut done) {
                panic!("{folder}: module cycle {}", cycle.join(" → "));
            }
        }
    }
}

#[test]
fn paths_the_docs_name_exist() {
    for doc in [
        "README.md",
        "ARCHITECTURE.md",
        "docs/design.md",
        "deploy/README.md",
    ] {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        for quoted in text.split('`').skip(1).step_by(2) {
            let top = [
                "services/",
                "client/",
                "schemas/",
                "ring/",
                "tests/",
                "deploy/",
                "docs/",
            ];
            if !top.iter().any(|t| quoted.starts_with(t))
                || quoted.contains(|c: char| c.is_whitespace() || "*<>{}$".contains(c))
            {
                continue;
            }
            assert!(
                root().join(quoted).exists(),
                "{doc} names `{quoted}`, which does not exist"
            );
        }
    }
}
