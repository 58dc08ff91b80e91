//! Where a model comes from: an https (or, when allowed, http) URL, or a local file.

use std::path::PathBuf;

use url::Url;

use super::StoreError;

/// A parsed model source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An http(s) URL.
    Http(Url),
    /// A local file (`file://` URL or plain path).
    File(PathBuf),
}

impl Source {
    /// Parses a URL or path. Plain `http://` needs `allow_http`.
    pub fn parse(text: &str, allow_http: bool) -> Result<Source, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidSource {
            source_text: text.to_owned(),
            reason: reason.to_owned(),
        };
        if !text.contains("://") {
            if text.is_empty() {
                return Err(invalid("empty"));
            }
            return Ok(Source::File(PathBuf::from(text)));
        }
        let url = Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        match url.scheme() {
            "https" => Ok(Source::Http(url)),
            "http" if allow_http => Ok(Source::Http(url)),
            "http" => Err(StoreError::InsecureHttp {
                url: text.to_owned(),
            }),
            "file" => url
                .to_file_path()
                .map(Source::File)
                .map_err(|()| invalid("not a local file URL")),
            other => Err(invalid(&format!(
                "scheme {other:?} is not https, http or file"
            ))),
        }
    }

    /// Text for messages and metadata.
    pub fn display(&self) -> String {
        match self {
            Source::Http(url) => url.to_string(),
            Source::File(path) => path.display().to_string(),
        }
    }
}

/// Checks and lower-cases a sha256 given by a user or a server.
pub fn normalize_sha256(value: &str) -> Result<String, StoreError> {
    llamafleet_remote::parse_sha256(value).ok_or_else(|| StoreError::InvalidSha256 {
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert!(matches!(
            Source::parse("https://h/m.gguf", false),
            Ok(Source::Http(_))
        ));
        assert!(matches!(
            Source::parse("http://h/m.gguf", false),
            Err(StoreError::InsecureHttp { .. })
        ));
        assert!(matches!(
            Source::parse("http://h/m.gguf", true),
            Ok(Source::Http(_))
        ));
        assert_eq!(
            Source::parse("file:///tmp/m.gguf", false).ok(),
            Some(Source::File("/tmp/m.gguf".into()))
        );
        assert_eq!(
            Source::parse("./m.gguf", false).ok(),
            Some(Source::File("./m.gguf".into()))
        );
        assert!(Source::parse("ftp://h/m", true).is_err());
    }

    #[test]
    fn sha256_values() {
        assert!(normalize_sha256(&"A".repeat(64)).is_ok());
        assert!(normalize_sha256("abc").is_err());
        assert!(normalize_sha256(&"g".repeat(64)).is_err());
    }
}
