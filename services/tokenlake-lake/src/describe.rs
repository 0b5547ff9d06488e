//! `describe`: rows, tokens and characters of one version, in total and by source and language.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::{Array, StringArray};
use serde::Serialize;
use tokenlake_schemas::columns;

use crate::lake::scan_columns;
use crate::{Lake, Result, VersionSpec};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupTotals {
    /// The source or language; `None` for documents whose language is not known yet.
    pub key: Option<String>,
    pub rows: u64,
    pub tokens: u64,
    pub chars: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub lake: String,
    pub version: u64,
    pub tags: Vec<String>,
    pub rows: u64,
    pub tokens: u64,
    pub chars: u64,
    pub token_width: String,
    pub vocab_size: usize,
    pub tokenizer_sha256: String,
    /// Sorted by tokens, largest first.
    pub by_source: Vec<GroupTotals>,
    /// Sorted by tokens, largest first.
    pub by_lang: Vec<GroupTotals>,
    pub columns: Vec<ColumnInfo>,
}

/// Running totals keyed by an optional string, without allocating per row.
#[derive(Default)]
struct Totals {
    known: HashMap<String, GroupTotals>,
    unknown: GroupTotals,
}

impl Totals {
    fn add(&mut self, key: Option<&str>, tokens: u64, chars: u64) {
        let slot = match key {
            None => &mut self.unknown,
            Some(k) => {
                if !self.known.contains_key(k) {
                    self.known.insert(
                        k.to_string(),
                        GroupTotals {
                            key: Some(k.to_string()),
                            ..GroupTotals::default()
                        },
                    );
                }
                self.known.get_mut(k).expect("inserted above")
            }
        };
        slot.rows += 1;
        slot.tokens += tokens;
        slot.chars += chars;
    }

    fn into_sorted(self) -> Vec<GroupTotals> {
        let mut out: Vec<GroupTotals> = self.known.into_values().collect();
        if self.unknown.rows > 0 {
            out.push(self.unknown);
        }
        out.sort_by(|a, b| b.tokens.cmp(&a.tokens).then_with(|| a.key.cmp(&b.key)));
        out
    }
}

impl Lake {
    /// Summarises the version named by `spec` in one scan of four small columns.
    pub async fn describe(&self, spec: &VersionSpec) -> Result<Description> {
        let version = self.resolve(spec).await?;
        let dataset = self.checkout(&VersionSpec::Number(version)).await?;
        let info = self.schema_info()?;
        let (mut by_source, mut by_lang) = (Totals::default(), Totals::default());
        let (mut rows, mut tokens, mut chars) = (0u64, 0u64, 0u64);
        let context = format!("describing version {version} of lake {}", self.location());
        scan_columns(
            &dataset,
            &[
                columns::SOURCE,
                columns::LANG,
                columns::N_TOKENS,
                columns::N_CHARS,
            ],
            &context,
            |batch| {
                let source: &StringArray = batch.column(0).as_string();
                let lang: &StringArray = batch.column(1).as_string();
                let n_tokens = batch.column(2).as_primitive::<UInt32Type>();
                let n_chars = batch.column(3).as_primitive::<UInt32Type>();
                for i in 0..batch.num_rows() {
                    let (t, c) = (u64::from(n_tokens.value(i)), u64::from(n_chars.value(i)));
                    by_source.add(Some(source.value(i)), t, c);
                    by_lang.add(lang.is_valid(i).then(|| lang.value(i)), t, c);
                    rows += 1;
                    tokens += t;
                    chars += c;
                }
            },
        )
        .await?;
        let tags = self
            .tags()
            .await?
            .into_iter()
            .filter(|t| t.version == version)
            .map(|t| t.name)
            .collect();
        let schema = arrow_schema::Schema::from(dataset.schema());
        Ok(Description {
            lake: self.location().to_string(),
            version,
            tags,
            rows,
            tokens,
            chars,
            token_width: info.token_width.to_string(),
            vocab_size: info.vocab_size,
            tokenizer_sha256: info.tokenizer_sha256,
            by_source: by_source.into_sorted(),
            by_lang: by_lang.into_sorted(),
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnInfo {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                    nullable: f.is_nullable(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_group_and_sort_by_tokens() {
        let mut t = Totals::default();
        t.add(Some("en"), 10, 40);
        t.add(Some("zh"), 30, 20);
        t.add(Some("en"), 5, 10);
        t.add(None, 1, 1);
        let sorted = t.into_sorted();
        let keys: Vec<_> = sorted.iter().map(|g| g.key.as_deref()).collect();
        assert_eq!(keys, vec![Some("zh"), Some("en"), None]);
        assert_eq!(sorted[1].rows, 2);
        assert_eq!(sorted[1].tokens, 15);
        assert_eq!(sorted[1].chars, 50);
    }
}
