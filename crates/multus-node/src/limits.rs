//! Bounds on what the API server can make the daemon hold in memory.
//!
//! kube-rs reads a whole response body into memory before parsing it, and splits a watch
//! stream into lines without a length limit: an API server (or anything answering in its
//! place) that streams an endless list or an endless watch line would grow the daemon without
//! bound. [`ResponseLimitLayer`] wraps the client's service so that:
//!
//! - a non-watch response body larger than its limit ([`MAX_RESPONSE_BYTES`], or the request's
//!   own [`ResponseLimit`]) ends in a [`ResponseTooLarge`] error once that many bytes arrived
//!   (at once when the `Content-Length` already says so);
//! - a watch response (`watch=true`/`watch=1` in the query) may stream forever, but one event
//!   (one line) longer than [`MAX_WATCH_EVENT_BYTES`] ends the stream with the same error; the
//!   watchers back off and start again.
//!
//! The API server refuses objects larger than about 1.5 MB, so the limits never bite a real
//! cluster: a list page holds at most [`POD_LIST_PAGE_SIZE`] pods of at most 256 KiB of
//! annotations each, and one watch event one object.

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{BoxError, Layer, Service};

/// The largest non-watch response body the daemon reads.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// The longest watch event (one line of a watch stream) the daemon reads: twice the API server's
/// object size limit, for the JSON envelope and escaping.
pub const MAX_WATCH_EVENT_BYTES: usize = 3 << 20;

/// Pods per page of the pod watch's list: with the API server's 256 KiB cap on a pod's
/// annotations, a page stays well under [`MAX_RESPONSE_BYTES`].
pub const POD_LIST_PAGE_SIZE: u32 = 50;

/// A request extension: this request's own limit on its (non-watch) response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimit(pub usize);

/// A response body (or a watch event) went over its limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is larger than {} (multus-rs refuses it)", crate::human_bytes(*.limit))]
pub struct ResponseTooLarge {
    /// `the API server's response` or `a watch event`.
    pub what: &'static str,
    /// The limit that was passed.
    pub limit: usize,
}

impl ResponseTooLarge {
    /// Whether `error` (or anything in its source chain) is this error.
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ResponseTooLarge> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(found) = e.downcast_ref::<ResponseTooLarge>() {
                return Some(found);
            }
            // An io::Error's `source` skips the error it wraps.
            if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
                current = Some(inner);
                continue;
            }
            current = e.source();
        }
        None
    }

    /// As [`ResponseTooLarge::find`], also recognising the error by its text (kube-rs turns some
    /// body errors into strings).
    pub fn is_in(error: &(dyn std::error::Error + 'static)) -> bool {
        Self::find(error).is_some() || error.to_string().contains("(multus-rs refuses it)")
    }
}

/// A kube client for `config` (kube-rs's default stack) with [`ResponseLimitLayer`] around it.
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?.with_layer(&ResponseLimitLayer::default()).build())
}

/// The layer: see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct ResponseLimitLayer {
    response: usize,
    watch_event: usize,
}

impl Default for ResponseLimitLayer {
    fn default() -> Self {
        Self { response: MAX_RESPONSE_BYTES, watch_event: MAX_WATCH_EVENT_BYTES }
    }
}

impl ResponseLimitLayer {
    /// Other limits (tests).
    pub fn new(response: usize, watch_event: usize) -> Self {
        Self { response, watch_event }
    }
}

impl<S> Layer<S> for ResponseLimitLayer {
    type Service = ResponseLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseLimitService { inner, limits: *self }
    }
}

/// The service [`ResponseLimitLayer`] makes.
#[derive(Debug, Clone)]
pub struct ResponseLimitService<S> {
    inner: S,
    limits: ResponseLimitLayer,
}

/// Whether a request is a watch (its response streams events, one per line).
fn is_watch(uri: &http::Uri) -> bool {
    uri.query().is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

impl<S, ReqBody, B> Service<Request<ReqBody>> for ResponseLimitService<S>
where
    S: Service<Request<ReqBody>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Response = Response<LimitedBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let limit = if is_watch(req.uri()) {
            Limit::Lines { max: self.limits.watch_event, current: 0 }
        } else {
            let max = req.extensions().get::<ResponseLimit>().map_or(self.limits.response, |l| l.0);
            Limit::Total { max, seen: 0 }
        };
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|inner| LimitedBody { inner, limit, failed: false }))
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    Total { max: usize, seen: usize },
    Lines { max: usize, current: usize },
}

