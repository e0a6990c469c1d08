//! Keeping only a few kilobytes of a plugin's diagnostics.
//!
//! A plugin's stderr, and its stdout where it is echoed into an error message
//! ([`ExecError::BadErrorOutput`](super::ExecError::BadErrorOutput), a plugin's error object),
//! end up in the error the runtime prints, in the shim's answer and in the daemon's log. A
//! plugin writing gigabytes must not turn one failed ADD into megabytes of each. So only the
//! first [`KEPT_HEAD`] and the last [`KEPT_TAIL`] bytes are kept, joined by a marker that says
//! how many bytes were dropped between them (`[… 123 bytes cut …]`). The pipe itself is still
//! read to its end, so the plugin never blocks on a full pipe.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes kept from the start of a long text.
pub const KEPT_HEAD: usize = 2048;
/// Bytes kept from the end of a long text.
pub const KEPT_TAIL: usize = 2048;
/// Slack over `head + tail` below which a text is kept whole: cutting it would not make it
/// shorter than the marker costs, and a text already cut is never cut again.
const SLACK: usize = 64;

/// The marker put where bytes were dropped.
fn marker(cut: u64) -> String {
    format!("\n[… {cut} bytes cut …]\n")
}

/// A text as it is written, keeping its first `head` and last `tail` bytes and counting the
/// rest.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    /// Every byte seen.
    total: u64,
}

impl Capture {
    pub(crate) fn new(head_cap: usize, tail_cap: usize) -> Self {
        Self { head: Vec::new(), tail: VecDeque::new(), head_cap, tail_cap, total: 0 }
    }

    /// Keep what fits of `data`.
    pub(crate) fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let n = room.min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        if self.tail_cap == 0 || data.is_empty() {
            return;
        }
        if data.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
        } else {
            let over = (self.tail.len() + data.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..over);
            self.tail.extend(data);
        }
    }

    /// Bytes seen but not kept.
    pub(crate) fn cut(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// The kept bytes, with the marker where bytes were dropped.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        let cut = self.cut();
        let mut out = self.head;
        if cut > 0 {
            out.extend_from_slice(marker(cut).as_bytes());
        }
        out.extend(self.tail);
        out
    }

    /// Read `pipe` to its end (or until it fails), keeping what fits.
    pub(crate) async fn drain<R: AsyncRead + Unpin>(&mut self, pipe: Option<R>) -> io::Result<()> {
        let Some(mut pipe) = pipe else { return Ok(()) };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf).await? {
                0 => return Ok(()),
                n => self.push(&buf[..n]),
            }
        }
    }
}

/// `bytes` with all but its first [`KEPT_HEAD`] and last [`KEPT_TAIL`] bytes replaced by a
/// marker counting them. Texts short enough (among them any text this already cut) come back
/// unchanged.
pub fn cut_middle(bytes: &[u8]) -> Cow<'_, [u8]> {
    if bytes.len() <= KEPT_HEAD + KEPT_TAIL + SLACK {
        return Cow::Borrowed(bytes);
    }
    let mut c = Capture::new(KEPT_HEAD, KEPT_TAIL);
    c.push(bytes);
    Cow::Owned(c.into_bytes())
}

/// [`cut_middle`] of a string (a cut inside a multi-byte character leaves U+FFFD).
pub fn cut_middle_str(text: &str) -> Cow<'_, str> {
    match cut_middle(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_kept_whole() {
        assert!(matches!(cut_middle(b"hello"), Cow::Borrowed(b"hello")));
        let edge = vec![b'x'; KEPT_HEAD + KEPT_TAIL + SLACK];
        assert!(matches!(cut_middle(&edge), Cow::Borrowed(_)));
    }

    #[test]
    fn long_texts_keep_head_and_tail_and_count_the_rest() {
        let mut text = b"START".to_vec();
        text.extend(std::iter::repeat_n(b'.', 1_000_000));
        text.extend_from_slice(b"END");
        let cut = cut_middle(&text);
        let s = String::from_utf8(cut.into_owned()).unwrap();
        assert!(s.starts_with("START"));
        assert!(s.ends_with("END"));
        let dropped = text.len() - KEPT_HEAD - KEPT_TAIL;
        assert!(s.contains(&format!("[… {dropped} bytes cut …]")), "{}", &s[KEPT_HEAD - 10..KEPT_HEAD + 40]);
        assert!(s.len() < KEPT_HEAD + KEPT_TAIL + SLACK);
        // Cutting again changes nothing.
        assert_eq!(cut_middle_str(&s), s);
    }

    #[test]
    fn a_capture_fed_in_pieces_matches_one_fed_at_once() {
        let text: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut pieces = Capture::new(100, 300);
        for chunk in text.chunks(77) {
            pieces.push(chunk);
        }
        let mut whole = Capture::new(100, 300);
        whole.push(&text);
        assert_eq!(pieces.cut(), (text.len() - 400) as u64);
        assert_eq!(pieces.into_bytes(), whole.clone().into_bytes());
        let bytes = whole.into_bytes();
        assert_eq!(&bytes[..100], &text[..100]);
        assert_eq!(&bytes[bytes.len() - 300..], &text[text.len() - 300..]);
    }

    #[tokio::test]
    async fn draining_reads_to_the_end() {
        let data = vec![7u8; 300_000];
        let mut c = Capture::new(10, 10);
        c.drain(Some(&data[..])).await.unwrap();
        assert_eq!(c.cut(), 300_000 - 20);
    }
}
