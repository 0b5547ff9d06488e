//! How a user names one version of a lake: the latest, a number, or a tag.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VersionSpec {
    #[default]
    Latest,
    Number(u64),
    Tag(String),
}

impl VersionSpec {
    /// Builds a spec from the usual `--version N` / `--tag NAME` pair of options.
    pub fn from_options(version: Option<u64>, tag: Option<String>) -> Self {
        match (version, tag) {
            (Some(v), _) => VersionSpec::Number(v),
            (None, Some(t)) => VersionSpec::Tag(t),
            (None, None) => VersionSpec::Latest,
        }
    }
}

/// Parses a positional version argument: digits are a version number, anything else a tag
/// (tag names that are all digits are refused when created, so this is never ambiguous).
impl FromStr for VersionSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty version: give a version number or a tag".into());
        }
        if s == "latest" {
            return Ok(VersionSpec::Latest);
        }
        match s.parse::<u64>() {
            Ok(0) => Err("version numbers start at 1".into()),
            Ok(n) => Ok(VersionSpec::Number(n)),
            Err(_) => Ok(VersionSpec::Tag(s.to_string())),
        }
    }
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSpec::Latest => f.write_str("latest"),
            VersionSpec::Number(n) => write!(f, "version {n}"),
            VersionSpec::Tag(t) => write!(f, "tag {t:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_versions_and_names_are_tags() {
        assert_eq!("3".parse::<VersionSpec>(), Ok(VersionSpec::Number(3)));
        assert_eq!(
            "stage1-v3".parse::<VersionSpec>(),
            Ok(VersionSpec::Tag("stage1-v3".into()))
        );
        assert_eq!("latest".parse::<VersionSpec>(), Ok(VersionSpec::Latest));
        assert!("0".parse::<VersionSpec>().is_err());
        assert!("".parse::<VersionSpec>().is_err());
    }
}
