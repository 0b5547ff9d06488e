//! Versions and tags: what a lake holds and how it changed.

use clap::{Args, Subcommand};

use super::VersionArgs;

#[derive(Args, Debug)]
pub struct LakeArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    #[command(subcommand)]
    pub action: TagAction,
}

#[derive(Subcommand, Debug)]
pub enum TagAction {
    /// Names a version (the latest unless --version is given)
    Create {
        /// Letters, digits, '-', '_' and '.'; not all digits
        name: String,
        /// The version to name: a number, or a tag that names it
        #[arg(long, value_name = "N|TAG")]
        version: Option<tokenlake_lake::VersionSpec>,
    },
    /// Lists tags and the versions they name
    List {
        #[arg(long)]
        json: bool,
    },
    /// Deletes a tag; the version it named is kept
    Delete { name: String },
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    #[command(flatten)]
    pub version: VersionArgs,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    /// The older version: a number or a tag
    pub from: String,
    /// The newer version: a number or a tag
    pub to: String,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}
