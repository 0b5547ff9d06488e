//! Opening a lake, its versions and tags, and writing documents in one step ([`Lake::append`];
//! an ingest writes its fragments uncommitted and publishes them with `Lake::commit_ingest`, which
//! is safe beside concurrent ingests).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{RecordBatch, RecordBatchReader};
use futures::TryStreamExt;
use lance::Dataset;
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::{WriteMode, WriteParams};
use serde::Serialize;
use tokenlake_schemas::{DocumentsSchema, LakeSchemaInfo, columns};

use crate::error::TokenizerMismatch;
use tokenlake_storage::StorageUri;

use crate::{DOCUMENTS_TABLE, LakeError, LakeLocation, Result, VersionSpec};

/// Key/value provenance recorded with a commit (Lance transaction properties), shown by
/// `tokenlake versions`.
pub type CommitProperties = BTreeMap<String, String>;

/// One committed version of the documents table.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub version: u64,
    /// RFC 3339, UTC.
    pub committed_at: String,
    pub rows: u64,
    pub tags: Vec<String>,
    /// What the commit recorded about itself (ingest id, source, counts); empty for commits
    /// made by other tools.
    pub properties: CommitProperties,
}

#[derive(Debug, Clone, Serialize)]
pub struct TagInfo {
    pub name: String,
    pub version: u64,
    /// RFC 3339, UTC, when the storage recorded it.
    pub created_at: Option<String>,
}

/// An existing lake, opened at its latest version. Cloning is cheap (the dataset handle is shared).
#[derive(Clone)]
pub struct Lake {
    pub(crate) location: LakeLocation,
    pub(crate) latest: Dataset,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("location", &self.location.to_string())
            .field("latest", &self.latest_version())
            .finish()
    }
}

impl Lake {
    /// Opens the lake at `location`; an error says so when there is none.
    pub async fn open(location: &LakeLocation) -> Result<Lake> {
        Self::open_if_exists(location)
            .await?
            .ok_or_else(|| LakeError::LakeNotFound {
                lake: location.to_string(),
            })
    }

    /// Opens the lake at `location`, or returns `None` when nothing was ever committed there.
    pub async fn open_if_exists(location: &LakeLocation) -> Result<Option<Lake>> {
        // A directory without committed manifests (a first ingest that was interrupted) is
        // still "no lake": Lance only creates `_versions` when it commits.
        if let Some(root) = location.local_root()
            && !root.join(DOCUMENTS_TABLE).join("_versions").is_dir()
        {
            return Ok(None);
        }
        let opened = DatasetBuilder::from_uri(location.documents_uri())
            .with_store_params(location.lance_params())
            .load()
            .await;
        let latest = match opened {
            Ok(dataset) => dataset,
            Err(lance::Error::DatasetNotFound { .. } | lance::Error::NotFound { .. }) => {
                return Ok(None);
            }
            Err(source) => {
                return Err(LakeError::Lance {
                    context: format!("opening lake {location}"),
                    source,
                });
            }
        };
        let lake = Lake {
            location: location.clone(),
            latest,
        };
        lake.schema_info()?;
        Ok(Some(lake))
    }

    pub fn location(&self) -> &LakeLocation {
        &self.location
    }

    pub fn latest_version(&self) -> u64 {
        self.latest.version_id()
    }

    /// What the lake's schema says about its tokens.
    pub fn schema_info(&self) -> Result<LakeSchemaInfo> {
        let schema = arrow_schema::Schema::from(self.latest.schema());
        DocumentsSchema::check(&schema).map_err(|source| LakeError::Schema {
            lake: self.location.to_string(),
            source,
        })
    }

    /// Refuses a tokenizer other than the one the lake was built with: one lake never mixes
    /// token ids of two vocabularies.
    pub fn check_tokenizer(&self, given: &LakeSchemaInfo) -> Result<()> {
        let have = self.schema_info()?;
        if have.tokenizer_sha256 != given.tokenizer_sha256 || have.token_width != given.token_width
        {
            return Err(LakeError::TokenizerMismatch(Box::new(TokenizerMismatch {
                lake: self.location.to_string(),
                lake_sha: have.tokenizer_sha256.clone(),
                lake_width: have.token_width.to_string(),
                given_sha: given.tokenizer_sha256.clone(),
                given_width: given.token_width.to_string(),
                saved: self
                    .location
                    .tokenizer_uri(&have.tokenizer_sha256)
                    .to_string(),
            })));
        }
        Ok(())
    }