impl Limit {
    fn count(&mut self, data: &[u8]) -> Result<(), ResponseTooLarge> {
        match self {
            Limit::Total { max, seen } => {
                *seen += data.len();
                if *seen > *max {
                    return Err(ResponseTooLarge { what: "the API server's response", limit: *max });
                }
            }
            Limit::Lines { max, current } => {
                let mut rest = data;
                while let Some(at) = rest.iter().position(|b| *b == b'\n') {
                    if *current + at > *max {
                        return Err(ResponseTooLarge { what: "a watch event", limit: *max });
                    }
                    *current = 0;
                    rest = &rest[at + 1..];
                }
                *current += rest.len();
                if *current > *max {
                    return Err(ResponseTooLarge { what: "a watch event", limit: *max });
                }
            }
        }
        Ok(())
    }
}

/// A response body that errors once it passes its limit.
#[derive(Debug)]
pub struct LimitedBody<B> {
    inner: B,
    limit: Limit,
    failed: bool,
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        // A Content-Length above the limit fails before anything is read.
        if let Limit::Total { max, seen: 0 } = this.limit
            && this.inner.size_hint().lower() > max as u64
        {
            this.failed = true;
            return Poll::Ready(Some(Err(Box::new(ResponseTooLarge {
                what: "the API server's response",
                limit: max,
            }))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(e) = this.limit.count(data)
                {
                    this.failed = true;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    type Chunks = StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;

    fn body(chunks: &[&[u8]]) -> Chunks {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> =
            chunks.iter().map(|c| Ok(Frame::data(Bytes::copy_from_slice(c)))).collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    async fn read(limit: Limit, chunks: &[&[u8]]) -> Result<usize, String> {
        let limited = LimitedBody { inner: body(chunks), limit, failed: false };
        limited.collect().await.map(|c| c.to_bytes().len()).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn a_body_over_its_total_limit_is_an_error() {
        assert_eq!(read(Limit::Total { max: 10, seen: 0 }, &[b"12345", b"12345"]).await, Ok(10));
        let e = read(Limit::Total { max: 10, seen: 0 }, &[b"12345", b"123456"]).await.unwrap_err();
        assert!(e.contains("larger than 10 B"), "{e}");
    }

    #[tokio::test]
    async fn a_watch_stream_may_be_long_but_not_one_line() {
        let lines: Vec<&[u8]> = std::iter::repeat_n(&b"{\"a\":1}\n"[..], 1000).collect();
        assert_eq!(read(Limit::Lines { max: 8, current: 0 }, &lines).await, Ok(8000));
        // A line split over chunks is counted whole.
        let e = read(Limit::Lines { max: 8, current: 0 }, &[b"12\n1234", b"56789", b"\n"]).await.unwrap_err();
        assert!(e.contains("a watch event is larger than 8 B"), "{e}");
        // An endless line without a newline fails too.
        let endless: Vec<&[u8]> = std::iter::repeat_n(&b"xxxx"[..], 10).collect();
        assert!(read(Limit::Lines { max: 8, current: 0 }, &endless).await.is_err());
    }

    #[test]
    fn watches_are_told_by_their_query() {
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        assert!(is_watch(&uri("/api/v1/pods?fieldSelector=x&watch=true&resourceVersion=1")));
        assert!(is_watch(&uri("/api/v1/pods?watch=1")));
        assert!(!is_watch(&uri("/api/v1/pods?limit=50")));
        assert!(!is_watch(&uri("/api/v1/namespaces/default/pods/watch=true")));
    }

    #[test]
    fn the_error_is_found_in_a_chain() {
        let e = ResponseTooLarge { what: "a watch event", limit: 3 << 20 };
        assert_eq!(e.to_string(), "a watch event is larger than 3.0 MiB (multus-rs refuses it)");
        let io = std::io::Error::other(e.clone());
        assert_eq!(ResponseTooLarge::find(&io), Some(&e));
        assert!(ResponseTooLarge::is_in(&io));
    }
}
