//! Small readers of response headers.

use reqwest::header::HeaderMap;

/// A header's value when it is visible ASCII.
pub fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A header's value as a number.
pub fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.trim().parse().ok())
}

/// `value` lower-cased when it is a sha256 (64 hex digits), else `None`.
pub fn parse_sha256(value: &str) -> Option<String> {
    let v = value.trim().to_ascii_lowercase();
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
}

/// Parses `bytes a-b/total` → (a, total); total `*` is `None`.
pub fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    Some((start.parse().ok()?, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(content_range("bytes 10-19/100"), Some((10, Some(100))));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, None)));
        assert_eq!(content_range("items 1-2/3"), None);
        assert_eq!(content_range("bytes x-19/100"), None);
    }

    #[test]
    fn a_sha256_is_64_hex_digits() {
        let sha = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
        assert_eq!(parse_sha256(&sha.to_uppercase()).as_deref(), Some(sha));
        assert_eq!(parse_sha256("abc-123"), None);
        assert_eq!(parse_sha256(&sha[1..]), None);
    }
}
