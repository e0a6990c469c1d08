//! Listening: the accept loop, and stopping and starting it again (the admin API's outage).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::shared::Shared;

/// Binds the configured address and starts accepting connections.
pub(crate) fn start_listening(shared: &Arc<Shared>, bound: Option<std::net::TcpListener>) -> std::io::Result<()> {
    let mut listening = shared.listening.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if listening.is_some() {
        return Ok(());
    }
    // std's bind sets SO_REUSEADDR, so the same port can be bound again right after a stop.
    let std_listener = match bound {
        Some(listener) => listener,
        None => std::net::TcpListener::bind(shared.addr)?,
    };
    std_listener.set_nonblocking(true)?;
    let listener = {
        let _guard = shared.runtime.enter();
        TcpListener::from_std(std_listener)?
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    shared.runtime.spawn(accept_loop(listener, shared.clone(), stop_rx));
    *listening = Some(stop_tx);
    Ok(())
}

/// Closes the listening socket and every open connection. Returns whether it was listening.
pub(crate) fn stop_listening(shared: &Arc<Shared>) -> bool {
    let stop = shared.listening.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    match stop {
        Some(stop) => {
            let _ = stop.send(true);
            true
        }
        None => false,
    }
}

/// Time for the accept loop to drop its socket after a stop.
pub(crate) const STOP_SETTLE: Duration = Duration::from_millis(20);

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = (shared.serve_connection)(stream, shared.clone()) => {}
                        _ = stop.changed() => tracing::debug!(%peer, "connection closed by stop_listening"),
                    }
                });
            }
        }
    }
}
