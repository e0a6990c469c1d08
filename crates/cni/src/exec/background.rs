//! Clean-up that nobody waits for (finishing a cancelled invocation, reaping a killed plugin),
//! run on one thread of its own.

use std::sync::{Mutex, PoisonError, mpsc};

/// A piece of clean-up.
type Chore = Box<dyn FnOnce() + Send>;

/// Hand `chore` to the clean-up thread (`cni-reaper`, started at first use, lives as long as
/// the process, so clean-up never depends on an async runtime that may be shutting down).
/// Without the thread, the chore runs here.
pub(crate) fn run(chore: impl FnOnce() + Send + 'static) {
    static CHORES: Mutex<Option<mpsc::Sender<Chore>>> = Mutex::new(None);
    let mut tx = CHORES.lock().unwrap_or_else(PoisonError::into_inner);
    if tx.is_none() {
        let (sender, receiver) = mpsc::channel::<Chore>();
        let started = std::thread::Builder::new().name("cni-reaper".into()).spawn(move || {
            while let Ok(chore) = receiver.recv() {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(chore));
            }
        });
        if started.is_ok() {
            *tx = Some(sender);
        }
    }
    let chore: Chore = Box::new(chore);
    let unsent = match tx.as_ref() {
        Some(sender) => sender.send(chore).err().map(|e| e.0),
        None => Some(chore),
    };
    drop(tx);
    if let Some(chore) = unsent {
        chore();
    }
}
