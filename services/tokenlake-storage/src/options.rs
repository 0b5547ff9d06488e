//! Storage options: endpoint, region, credentials, plain HTTP and path-style for S3, plus the
//! retry bounds. They come from config files and `--storage-option k=v`; what is not given
//! comes from the standard AWS environment and credential chain. Secrets are never printed.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use object_store::aws::AmazonS3ConfigKey;

use crate::{Result, StorageError};

/// Options by key, as object_store and Lance spell them (`aws_endpoint`, `aws_region`, …).
/// Friendly aliases (`endpoint`, `region`, `path_style`, …) are rewritten on insert.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions {
    map: BTreeMap<String, String>,
}

/// Keys Lance reads itself (retry bounds, block sizes) that object_store does not know.
const LANCE_KEYS: &[&str] = &[
    "client_max_retries",
    "client_retry_timeout",
    "download_retry_count",
    "allow_http",
    "timeout",
    "connect_timeout",
    "pool_idle_timeout",
    "allow_invalid_certificates",
    "proxy_url",
];

impl StorageOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `KEY=VALUE` strings (the `--storage-option` flag), later ones winning.
    pub fn from_pairs<S: AsRef<str>>(pairs: &[S]) -> Result<Self> {
        let mut options = Self::new();
        for pair in pairs {
            let pair = pair.as_ref();
            let (key, value) = pair.split_once('=').ok_or_else(|| StorageError::Option {
                key: pair.to_string(),
                reason: "expected KEY=VALUE".into(),
            })?;
            options.insert(key.trim(), value.trim())?;
        }
        Ok(options)
    }

    /// Adds one option; an unknown key is an error that lists the usual ones.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<()> {
        let key = key.to_ascii_lowercase();
        let (key, value) = match key.as_str() {
            // `path_style = true` reads better than `virtual_hosted_style_request = false`.
            "path_style" | "aws_path_style" | "force_path_style" => {
                let on = parse_bool(&key, value)?;
                (
                    "aws_virtual_hosted_style_request".to_string(),
                    (!on).to_string(),
                )
            }
            "allow_http" | "aws_allow_http" => {
                parse_bool(&key, value)?;
                ("allow_http".to_string(), value.to_ascii_lowercase())
            }
            _ => match AmazonS3ConfigKey::from_str(&key) {
                Ok(k) => (k.as_ref().to_string(), value.to_string()),
                Err(_) if LANCE_KEYS.contains(&key.as_str()) => (key, value.to_string()),
                Err(_) => {
                    return Err(StorageError::Option {
                        key,
                        reason: "not a storage option; the usual ones are endpoint, region, \
                                 access_key_id, secret_access_key, session_token, allow_http, \
                                 path_style, client_max_retries and client_retry_timeout"
                            .into(),
                    });
                }
            },
        };
        self.map.insert(key, value);
        Ok(())
    }

    /// `self` with `other`'s options on top.
    pub fn merged(&self, other: &StorageOptions) -> StorageOptions {
        let mut map = self.map.clone();
        map.extend(other.map.iter().map(|(k, v)| (k.clone(), v.clone())));
        StorageOptions { map }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// What Lance takes.
    pub fn to_map(&self) -> std::collections::HashMap<String, String> {
        self.map.clone().into_iter().collect()
    }

    pub fn allow_http(&self) -> bool {
        self.get("allow_http").is_some_and(|v| v == "true")
            || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn path_style(&self) -> bool {
        self.get("aws_virtual_hosted_style_request") == Some("false")
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(StorageError::Option {
            key: key.to_string(),
            reason: format!("{value:?} is not true or false"),
        }),
    }
}

/// Whether a key holds a secret, whose value must never reach a log or a message.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["secret", "token", "password", "credential"]
        .iter()
        .any(|s| key.contains(s))
}

impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.map {
            if is_secret(k) {
                map.entry(k, &"<redacted>");
            } else {
                map.entry(k, v);
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_normalised_and_unknown_keys_refused() {
        let o = StorageOptions::from_pairs(&[
            "endpoint=http://127.0.0.1:9000",
            "region=eu-west-1",
            "path_style=true",
            "allow_http=true",
            "client_max_retries=3",
        ])
        .unwrap();
        assert_eq!(o.get("aws_endpoint"), Some("http://127.0.0.1:9000"));
        assert_eq!(o.get("aws_region"), Some("eu-west-1"));
        assert!(o.path_style());
        assert!(o.allow_http());
        assert_eq!(o.get("client_max_retries"), Some("3"));

        let err = StorageOptions::from_pairs(&["endpiont=x"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("endpiont") && err.contains("endpoint, region"),
            "{err}"
        );
        let err = StorageOptions::from_pairs(&["path_style=maybe"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("maybe"), "{err}");
        assert!(StorageOptions::from_pairs(&["no-equals-sign"]).is_err());
    }

    #[test]
    fn secrets_are_never_printed() {
        let o = StorageOptions::from_pairs(&[
            "access_key_id=AKIAEXAMPLE",
            "secret_access_key=very-secret-value",
            "session_token=also-secret",
        ])
        .unwrap();
        let shown = format!("{o:?}");
        assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("also-secret"), "{shown}");
    }

    #[test]
    fn later_options_win() {
        let file = StorageOptions::from_pairs(&["region=a", "endpoint=http://x"]).unwrap();
        let flags = StorageOptions::from_pairs(&["region=b"]).unwrap();
        let merged = file.merged(&flags);
        assert_eq!(merged.get("aws_region"), Some("b"));
        assert_eq!(merged.get("aws_endpoint"), Some("http://x"));
    }
}
