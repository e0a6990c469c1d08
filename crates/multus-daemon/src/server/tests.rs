use super::accept::*;
use super::api::*;
use super::limits::*;
use super::shared::*;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

struct Echo;

impl Api for Echo {
    fn cni(&self, body: Vec<u8>, _caller: Caller) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        Box::pin(async move { Reply::ok(body) })
    }
    fn delegate(&self, body: Vec<u8>, caller: Caller) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        self.cni(body, caller)
    }
}

fn shared() -> Arc<Shared> {
    Arc::new(Shared {
        api: Arc::new(Echo),
        health: Arc::new(Health::default()),
        limits: Limits::default(),
        slots: None,
        budget: Arc::new(Semaphore::new(1 << 20)),
        pending: PendingHeads::default(),
        connections: Arc::new(Semaphore::new(8)),
        probe_lane: Arc::new(Semaphore::new(PROBE_LANE_CONNECTIONS)),
    })
}

/// Fails with `EMFILE` a number of times, then hands out one connection, then none.
struct Exhausted {
    failures_left: Mutex<u32>,
    stream: Mutex<Option<UnixStream>>,
}

impl Acceptor for Exhausted {
    async fn accept_stream(&self) -> io::Result<UnixStream> {
        {
            let mut left = self.failures_left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(io::Error::from_raw_os_error(libc_emfile()));
            }
        }
        let next = self.stream.lock().unwrap().take();
        match next {
            Some(s) => Ok(s),
            None => std::future::pending().await,
        }
    }
}

fn libc_emfile() -> i32 {
    nix::errno::Errno::EMFILE as i32
}

/// The accept loop at the descriptor limit pauses between attempts (10 ms doubling)
/// instead of spinning, and serves the waiting client once accepting works again.
#[tokio::test]
async fn accept_backs_off_at_the_descriptor_limit_and_recovers() {
    let (server_end, mut client) = UnixStream::pair().unwrap();
    client.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let acceptor = Exhausted { failures_left: Mutex::new(7), stream: Mutex::new(Some(server_end)) };
    let shared = shared();
    let connections = Arc::new(Semaphore::new(8));
    let started = tokio::time::Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let shared = shared.clone();
        async move {
            accept_loop(&acceptor, &shared, &connections, async {
                let _ = stop_rx.await;
            })
            .await
        }
    };
    let server = tokio::spawn(serving);
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(shared.health.accept_errors(), 7);
    // A spinning loop would be done at once; this one paused 10+20+…+640 ms.
    assert!(started.elapsed() >= Duration::from_millis(1270), "{:?}", started.elapsed());
    let _ = stop_tx.send(());
    server.await.unwrap();
}

async fn exchange(shared: &Arc<Shared>, request: &[u8]) -> String {
    let (server_end, mut client) = UnixStream::pair().unwrap();
    spawn_connection(server_end, None, Lane::Regular, shared.clone());
    client.write_all(request).await.unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    answer
}

/// `POST /cni?ready` (multus-shim) is refused while not ready and served once ready; a
/// request without the query (the Go shim) is served either way, as before.
#[tokio::test]
async fn a_gated_cni_request_waits_for_readiness_an_ungated_one_does_not() {
    let shared = shared();
    let gated = b"POST /cni?ready HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    let plain = b"POST /cni HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    shared.health.set_ready(false);
    let answer = exchange(&shared, gated).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("not ready"), "{answer}");
    let answer = exchange(&shared, plain).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("{}"), "{answer}");
    shared.health.set_ready(true);
    let answer = exchange(&shared, gated).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("{}"), "{answer}");
    let other = b"POST /cni?x=1&ready=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    shared.health.set_ready(false);
    assert!(exchange(&shared, other).await.starts_with("HTTP/1.1 503"));
}

#[test]
fn backoff_ignores_clients_that_gave_up_and_caps_the_pause() {
    let mut b = AcceptBackoff::default();
    assert_eq!(b.failed(&io::Error::from(io::ErrorKind::ConnectionAborted)), Duration::ZERO);
    let emfile = io::Error::from_raw_os_error(libc_emfile());
    let pauses: Vec<_> = (0..10).map(|_| b.failed(&emfile).as_millis()).collect();
    assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    b.succeeded();
    assert_eq!(b.failed(&emfile), AcceptBackoff::FIRST);
}