    /// Resolves a version spec to a version number that exists.
    pub async fn resolve(&self, spec: &VersionSpec) -> Result<u64> {
        match spec {
            VersionSpec::Latest => Ok(self.latest_version()),
            VersionSpec::Number(n) => {
                if *n == 0 || *n > self.latest_version() {
                    return Err(self.version_not_found(*n));
                }
                Ok(*n)
            }
            VersionSpec::Tag(tag) => {
                let tags = self.tag_map().await?;
                tags.get(tag)
                    .copied()
                    .ok_or_else(|| LakeError::TagNotFound {
                        lake: self.location.to_string(),
                        tag: tag.clone(),
                    })
            }
        }
    }

    /// The documents table as of `spec`.
    pub async fn checkout(&self, spec: &VersionSpec) -> Result<Dataset> {
        let version = self.resolve(spec).await?;
        if version == self.latest_version() {
            return Ok(self.latest.clone());
        }
        self.latest
            .checkout_version(version)
            .await
            .map_err(|e| match e {
                lance::Error::DatasetNotFound { .. } | lance::Error::NotFound { .. } => {
                    self.version_not_found(version)
                }
                source => LakeError::Lance {
                    context: format!("checking out version {version} of lake {}", self.location),
                    source,
                },
            })
    }

    fn version_not_found(&self, version: u64) -> LakeError {
        LakeError::VersionNotFound {
            lake: self.location.to_string(),
            version,
            latest: self.latest_version(),
        }
    }

