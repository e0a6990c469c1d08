//! A minimal blocking HTTP/1.1 client over a unix socket.
//!
//! Hand-written on purpose: the shim runs once per CNI command and must start and finish in
//! about a millisecond with a few hundred kilobytes of memory. It sends one request with
//! `Connection: close` and understands the responses the daemons send (Go's `net/http` and
//! hyper): `Content-Length`, chunked, or read-to-EOF bodies.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why an exchange with the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be connected to (no daemon, a stale socket, a full backlog): the
    /// request was certainly not delivered.
    #[error("dial unix {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// What `connect` answered.
        source: std::io::Error,
    },
    /// The whole exchange did not finish within the caller's timeout.
    #[error("no complete answer within {after:?}")]
    TimedOut {
        /// The caller's timeout.
        after: Duration,
    },
    /// Sending or reading failed after the connection was made: the request may have been delivered.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer's answer is not an HTTP/1.1 response this client understands.
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
}

/// A response: status code, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` (empty when the daemon sent none).
    pub content_type: String,
    /// The complete body, de-chunked.
    pub body: Vec<u8>,
}

/// Largest header block accepted, so a broken peer cannot make the shim allocate without bound.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// POST `body` to `path` on the daemon socket. `timeout` bounds the whole exchange (connect,
/// send, and the complete response), not each read: a peer trickling bytes cannot stretch it.
pub fn post(socket: &Path, path: &str, body: &[u8], timeout: Option<Duration>) -> Result<HttpResponse, ClientError> {
    request(socket, "POST", path, body, timeout)
}

/// Send one request and read the whole response.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<HttpResponse, ClientError> {
    let deadline = timeout.map(|t| (Instant::now() + t, t));
    let mut stream =
        UnixStream::connect(socket).map_err(|source| ClientError::Connect { path: socket.to_path_buf(), source })?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: dummy\r\nUser-Agent: multus-shim\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    let timed_out = |after| ClientError::TimedOut { after };
    if let Some((at, after)) = deadline {
        stream.set_write_timeout(Some(remaining(at).ok_or_else(|| timed_out(after))?))?;
    }
    let written = stream.write_all(&out);
    let reader = BufReader::new(DeadlineReader { stream, deadline });
    match written {
        Ok(()) => read_response(reader).map_err(|e| e.with_deadline(deadline)),
        // The server may answer before reading everything (413 for an oversized body) and
        // close; its answer is more useful than the broken pipe.
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
            read_response(reader).map_err(|_| ClientError::Io(e))
        }
        Err(e) => Err(ClientError::Io(e).with_deadline(deadline)),
    }
}

impl ClientError {
    /// A socket timeout (`EAGAIN` from `SO_RCVTIMEO`/`SO_SNDTIMEO`) past the deadline reads as
    /// [`ClientError::TimedOut`].
    fn with_deadline(self, deadline: Option<(Instant, Duration)>) -> Self {
        match (self, deadline) {
            (Self::Io(e), Some((at, after)))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) && remaining(at).is_none() =>
            {
                Self::TimedOut { after }
            }
            (other, _) => other,
        }
    }
}

/// Time left until `at`, `None` once it has passed.
fn remaining(at: Instant) -> Option<Duration> {
    at.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
}

/// Reads that together end at a deadline: each read's socket timeout is the time left.
struct DeadlineReader {
    stream: UnixStream,
    deadline: Option<(Instant, Duration)>,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some((at, _)) = self.deadline {
            let left = remaining(at).ok_or_else(|| std::io::Error::from(ErrorKind::TimedOut))?;
            self.stream.set_read_timeout(Some(left))?;
        }
        self.stream.read(buf)
    }
}

fn read_response<R: BufRead>(mut reader: R) -> Result<HttpResponse, ClientError> {
    let mut header_bytes = 0usize;
    let mut line = String::new();
    let mut next_line = |reader: &mut R, line: &mut String| -> Result<(), ClientError> {
        line.clear();
        let n = reader.read_line(line)?;
        header_bytes += n;
        if n == 0 {
            return Err(ClientError::Malformed("connection closed before the end of the headers".into()));
        }
        if header_bytes > MAX_HEADER_BYTES {
            return Err(ClientError::Malformed("response headers too large".into()));
        }
        Ok(())
    };
    next_line(&mut reader, &mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/1."))
        .ok_or_else(|| ClientError::Malformed(format!("bad status line {:?}", line.trim_end())))?;
    let mut content_length = None;
    let mut chunked = false;
    let mut content_type = String::new();
    loop {
        next_line(&mut reader, &mut line)?;
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let Some((name, value)) = trimmed.split_once(':') else {
            return Err(ClientError::Malformed(format!("bad header line {trimmed:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value.parse::<usize>().map_err(|_| ClientError::Malformed(format!("bad Content-Length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = value.to_string();
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            next_line(&mut reader, &mut line)?;
            let size_text = line.trim_end_matches(['\r', '\n']).split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| ClientError::Malformed(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = content_length {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(HttpResponse { status, content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_content_length_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnullEXTRA";
        let r = read_response(Cursor::new(&raw[..])).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"null"[..]));
    }

    #[test]
    fn reads_chunked_bodies() {
        let raw = b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = read_response(Cursor::new(&raw[..])).unwrap();
        assert_eq!((r.status, r.body.as_slice(), r.content_type.as_str()), (400, &b"abcde"[..], "text/plain"));
    }

    #[test]
    fn reads_to_eof_without_length() {
        let r = read_response(Cursor::new(&b"HTTP/1.0 200 OK\r\n\r\nhello"[..])).unwrap();
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn rejects_garbage() {
        assert!(read_response(Cursor::new(&b"garbage\r\n\r\n"[..])).is_err());
        assert!(read_response(Cursor::new(&b""[..])).is_err());
        assert!(read_response(Cursor::new(&b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"[..])).is_err());
    }

    #[test]
    fn the_timeout_bounds_the_whole_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("multus.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        // A server that accepts and trickles a byte every 50 ms: each read succeeds, the
        // exchange never ends.
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            while conn.write_all(b"H").is_ok() {
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let e = post(&sock, "/cni", b"{}", Some(Duration::from_millis(400))).unwrap_err();
        assert!(matches!(e, ClientError::TimedOut { .. }), "{e:?}");
    }

    #[test]
    fn an_early_answer_wins_over_the_broken_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("multus.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = [0u8; 64];
            let _ = conn.read(&mut head);
            let _ = conn.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig\n");
            // Closing with unread data makes the kernel reset the connection.
        });
        let big = vec![b'x'; 8 * 1024 * 1024];
        let r = post(&sock, "/cni", &big, Some(Duration::from_secs(10))).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (413, &b"big\n"[..]));
    }

    #[test]
    fn connect_failures_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let e = post(&dir.path().join("none.sock"), "/cni", b"{}", None).unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
    }

    #[test]
    fn talks_to_a_unix_socket_server() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("multus.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut l = String::new();
                reader.read_line(&mut l).unwrap();
                if l == "\r\n" {
                    break;
                }
                head.push_str(&l);
            }
            let mut body = [0u8; 4];
            reader.read_exact(&mut body).unwrap();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
            (head, body)
        });
        let r = post(&sock, "/healthz", b"null", Some(Duration::from_secs(5))).unwrap();
        assert_eq!(r.body, b"ok");
        let (head, body) = server.join().unwrap();
        assert!(head.starts_with("POST /healthz HTTP/1.1\r\n"));
        assert_eq!(&body, b"null");
    }
}
