//! A big but legal selection annotation (the API server allows 256 KiB of annotations per pod)
//! must not multiply in memory on its way to the delegate: parsing, resolution, planning, the
//! delegate cache. Peak heap over the baseline, measured with a counting allocator, is compared
//! with the annotation's size. One test in this binary, so that nothing else allocates meanwhile.
// A counting global allocator needs `unsafe impl GlobalAlloc`.
#![allow(unsafe_code)]

use multus::k8s_args::{K8sArgs, PodIdentity};
use multus::model::{NETWORKS_ANNOTATION, Nad, PodInfo};
use multus::plan::{self, Operation, PlanContext};
use multus::resolve::{NoDevices, ResolveSettings, resolve_add_delegates};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `GlobalAlloc::realloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap above the level when `f` started.
fn peak_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (PEAK.load(Ordering::Relaxed) - base, out)
}

#[test]
fn a_big_legal_annotation_is_not_multiplied() {
    let dir = tempfile::tempdir().unwrap();
    let settings = ResolveSettings {
        cni_version: "1.0.0".into(),
        static_delegates: vec![serde_json::json!({"cniVersion": "1.0.0", "name": "cluster", "type": "bridge"})],
        ..Default::default()
    };
    let mut nads = BTreeMap::new();
    for (name, config) in [
        ("single", r#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth0"}"#),
        (
            "list",
            r#"{"cniVersion":"1.0.0","plugins":[{"type":"macvlan","master":"eth0"},{"type":"tuning"},{"type":"sbr"}]}"#,
        ),
    ] {
        nads.insert(
            ("default".to_string(), name.to_string()),
            Nad { namespace: "default".into(), name: name.into(), config: config.into(), ..Default::default() },
        );
    }
    // cni-args shaped as many small keys (the worst case for a JSON tree) and as one long string.
    let many: serde_json::Map<String, serde_json::Value> =
        (0..2500).map(|i| (format!("key-{i:05}"), serde_json::json!(format!("value-{i:060}")))).collect();
    // (shape, NAD, plugins that each get the cni-args, cni-args)
    let shapes = [
        ("many small keys, single plugin", "single", 1, serde_json::Value::Object(many.clone())),
        ("many small keys, 3-plugin conflist", "list", 3, serde_json::Value::Object(many)),
        ("one long string, single plugin", "single", 1, serde_json::json!({"blob": "x".repeat(200_000)})),
    ];
    let mut report = Vec::new();
    let mut worst: f64 = 0.0;
    for (shape, nad, plugins, cni_args) in shapes {
        let annotation = serde_json::json!([{"name": nad, "cni-args": cni_args}]).to_string();
        assert!(annotation.len() > 150_000 && annotation.len() < 256 << 10, "{}", annotation.len());
        let pod = PodInfo {
            namespace: "default".into(),
            name: "p".into(),
            uid: "u".into(),
            annotations: [(NETWORKS_ANNOTATION.to_string(), annotation.clone())].into(),
            ..Default::default()
        };
        let (peak, ()) = peak_during(|| {
            let keys = multus::resolve::nad_keys(&settings, Some(&pod));
            assert_eq!(keys.len(), 1);
            let resolved = resolve_add_delegates(&settings, None, Some(&pod), &nads, &mut NoDevices).expect("resolves");
            let args = K8sArgs {
                pod: PodIdentity { namespace: "default".into(), name: "p".into(), uid: Some("u".into()) },
                infra_container_id: "c".into(),
                ip: None,
            };
            let ctx = PlanContext {
                container_id: "c",
                ifname: "eth0",
                args: &args,
                runtime_config: None,
                process_cni_args: None,
            };
            let invocations = plan::plan_all(&resolved.delegates, &ctx, Operation::Add).expect("plans");
            multus::cache::write_cache(dir.path(), "c", &resolved.delegates).expect("cache");
            // What the runtime hands each plugin.
            for d in &resolved.delegates {
                let list = d.config().to_list();
                std::hint::black_box(&list);
            }
            drop((resolved, invocations));
        });
        // Every plugin of the delegate gets the cni-args (spec §5.10 step 4): that much text is
        // the delegate's own config. The rest is what the path adds.
        let carried = annotation.len() * plugins;
        let ratio = peak as f64 / carried as f64;
        worst = worst.max(ratio);
        report.push(format!("{shape}: annotation {} B, peak {peak} B = {ratio:.1}× the config text", annotation.len()));
    }
    eprintln!("{}", report.join("\n"));
    // 10.2× (single plugin) and 13.5× (conflist) before: the selection parse built cni-args
    // twice, a conflist held its plugins twice, a delegate was parsed again from its own bytes,
    // and the delegate cache was serialised with every entry's base64 at once into a buffer
    // grown by doubling. Now 5.7–7.6×: the JSON trees of the element and of the delegate's
    // config, its bytes, the cache file.
    assert!(worst < 10.0, "a big annotation is multiplied:\n{}", report.join("\n"));
}