    /// Every committed version, oldest first, with its tags and commit properties.
    pub async fn versions(&self) -> Result<Vec<VersionInfo>> {
        let context = format!("listing versions of lake {}", self.location);
        let versions = self
            .latest
            .versions()
            .await
            .map_err(LakeError::lance(context.clone()))?;
        let mut tags_by_version: HashMap<u64, Vec<String>> = HashMap::new();
        for tag in self.tags().await? {
            tags_by_version
                .entry(tag.version)
                .or_default()
                .push(tag.name);
        }
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            let properties = self
                .latest
                .read_transaction_by_version(v.version)
                .await
                .map_err(LakeError::lance(context.clone()))?
                .and_then(|t| t.transaction_properties)
                .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            out.push(VersionInfo {
                version: v.version,
                committed_at: v.timestamp.to_rfc3339(),
                rows: v
                    .metadata
                    .get("total_rows")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0),
                tags: tags_by_version.remove(&v.version).unwrap_or_default(),
                properties,
            });
        }
        Ok(out)
    }

    async fn tag_map(&self) -> Result<HashMap<String, u64>> {
        Ok(self
            .tags()
            .await?
            .into_iter()
            .map(|t| (t.name, t.version))
            .collect())
    }

    /// Tags sorted by version, then name.
    pub async fn tags(&self) -> Result<Vec<TagInfo>> {
        let tags = self
            .latest
            .tags()
            .list()
            .await
            .map_err(LakeError::lance(format!(
                "listing tags of lake {}",
                self.location
            )))?;
        let mut out: Vec<TagInfo> = tags
            .into_iter()
            .map(|(name, contents)| TagInfo {
                name,
                version: contents.version,
                created_at: contents.created_at.map(|t| t.to_rfc3339()),
            })
            .collect();
        out.sort_by(|a, b| (a.version, &a.name).cmp(&(b.version, &b.name)));
        Ok(out)
    }

    /// Names version `spec` with `tag`; returns the version tagged.
    pub async fn create_tag(&self, tag: &str, spec: &VersionSpec) -> Result<u64> {
        validate_tag_name(tag)?;
        let version = self.resolve(spec).await?;
        if let Some(existing) = self.tag_map().await?.get(tag) {
            return Err(LakeError::TagExists {
                lake: self.location.to_string(),
                tag: tag.to_string(),
                version: *existing,
            });
        }
        self.latest
            .tags()
            .create(tag, version)
            .await
            .map_err(LakeError::lance(format!(
                "creating tag {tag:?} on version {version} of lake {}",
                self.location
            )))?;
        Ok(version)
    }

    /// Deletes `tag`; the version it named stays. Returns that version.
    pub async fn delete_tag(&self, tag: &str) -> Result<u64> {
        let version = self.resolve(&VersionSpec::Tag(tag.to_string())).await?;
        self.latest
            .tags()
            .delete(tag)
            .await
            .map_err(LakeError::lance(format!(
                "deleting tag {tag:?} of lake {}",
                self.location
            )))?;
        Ok(version)
    }

    /// Every `doc_id` of the latest version, sorted, for skipping documents already stored.
    /// Costs 8 bytes per document.
    pub async fn doc_ids(&self) -> Result<Vec<u64>> {
        let context = format!("reading doc ids of lake {}", self.location);
        let mut ids = Vec::with_capacity(self.latest.count_rows(None).await.unwrap_or(0));
        scan_columns(&self.latest, &[columns::DOC_ID], &context, |batch| {
            ids.extend(batch.column(0).as_primitive::<UInt64Type>().values().iter());
        })
        .await?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// Reads `columns` of every row of the latest version in row order (which is ingest
    /// order), one Arrow batch at a time; `each` may stop the scan with an error.
    pub async fn scan_latest(
        &self,
        columns: &[&str],
        each: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let context = format!("reading lake {}", self.location);
        let projection: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        scan_where(&self.latest, &projection, None, &context, each).await
    }

    /// Reads `columns` of the rows of `dataset` (a version from [`Lake::checkout`]) where
    /// `filter` (SQL) holds, in row order, one Arrow batch at a time.
    pub async fn scan_version(
        &self,
        dataset: &Dataset,
        columns: &[&str],
        filter: Option<&str>,
        each: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let context = format!(
            "reading version {} of lake {}",
            dataset.version().version,
            self.location
        );
        let projection: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        scan_where(dataset, &projection, filter, &context, each).await
    }

    /// Like [`Lake::scan_version`], as a stream of batches for callers that write as they
    /// read (exports), with the count of matching rows first for progress.
    pub async fn scan_version_stream(
        &self,
        dataset: &Dataset,
        columns: &[&str],
        filter: Option<&str>,
    ) -> Result<(
        u64,
        futures::stream::BoxStream<'static, Result<RecordBatch>>,
    )> {
        let context = format!(
            "reading version {} of lake {}",
            dataset.version().version,
            self.location
        );
        let mut scan = dataset.scan();
        scan.project(columns)
            .map_err(LakeError::lance(context.clone()))?;
        if let Some(f) = filter {
            scan.filter(f).map_err(LakeError::lance(context.clone()))?;
        }
        let rows = scan
            .count_rows()
            .await
            .map_err(LakeError::lance(context.clone()))?;
        let stream = scan
            .try_into_stream()
            .await
            .map_err(LakeError::lance(context.clone()))?
            .map_err(move |e| LakeError::Lance {
                context: context.clone(),
                source: e,
            });
        Ok((rows, Box::pin(stream)))
    }

    /// The latest version's Arrow schema (label columns included).
    pub fn arrow_schema(&self) -> arrow_schema::Schema {
        arrow_schema::Schema::from(self.latest.schema())
    }

    /// Whether the latest version has a column of this name.
    pub fn has_column(&self, name: &str) -> bool {
        self.latest.schema().field(name).is_some()
    }

    /// Rows of the latest version.
    pub async fn latest_rows(&self) -> Result<u64> {
        self.latest
            .count_rows(None)
            .await
            .map(|n| n as u64)
            .map_err(LakeError::lance(format!(
                "counting rows of lake {}",
                self.location
            )))
    }

    /// Streams `batches` into the lake at `location` and commits them as exactly one new
    /// version, creating the lake on the first call. Nothing is committed when the reader fails
    /// or the process dies first: Lance writes data files, then publishes the version by one
    /// atomic manifest commit, so readers keep seeing the previous version.
    ///
    /// Returns the new version number.
    pub async fn append(
        location: &LakeLocation,
        batches: impl RecordBatchReader + Send + 'static,
        properties: CommitProperties,
    ) -> Result<u64> {
        let exists = Self::open_if_exists(location).await?.is_some();
        if let (false, Some(root)) = (exists, location.local_root()) {
            std::fs::create_dir_all(root)
                .map_err(LakeError::io(format!("creating lake directory {location}")))?;
        }
        // On object stores Lance publishes a version with a conditional PUT (If-None-Match) of
        // its manifest, so of two concurrent writers one wins and the other rebases its append
        // onto the new version and commits the next one: nothing is overwritten or lost.
        let params = WriteParams {
            store_params: Some(location.lance_params()),
            mode: if exists {
                WriteMode::Append
            } else {
                WriteMode::Create
            },
            transaction_properties: Some(Arc::new(properties.into_iter().collect())),
            ..WriteParams::default()
        };
        let dataset = Dataset::write(batches, location.documents_uri().as_str(), Some(params))
            .await
            .map_err(LakeError::lance(format!("writing to lake {location}")))?;
        tracing::info!(lake = %location, version = dataset.version_id(), "committed");
        Ok(dataset.version_id())
    }

    /// Keeps a content-addressed copy of the tokenizer inside the lake, written in one request
    /// (a reader never sees half a file); writing it again is harmless. Returns where it is.
    pub async fn save_tokenizer(
        location: &LakeLocation,
        sha256: &str,
        json: &[u8],
    ) -> Result<StorageUri> {
        let uri = location.tokenizer_uri(sha256);
        let storage = location.storage()?;
        if !storage.exists(&uri).await? {
            storage
                .write(&uri, bytes::Bytes::copy_from_slice(json))
                .await?;
        }
        Ok(uri)
    }

    /// The lake's own tokenizer (JSON), as saved by its first ingest.
    pub async fn tokenizer_json(&self) -> Result<bytes::Bytes> {
        let sha = self.schema_info()?.tokenizer_sha256;
        Ok(self
            .location
            .storage()?
            .read(&self.location.tokenizer_uri(&sha))
            .await?)
    }

    /// A local file holding the lake's tokenizer: the saved copy itself for a local lake, a
    /// content-addressed copy in `dir` for a remote one (fetched once).
    pub async fn tokenizer_file(&self, dir: &std::path::Path) -> Result<PathBuf> {
        let sha = self.schema_info()?.tokenizer_sha256;
        if let Some(path) = self.location.tokenizer_uri(&sha).local_path() {
            return Ok(path.to_path_buf());
        }
        let path = dir.join(format!("{sha}.json"));
        if !path.is_file() {
            let json = self.tokenizer_json().await?;
            std::fs::create_dir_all(dir)
                .map_err(LakeError::io(format!("creating {}", dir.display())))?;
            let tmp = dir.join(format!(".{sha}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, &json)
                .map_err(LakeError::io(format!("writing {}", tmp.display())))?;
            std::fs::rename(&tmp, &path)
                .map_err(LakeError::io(format!("writing {}", path.display())))?;
        }
        Ok(path)
    }
}

/// Tag names must be usable as path components (Lance stores one file per tag) and must not
/// look like version numbers.
fn validate_tag_name(tag: &str) -> Result<()> {
    let invalid = |reason: &str| LakeError::InvalidTagName {
        tag: tag.to_string(),
        reason: reason.to_string(),
    };
    if tag.is_empty() {
        return Err(invalid("it is empty"));
    }
    if tag.chars().all(|c| c.is_ascii_digit()) || tag == "latest" {
        return Err(invalid("it would read as a version number"));
    }
    if let Some(c) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(invalid(&format!(
            "{c:?} is not allowed; use letters, digits, '-', '_' and '.'"
        )));
    }
    if tag.starts_with('.') || tag.ends_with('.') || tag.contains("..") {
        return Err(invalid("it may not start or end with '.' or hold '..'"));
    }
    Ok(())
}

/// Collects a scan of `columns` at `dataset` batch by batch.
pub(crate) async fn scan_columns(
    dataset: &Dataset,
    columns: &[&str],
    context: &str,
    mut each: impl FnMut(&RecordBatch),
) -> Result<()> {
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    scan_where(dataset, &columns, None, context, |batch| {
        each(batch);
        Ok(())
    })
    .await
}

/// Scans `projection` at `dataset` where `filter` (SQL) holds, batch by batch.
pub(crate) async fn scan_where(
    dataset: &Dataset,
    projection: &[String],
    filter: Option<&str>,
    context: &str,
    mut each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut scan = dataset.scan();
    scan.project(projection)
        .map_err(LakeError::lance(context))?;
    if let Some(f) = filter {
        scan.filter(f).map_err(LakeError::lance(context))?;
    }
    let mut stream = scan
        .try_into_stream()
        .await
        .map_err(LakeError::lance(context))?;
    while let Some(batch) = stream.try_next().await.map_err(LakeError::lance(context))? {
        each(&batch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_checked() {
        assert!(validate_tag_name("stage1-v3").is_ok());
        assert!(validate_tag_name("v1.2_rc").is_ok());
        for bad in ["", "42", "latest", "a/b", "..", "a b", ".hidden"] {
            assert!(validate_tag_name(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
