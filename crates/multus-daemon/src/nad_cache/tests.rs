use super::*;
use proptest::prelude::*;

fn key(ns: &str, name: &str) -> Key {
    (ns.to_string(), name.to_string())
}

fn nad(ns: &str, name: &str, config_len: usize) -> NadAnswer {
    NadAnswer::Found(Arc::new(Nad {
        namespace: ns.into(),
        name: name.into(),
        config: "x".repeat(config_len),
        annotations: Default::default(),
    }))
}

fn cache(budget: usize) -> NadCache {
    let c = NadCache::new(budget);
    c.relisted();
    c.connected();
    c
}

fn put(c: &NadCache, k: &Key, a: &NadAnswer) -> bool {
    let t = c.begin_fetch();
    c.store(k, a, "1", t)
}

#[test]
fn hit_after_store_and_miss_before() {
    let c = cache(1 << 20);
    let k = key("ns", "a");
    assert_eq!(c.lookup(&k), None);
    assert!(put(&c, &k, &nad("ns", "a", 100)));
    assert!(matches!(c.lookup(&k), Some(NadAnswer::Found(n)) if n.config.len() == 100));
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.entries), (1, 1, 1));
    assert_eq!(s.bytes, 100 + 3 + ENTRY_OVERHEAD + 1);
}

#[test]
fn least_recently_used_goes_first() {
    let per = 1000 + ENTRY_OVERHEAD + 4;
    let c = cache(3 * per);
    let (a, b, d, e) = (key("n", "a"), key("n", "b"), key("n", "d"), key("n", "e"));
    for k in [&a, &b, &d] {
        assert!(put(&c, k, &nad("n", &k.1, 1000)));
    }
    // a is used again: b is now the oldest.
    assert!(c.lookup(&a).is_some());
    assert!(put(&c, &e, &nad("n", "e", 1000)));
    assert_eq!(c.keys_by_age(), vec![d.clone(), a.clone(), e.clone()]);
    assert_eq!(c.peek(&b), None);
    assert_eq!(c.stats().evictions, 1);
    assert!(c.stats().bytes <= 3 * per);
}

#[test]
fn an_entry_larger_than_the_budget_is_answered_not_kept() {
    let c = cache(4096);
    let k = key("n", "big");
    assert!(!put(&c, &k, &nad("n", "big", 5000)));
    assert!(c.is_empty());
}

#[test]
fn modified_with_another_resource_version_invalidates() {
    let c = cache(1 << 20);
    let k = key("n", "a");
    assert!(put(&c, &k, &nad("n", "a", 10)));
    c.on_event(Change::Modified, &k, "1");
    assert!(c.peek(&k).is_some(), "same resourceVersion: the cached copy is current");
    c.on_event(Change::Modified, &k, "2");
    assert_eq!(c.peek(&k), None);
}

#[test]
fn a_lagging_event_of_the_fetched_state_keeps_the_entry() {
    let c = cache(1 << 20);
    let k = key("n", "a");
    assert!(put(&c, &k, &nad("n", "a", 10)));
    c.on_event(Change::Added, &k, "1");
    assert!(c.peek(&k).is_some());
    c.on_event(Change::Added, &k, "3");
    assert_eq!(c.peek(&k), None, "re-created: another resourceVersion");
}

#[test]
fn deleted_becomes_negative_and_added_drops_it() {
    let c = cache(1 << 20);
    let k = key("n", "a");
    assert!(put(&c, &k, &nad("n", "a", 10)));
    c.on_event(Change::Deleted, &k, "5");
    assert_eq!(c.lookup(&k), Some(NadAnswer::NotFound));
    c.on_event(Change::Added, &k, "6");
    assert_eq!(c.lookup(&k), None);
}

#[test]
fn negative_answers_only_while_the_watch_is_connected() {
    let c = cache(1 << 20);
    let k = key("n", "missing");
    assert!(put(&c, &k, &NadAnswer::NotFound));
    assert_eq!(c.lookup(&k), Some(NadAnswer::NotFound));
    c.disconnected();
    assert_eq!(c.lookup(&k), None, "not trusted while the watch is down");
    let found = key("n", "there");
    assert!(put(&c, &found, &nad("n", "there", 10)), "found NADs are still kept");
    assert!(c.lookup(&found).is_some(), "and served");
    c.connected();
    assert_eq!(c.lookup(&k), Some(NadAnswer::NotFound), "trusted again once the watch resumed");
    // The resumed watch replays the NAD's creation.
    c.on_event(Change::Added, &k, "7");
    assert_eq!(c.lookup(&k), None);
    assert!(!put(&c, &k, &NadAnswer::Unavailable("down".into())));
}

