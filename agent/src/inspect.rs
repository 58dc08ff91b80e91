//! `inspect <url|path>`: the GGUF summary as JSON. For a URL only the header is fetched, with
//! ranged GETs in growing chunks (the same reader the operator uses).

use std::path::Path;

use llamafleet_gguf::{
    GgufError, GgufHeader, INITIAL_READ_BYTES, Limits, Summary, next_read_len, parse,
};
use url::Url;

use crate::store::http::{self, Access};
use crate::store::{Source, StoreError};

/// Why inspecting failed.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Reaching the source failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The header is not valid GGUF.
    #[error("{source_text}: {error}")]
    Gguf {
        /// The source.
        source_text: String,
        /// The rule it broke.
        #[source]
        error: GgufError,
    },
    /// The server did not say how large the file is.
    #[error("{url}: the server announced no size (needed to bound the header)")]
    UnknownSize {
        /// The URL.
        url: String,
    },
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
        .map_err(|error| InspectError::Gguf {
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
    let (mut buf, total) = http::read_range(
        access,
        url,
        0,
        INITIAL_READ_BYTES.min(limits.max_header_bytes),
    )
    .await?;
    let file_size = total.ok_or_else(|| InspectError::UnknownSize {
        url: url.to_string(),
    })?;
    loop {
        match parse(&buf, file_size, limits) {
            Err(GgufError::NeedMoreBytes { have, needed }) => {
                let want = next_read_len(have, needed, file_size, limits);
                let (more, _) = http::read_range(access, url, have, want - have).await?;
                if more.is_empty() {
                    return Err(InspectError::Gguf {
                        source_text: url.to_string(),
                        error: GgufError::Truncated {
                            field: "header".into(),
                            offset: have,
                            needed: needed - have,
                            remaining: 0,
                        },
                    });
                }
                buf.extend_from_slice(&more);
            }
            Err(error) => {
                return Err(InspectError::Gguf {
                    source_text: url.to_string(),
                    error,
                });
            }
            Ok(header) => return Ok((header, buf.len() as u64)),
        }
    }
}
