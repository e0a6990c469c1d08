use std::cell::RefCell;
use std::collections::BTreeSet;

thread_local! {
    static READ: RefCell<Option<BTreeSet<String>>> = const { RefCell::new(None) };
}

pub(crate) fn record(key: &str) {
    READ.with(|r| {
        if let Some(keys) = r.borrow_mut().as_mut() {
            keys.insert(key.to_string());
        }
    });
}

/// The keys read while `parse` runs (on this thread).
pub(crate) fn keys_read(parse: impl FnOnce()) -> BTreeSet<String> {
    READ.with(|r| *r.borrow_mut() = Some(BTreeSet::new()));
    parse();
    READ.with(|r| r.borrow_mut().take()).unwrap_or_default()
}
