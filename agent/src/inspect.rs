//! `inspect <url|path>`: the GGUF summary as JSON. For a URL only the header is fetched, with
//! ranged GETs in growing chunks (the same reader the operator uses).

use std::path::Path;

use llamafleet_gguf::{GgufError, GgufHeader, Limits, Summary};
use llamafleet_remote::RemoteError;
use url::Url;

use crate::store::http::Access;
use crate::store::{Source, StoreError};

/// Why inspecting failed.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The blocking read of a local file could not run (panicked or cancelled).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local file's header is not valid GGUF (or the file unreadable).
    #[error("{source_text}: {error}")]
    LocalGguf {
        /// The source.
        source_text: String,
        /// The rule it broke.
        #[source]
        error: GgufError,
    },
    /// Reaching the source failed, or its header is not valid GGUF.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// Reads and summarises a source's header.
pub async fn inspect(
    source: &Source,
    access: Access<'_>,
    limits: &Limits,
) -> Result<Summary, InspectError> {
    let header = match source {
        Source::File(path) => read_path(path, limits).await?,
        Source::Http(url) => read_url(access, url, limits).await?.0,
    };
    Ok(Summary::from_header(&header))
}

async fn read_path(path: &Path, limits: &Limits) -> Result<GgufHeader, InspectError> {
    let (p, l) = (path.to_owned(), limits.clone());
    tokio::task::spawn_blocking(move || llamafleet_gguf::read_file(&p, &l))
        .await
        .map_err(StoreError::from)?
        .map_err(|error| InspectError::LocalGguf {
            source_text: path.display().to_string(),
            error,
        })
}

/// Fetches a remote header; also returns how many bytes were fetched.
pub async fn read_url(
    access: Access<'_>,
    url: &Url,
    limits: &Limits,
) -> Result<(GgufHeader, u64), InspectError> {
    Ok(llamafleet_remote::read_gguf_header(access, url, None, limits).await?)
}
