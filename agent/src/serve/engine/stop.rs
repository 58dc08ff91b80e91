//! Turns generated token bytes into text deltas: holds back incomplete UTF-8 and any tail that
//! could still grow into a stop string, so a client never sees part of a stop string.

/// Incremental detokenised text with stop-string detection.
#[derive(Debug, Default)]
pub(crate) struct TextStream {
    bytes: Vec<u8>,
    held: String,
    stop: Vec<String>,
}

/// What one token added.
#[derive(Debug, PartialEq)]
pub(crate) enum Delta {
    /// Text safe to send.
    Text(String),
    /// A stop string was reached: the text before it, and which one (its index).
    Stopped(String, usize),
}

impl TextStream {
    pub(crate) fn new(stop: Vec<String>) -> Self {
        TextStream {
            stop,
            ..Default::default()
        }
    }

    /// Adds a token's bytes and returns what may be released.
    pub(crate) fn push(&mut self, piece: &[u8]) -> Delta {
        self.bytes.extend_from_slice(piece);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(s) => s.len(),
            // A multi-byte character split across tokens: keep its start for the next token.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.bytes.len(),
        };
        let rest = self.bytes.split_off(valid);
        let text = String::from_utf8_lossy(&self.bytes).into_owned();
        self.bytes = rest;
        self.held.push_str(&text);
        if let Some((at, which)) = self
            .stop
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.held.find(s.as_str()).map(|at| (at, i)))
            .min()
        {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return Delta::Stopped(before, which);
        }
        let keep = self.partial_stop_len();
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_owned();
        self.held.drain(..cut);
        Delta::Text(out)
    }

    /// Text still held back when generation ends for another reason.
    pub(crate) fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.held);
        out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut self.bytes)));
        out
    }

    /// Longest suffix of the held text that is a proper prefix of some stop string.
    fn partial_stop_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stop {
            for (i, _) in self.held.char_indices() {
                let tail = &self.held[i..];
                if tail.len() > best && stop.starts_with(tail) {
                    best = tail.len();
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_a_possible_stop_and_cuts_before_it() {
        let mut s = TextStream::new(vec!["END".into()]);
        assert_eq!(s.push(b"hello E"), Delta::Text("hello ".into()));
        assert_eq!(s.push(b"N"), Delta::Text(String::new()));
        assert_eq!(s.push(b"D more"), Delta::Stopped(String::new(), 0));
        let mut s = TextStream::new(vec!["END".into()]);
        assert_eq!(s.push(b"a E"), Delta::Text("a ".into()));
        assert_eq!(s.push(b"x"), Delta::Text("Ex".into()));
        assert_eq!(s.push(b"yEND"), Delta::Stopped("y".into(), 0));
        // The earliest match wins, and says which stop string it was.
        let mut s = TextStream::new(vec!["END".into(), "x".into()]);
        assert_eq!(s.push(b"a x END"), Delta::Stopped("a ".into(), 1));
    }

    #[test]
    fn split_utf8_is_joined() {
        let mut s = TextStream::new(vec![]);
        let euro = "€".as_bytes();
        assert_eq!(s.push(&euro[..1]), Delta::Text(String::new()));
        assert_eq!(s.push(&euro[1..]), Delta::Text("€".into()));
        assert_eq!(s.finish(), "");
    }
}
