//! The repository's map matches the repository: every workspace member has its row in
//! ARCHITECTURE.md, the design documents it links exist, and no production crate reads files
//! from `tests/`.

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
