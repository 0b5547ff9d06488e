//! The Catalog service: the read side of `tokenlake versions`, `tag list`, `describe` and
//! `diff`, over the configured lakes.

use std::sync::Arc;

use tokenlake_lake::{Lake, VersionSpec};
use tokenlake_schemas::proto::{
    DescribeReply, DescribeRequest, DiffReply, DiffRequest, LakeEntry, LakeRequest, ListLakesReply,
    ListLakesRequest, TagEntry, TagsReply, VersionEntry, VersionsReply, catalog_server,
};
use tonic::{Request, Response, Status};

use crate::error::{internal, invalid, service_status};
use crate::state::{ServerState, version_spec};

pub struct CatalogService {
    state: Arc<ServerState>,
}

impl CatalogService {
    pub fn new(state: Arc<ServerState>) -> Self {
        CatalogService { state }
    }
}

fn json(value: &impl serde::Serialize) -> Result<String, Status> {
    serde_json::to_string(value).map_err(|e| internal(format!("encoding the reply: {e}")))
}

#[tonic::async_trait]
impl catalog_server::Catalog for CatalogService {
    async fn list_lakes(
        &self,
        _: Request<ListLakesRequest>,
    ) -> Result<Response<ListLakesReply>, Status> {
        let mut lakes = Vec::new();
        for (name, location) in self.state.lake_names() {
            // A configured lake that nothing was ingested into yet is listed at version 0.
            let latest = Lake::open_if_exists(location)
                .await
                .map_err(service_status)?
                .map_or(0, |lake| lake.latest_version());
            lakes.push(LakeEntry {
                name: name.clone(),
                latest_version: latest,
            });
        }
        Ok(Response::new(ListLakesReply { lakes }))
    }

    async fn versions(
        &self,
        request: Request<LakeRequest>,
    ) -> Result<Response<VersionsReply>, Status> {
        let lake = self.state.open_lake(&request.get_ref().lake).await?;
        let versions = lake.versions().await.map_err(service_status)?;
        Ok(Response::new(VersionsReply {
            versions: versions
                .into_iter()
                .map(|v| VersionEntry {
                    version: v.version,
                    created: v.committed_at,
                    rows: v.rows,
                    tags: v.tags,
                    operation: v
                        .properties
                        .get("tokenlake.operation")
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn tags(&self, request: Request<LakeRequest>) -> Result<Response<TagsReply>, Status> {
        let lake = self.state.open_lake(&request.get_ref().lake).await?;
        let tags = lake.tags().await.map_err(service_status)?;
        Ok(Response::new(TagsReply {
            tags: tags
                .into_iter()
                .map(|t| TagEntry {
                    name: t.name,
                    version: t.version,
                })
                .collect(),
        }))
    }

    async fn describe(
        &self,
        request: Request<DescribeRequest>,
    ) -> Result<Response<DescribeReply>, Status> {
        let req = request.into_inner();
        let lake = self.state.open_lake(&req.lake).await?;
        let spec = version_spec(&req.version, VersionSpec::Latest)?;
        let limits = &self.state.config.limits;
        let description = self
            .state
            .queries
            .run(limits, "describe", async move {
                lake.describe(&spec).await.map_err(service_status)
            })
            .await?;
        Ok(Response::new(DescribeReply {
            json: json(&description)?,
        }))
    }

    async fn diff(&self, request: Request<DiffRequest>) -> Result<Response<DiffReply>, Status> {
        let req = request.into_inner();
        if req.from.is_empty() || req.to.is_empty() {
            return Err(invalid(
                "diff needs both `from` and `to` (a version number or a tag)",
            ));
        }
        let lake = self.state.open_lake(&req.lake).await?;
        let from = version_spec(&req.from, VersionSpec::Latest)?;
        let to = version_spec(&req.to, VersionSpec::Latest)?;
        let limits = &self.state.config.limits;
        let diff = self
            .state
            .queries
            .run(limits, "diff", async move {
                lake.diff(&from, &to).await.map_err(service_status)
            })
            .await?;
        Ok(Response::new(DiffReply { json: json(&diff)? }))
    }
}
