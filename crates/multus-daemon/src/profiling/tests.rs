use super::*;
use pprof::protos::Message as _;
use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn seconds_follow_go_and_are_bounded() {
    assert_eq!(profile_seconds(None), Ok(DEFAULT_SECONDS));
    assert_eq!(profile_seconds(Some("seconds=2")), Ok(2));
    assert_eq!(profile_seconds(Some("debug=1&seconds=5")), Ok(5));
    for defaulted in ["seconds=0", "seconds=-3", "seconds=x", "other=1"] {
        assert_eq!(profile_seconds(Some(defaulted)), Ok(DEFAULT_SECONDS), "{defaulted}");
    }
    assert_eq!(profile_seconds(Some("seconds=600")), Ok(600));
    assert!(profile_seconds(Some("seconds=601")).unwrap_err().contains("exceeds the maximum of 600s"));
}

#[inline(never)]
fn busy_loop_for_the_profiler(stop: &AtomicBool) -> u64 {
    let mut x = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    x
}

/// The body as `go tool pprof` reads it: gzip, then a `perftools.profiles.Profile`.
fn decode(body: &[u8]) -> pprof::protos::Profile {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut raw).expect("gzip");
    pprof::protos::Profile::parse_from_bytes(&raw).expect("a perftools.profiles.Profile")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_profile_of_a_busy_process_is_a_pprof_profile_with_its_samples() {
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || busy_loop_for_the_profiler(&stop))
    };
    // One profile at a time, process-wide (Go's answer while one is running). The running one
    // is held here, not raced for: on a loaded machine a spawned profile may not have started
    // 200 ms later (seen in CI).
    {
        let _running = pprof::ProfilerGuardBuilder::default().frequency(FREQUENCY).build().expect("a profiler");
        let second = answer("/debug/pprof/profile", Some("seconds=1")).await;
        assert_eq!(second.status, 500);
        assert_eq!(
            String::from_utf8_lossy(&second.body),
            "Could not enable CPU profiling: cpu profiling already in use\n"
        );
    }

    let answer = answer("/debug/pprof/profile", Some("seconds=1")).await;
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    assert_eq!((answer.status, answer.content_type, answer.attachment), (200, "application/octet-stream", true));
    let profile = decode(&answer.body);
    let string = |i: i64| profile.string_table[usize::try_from(i).unwrap()].clone();
    let types: Vec<(String, String)> = profile.sample_type.iter().map(|t| (string(t.ty), string(t.unit))).collect();
    assert_eq!(types, [("samples".into(), "count".into()), ("cpu".into(), "nanoseconds".into())]);
    assert_eq!(profile.period, 1_000_000_000 / i64::from(FREQUENCY));
    assert!(profile.duration_nanos >= 900_000_000, "{}", profile.duration_nanos);
    let samples: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    assert!(samples > 0, "no samples in a second of a busy loop");
    // The busy function is named in the profile (the unwinder and symbols work).
    let names: Vec<String> = profile.function.iter().map(|f| string(f.name)).collect();
    assert!(names.iter().any(|n| n.contains("busy_loop_for_the_profiler")), "{names:?}");
}

#[tokio::test]
async fn what_go_has_and_this_process_has_not_is_a_501_that_says_what_exists() {
    for path in ["/debug/pprof/heap", "/debug/pprof/allocs"] {
        let a = answer(path, None).await;
        let body = String::from_utf8(a.body).unwrap();
        assert_eq!(a.status, 501, "{path}");
        assert!(body.contains("/debug/state") && body.contains("/debug/pprof/profile"), "{body}");
    }
    for path in ["/debug/pprof/goroutine", "/debug/pprof/trace", "/debug/pprof/symbol"] {
        let a = answer(path, None).await;
        assert_eq!(a.status, 501, "{path}");
        assert!(String::from_utf8(a.body).unwrap().contains("/debug/pprof/profile"));
    }
    assert_eq!(answer("/debug/pprof/nothing", None).await.status, 404);
    let index = answer("/debug/pprof/", None).await;
    assert_eq!(index.status, 200);
    assert!(String::from_utf8(index.body).unwrap().contains("/debug/pprof/profile?seconds=N"));
    let cmdline = answer("/debug/pprof/cmdline", None).await;
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(String::from_utf8(cmdline.body).unwrap(), args.join("\0"));
    assert_eq!(answer("/debug/pprof/profile", Some("seconds=601")).await.status, 400);
}
