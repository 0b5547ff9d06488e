//! The Admin service (role `admin`): tags, label import, ingest and curate jobs. Paths in requests
//! are accepted only under the config's `ingest_roots`; labels arrive as bytes.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream as FuturesStream;
use tokenlake_ingest::IngestOptions;
use tokenlake_lake::{Lake, VersionSpec};
use tokenlake_schemas::proto::{
    CurateRequest, IngestRequest, JobRequest, JobStatus, LabelImportReply, LabelImportRequest,
    ListJobsReply, ListJobsRequest, TagReply, TagRequest, admin_server,
};
use tonic::{Code, Request, Response, Status};

use crate::error::{internal, invalid, service_status, status};
use crate::state::ServerState;

pub struct AdminService {
    state: Arc<ServerState>,
}

impl AdminService {
    pub fn new(state: Arc<ServerState>) -> Self {
        AdminService { state }
    }

    /// `path` made absolute, when it lies under an ingest root.
    fn allowed_path(&self, path: &str, what: &str) -> Result<PathBuf, Status> {
        let roots = &self.state.config.ingest_roots;
        if roots.is_empty() {
            return Err(status(
                Code::FailedPrecondition,
                "server-side ingest is off: the server's config names no ingest_roots".into(),
            ));
        }
        let resolved = std::fs::canonicalize(path).map_err(|e| {
            status(
                Code::NotFound,
                format!("{what} {path:?}: {e} (on the server)"),
            )
        })?;
        let allowed = roots
            .iter()
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .any(|root| resolved.starts_with(root));
        if !allowed {
            return Err(status(
                Code::PermissionDenied,
                format!("{what} {path:?} is not under one of the server's ingest_roots"),
            ));
        }
        Ok(resolved)
    }
}

type JobStream = Pin<Box<dyn FuturesStream<Item = Result<JobStatus, Status>> + Send>>;

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn create_tag(&self, request: Request<TagRequest>) -> Result<Response<TagReply>, Status> {
        let req = request.into_inner();
        let lake = self.state.open_lake(&req.lake).await?;
        let spec = VersionSpec::from_options((req.version != 0).then_some(req.version), None);
        let version = lake
            .create_tag(&req.name, &spec)
            .await
            .map_err(service_status)?;
        tracing::info!(lake = %req.lake, tag = %req.name, version, "tag created");
        Ok(Response::new(TagReply { version }))
    }

    async fn delete_tag(&self, request: Request<TagRequest>) -> Result<Response<TagReply>, Status> {
        let req = request.into_inner();
        let lake = self.state.open_lake(&req.lake).await?;
        let version = lake.delete_tag(&req.name).await.map_err(service_status)?;
        tracing::info!(lake = %req.lake, tag = %req.name, version, "tag deleted");
        Ok(Response::new(TagReply { version }))
    }

    async fn import_labels(
        &self,
        request: Request<LabelImportRequest>,
    ) -> Result<Response<LabelImportReply>, Status> {
        let req = request.into_inner();
        let lake = self.state.open_lake(&req.lake).await?;
        if req.file.is_empty() {
            return Err(invalid("the label file is empty"));
        }
        // The reader recognises JSON lines, gzip, zstd and Parquet by content, from a file.
        let labels = tokio::task::spawn_blocking(move || {
            let mut file = tempfile::NamedTempFile::new()
                .map_err(|e| internal(format!("staging the label file: {e}")))?;
            file.write_all(&req.file)
                .map_err(|e| internal(format!("staging the label file: {e}")))?;
            tokenlake_ingest::read_label_file(file.path()).map_err(|e| {
                invalid(
                    e.to_string()
                        .replace(&file.path().display().to_string(), "(label file)"),
                )
            })
        })
        .await
        .map_err(|e| internal(format!("reading the label file: {e}")))??;
        let import = lake
            .add_label_columns(labels)
            .await
            .map_err(service_status)?;
        Ok(Response::new(LabelImportReply {
            json: serde_json::to_string(&import)
                .map_err(|e| internal(format!("encoding the reply: {e}")))?,
        }))
    }

    async fn ingest(&self, request: Request<IngestRequest>) -> Result<Response<JobStatus>, Status> {
        let req = request.into_inner();
        let location = self.state.location(&req.lake)?.clone();
        if req.inputs.is_empty() {
            return Err(invalid("ingest needs at least one input"));
        }
        if req.source.is_empty() {
            return Err(invalid("ingest needs a source name (e.g. web, wiki, code)"));
        }
        let inputs = req
            .inputs
            .iter()
            .map(|p| self.allowed_path(p, "input"))
            .collect::<Result<Vec<_>, _>>()?;
        let tokenizer = if req.tokenizer.is_empty() {
            let lake = Lake::open(&location).await.map_err(|e| match e {
                tokenlake_lake::LakeError::LakeNotFound { .. } => invalid(format!(
                    "lake {:?} is empty: its first ingest needs a tokenizer",
                    req.lake
                )),
                other => service_status(other),
            })?;
            let dir = match &self.state.config.cache_dir {
                Some(dir) => dir.clone(),
                None => tokenlake_plan::default_remote_cache_dir().map_err(service_status)?,
            }
            .join("tokenizers");
            lake.tokenizer_file(&dir).await.map_err(service_status)?
        } else {
            self.allowed_path(&req.tokenizer, "tokenizer")?
        };
        let mut options = IngestOptions::new(location, inputs, &req.source, tokenizer);
        if !req.text_field.is_empty() {
            options.text_field = req.text_field;
        }
        if !req.source_field.is_empty() {
            options.source_field = Some(req.source_field);
        }
        // Check what can be checked before the job starts, so the caller gets the error now.
        for input in &options.inputs {
            tokenlake_ingest::probe_input(input, &options.text_field).map_err(service_status)?;
        }
        let job =
            self.state
                .jobs
                .start_ingest(&req.lake, options, self.state.shutting_down.clone())?;
        Ok(Response::new(job.status()))
    }

    async fn curate(&self, request: Request<CurateRequest>) -> Result<Response<JobStatus>, Status> {
        let name = request.into_inner().lake;
        let location = self.state.location(&name)?.clone();
        let job =
            self.state
                .jobs
                .start_curate(&name, location, self.state.shutting_down.clone())?;
        Ok(Response::new(job.status()))
    }

    type WatchStream = JobStream;

    async fn watch(&self, request: Request<JobRequest>) -> Result<Response<JobStream>, Status> {
        let job = self.state.jobs.get(&request.get_ref().job_id)?;
        let stream = async_stream(job);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn cancel(&self, request: Request<JobRequest>) -> Result<Response<JobStatus>, Status> {
        let job = self.state.jobs.get(&request.get_ref().job_id)?;
        job.cancel();
        Ok(Response::new(job.status()))
    }

    async fn list_jobs(
        &self,
        _: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsReply>, Status> {
        Ok(Response::new(ListJobsReply {
            jobs: self.state.jobs.list().iter().map(|j| j.status()).collect(),
        }))
    }
}

/// The job's status twice a second and at every state change, ending with its final status.
fn async_stream(
    job: Arc<crate::jobs::Job>,
) -> impl FuturesStream<Item = Result<JobStatus, Status>> + Send {
    let changed = job.subscribe();
    futures::stream::unfold(Some((job, changed)), |state| async move {
        let (job, mut changed) = state?;
        if job.is_finished() {
            return Some((Ok(job.status()), None));
        }
        let _ =
            tokio::time::timeout(std::time::Duration::from_millis(500), changed.changed()).await;
        let status = job.status();
        let next = (!job.is_finished()).then_some((job, changed));
        Some((Ok(status), next))
    })
}