#[test]
fn a_fetch_that_raced_an_event_or_a_gap_is_not_kept() {
    let c = cache(1 << 20);
    let k = key("n", "a");
    let t = c.begin_fetch();
    c.on_event(Change::Modified, &k, "9");
    assert!(!c.store(&k, &nad("n", "a", 10), "8", t));
    // The event of the state fetched does not contradict it.
    let t = c.begin_fetch();
    c.on_event(Change::Modified, &k, "9");
    assert!(c.store(&k, &nad("n", "a", 10), "9", t));
    c.relisted();
    let t = c.begin_fetch();
    c.on_event(Change::Added, &k, "11");
    assert!(!c.store(&k, &NadAnswer::NotFound, "", t), "created while the GET said missing");
    // An event for another key does not matter.
    let t = c.begin_fetch();
    c.on_event(Change::Added, &key("n", "other"), "10");
    assert!(c.store(&k, &nad("n", "a", 10), "9", t));
    let t = c.begin_fetch();
    c.relisted();
    assert!(!c.store(&k, &nad("n", "a", 10), "9", t));
    assert!(c.is_empty(), "a gap clears everything");
    // More events than remembered: cannot rule the key out.
    let t = c.begin_fetch();
    for i in 0..RECENT_EVENTS + 1 {
        c.on_event(Change::Added, &key("n", &format!("x{i}")), "1");
    }
    assert!(!c.store(&k, &nad("n", "a", 10), "9", t));
}

#[test]
fn too_large_is_remembered_small() {
    let c = cache(1 << 20);
    let k = key("n", "huge");
    assert!(put(&c, &k, &NadAnswer::TooLarge { bytes: 2 << 20 }));
    assert_eq!(c.lookup(&k), Some(NadAnswer::TooLarge { bytes: 2 << 20 }));
    assert!(c.stats().bytes < 256);
    let why = NadAnswer::TooLarge { bytes: 2 << 20 }.reason("huge").unwrap();
    assert!(why.contains("2.0 MiB") && why.contains("1.5 MiB"), "{why}");
}

#[test]
fn reasons_keep_the_reference_not_found_text() {
    assert_eq!(NadAnswer::NotFound.reason("x").unwrap(), "networkattachmentdefinition.k8s.cni.cncf.io \"x\" not found");
    assert_eq!(nad("n", "x", 1).reason("x"), None);
}

#[derive(Debug, Clone)]
enum Op {
    Store(u8, usize),
    StoreNegative(u8),
    Lookup(u8),
    Event(u8, u8, u8),
    Disconnect,
    Connect,
    Relist,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..24, 0usize..3000).prop_map(|(k, n)| Op::Store(k, n)),
        1 => (0u8..24).prop_map(Op::StoreNegative),
        3 => (0u8..24).prop_map(Op::Lookup),
        2 => (0u8..24, 0u8..3, 0u8..3).prop_map(|(k, c, rv)| Op::Event(k, c, rv)),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Connect),
        1 => Just(Op::Relist),
    ]
}

proptest! {
    #[test]
    fn budget_is_never_exceeded_and_bytes_add_up(budget in 0usize..12_000, ops in proptest::collection::vec(op(), 1..200)) {
        let c = NadCache::new(budget);
        c.relisted();
        c.connected();
        for op in ops {
            match op {
                Op::Store(k, n) => {
                    let k = key("ns", &format!("n{k}"));
                    let t = c.begin_fetch();
                    c.store(&k, &nad("ns", &k.1, n), "1", t);
                }
                Op::StoreNegative(k) => {
                    let k = key("ns", &format!("n{k}"));
                    let t = c.begin_fetch();
                    c.store(&k, &NadAnswer::NotFound, "", t);
                }
                Op::Lookup(k) => {
                    let answer = c.lookup(&key("ns", &format!("n{k}")));
                    if let Some(NadAnswer::NotFound) = answer {
                        prop_assert!(c.lock().healthy, "a negative answer while the watch is down");
                    }
                }
                Op::Event(k, change, rv) => {
                    let change = [Change::Added, Change::Modified, Change::Deleted][change as usize];
                    c.on_event(change, &key("ns", &format!("n{k}")), &rv.to_string());
                }
                Op::Disconnect => c.disconnected(),
                Op::Connect => c.connected(),
                Op::Relist => c.relisted(),
            }
            let s = c.lock();
            prop_assert!(s.bytes <= budget, "{} bytes > budget {budget}", s.bytes);
            prop_assert_eq!(s.bytes, s.entries.values().map(|e| e.cost).sum::<usize>());
            prop_assert_eq!(s.order.len(), s.entries.len());
            for (used, k) in &s.order {
                prop_assert_eq!(s.entries.get(k).map(|e| e.used), Some(*used));
            }
        }
    }
}
