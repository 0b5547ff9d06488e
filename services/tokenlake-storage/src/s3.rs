//! What object_store does not do for us, through the AWS SDK: checking and creating buckets
//! (`tokenlake init`) and presigned URLs for sharing a report or a side file.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;

use crate::{Result, StorageError, StorageOptions, StorageUri};

/// An S3 control-plane client configured from the same options as the data path.
pub struct S3Admin {
    client: aws_sdk_s3::Client,
}

/// What [`S3Admin::ensure_bucket`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketState {
    Existed,
    Created,
}

impl S3Admin {
    /// Options first (endpoint, region, keys, path style, retries), then the AWS environment,
    /// profile and credential chain for what they leave out.
    pub async fn new(options: &StorageOptions) -> Result<S3Admin> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = options.get("aws_endpoint") {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = options.get("aws_region") {
            loader = loader.region(Region::new(region.to_string()));
        }
        if let (Some(id), Some(secret)) = (
            options.get("aws_access_key_id"),
            options.get("aws_secret_access_key"),
        ) {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret,
                options.get("aws_session_token").map(str::to_string),
                None,
                "tokenlake-storage-options",
            ));
        }
        let attempts = options
            .get("client_max_retries")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(10)
            + 1;
        // Standard mode: exponential backoff with full jitter on throttling and transient errors.
        loader = loader.retry_config(RetryConfig::standard().with_max_attempts(attempts));
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        // A custom endpoint (MinIO, s3s, Ceph …) almost never resolves bucket subdomains; use
        // path-style requests there unless told otherwise, as object_store does.
        let virtual_hosted = options.get("aws_virtual_hosted_style_request") == Some("true");
        if shared.endpoint_url().is_some() && !virtual_hosted || options.path_style() {
            config = config.force_path_style(true);
        }
        Ok(S3Admin {
            client: aws_sdk_s3::Client::from_conf(config.build()),
        })
    }

    /// Checks that the bucket of `uri` exists and can be reached, creating it when missing.
    pub async fn ensure_bucket(&self, uri: &StorageUri) -> Result<BucketState> {
        let StorageUri::S3 { bucket, .. } = uri else {
            return Err(not_s3(uri));
        };
        let bucket_uri = format!("s3://{bucket}");
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => return Ok(BucketState::Existed),
            Err(e) => {
                let missing = e.as_service_error().is_some_and(|s| s.is_not_found())
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
                if !missing {
                    return Err(sdk_err("checking bucket", &bucket_uri, e));
                }
            }
        }
        let mut create = self.client.create_bucket().bucket(bucket);
        let region = self.client.config().region().map(|r| r.to_string());
        if let Some(region) = region.filter(|r| r != "us-east-1") {
            use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => Ok(BucketState::Created),
            // Another process created it between the check and the create: fine.
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) =>
            {
                Ok(BucketState::Existed)
            }
            Err(e) => Err(sdk_err("creating bucket", &bucket_uri, e)),
        }
    }

    /// A URL anyone can GET `uri` with until it expires (at most 7 days, S3's limit).
    pub async fn presign_get(&self, uri: &StorageUri, expires_in: Duration) -> Result<String> {
        let StorageUri::S3 { bucket, key } = uri else {
            return Err(not_s3(uri));
        };
        let config = PresigningConfig::expires_in(expires_in).map_err(|e| StorageError::S3 {
            op: "presigning",
            uri: uri.to_string(),
            message: e.to_string(),
        })?;
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| sdk_err("presigning", &uri.to_string(), e))?;
        Ok(request.uri().to_string())
    }
}

fn not_s3(uri: &StorageUri) -> StorageError {
    StorageError::InvalidUri {
        uri: uri.to_string(),
        reason: "this needs an s3:// URI".into(),
    }
}

fn sdk_err<E, R>(op: &'static str, uri: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> StorageError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StorageError::S3 {
        op,
        uri: uri.to_string(),
        message: DisplayErrorContext(&e).to_string(),
    }
}
