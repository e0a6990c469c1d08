use super::*;
use crate::e2e_local::{local_outline, sends_check};
use crate::fixtures;
use serde_json::json;

fn cfg(keep: bool) -> KindConfig {
    KindConfig {
        cluster: "c1".into(),
        keep,
        pod_image: "img:1".into(),
        many: 3,
        workdir: PathBuf::from("/tmp/w"),
        build_image: true,
    }
}

fn lines(plan: &[Step]) -> Vec<String> {
    plan.iter().filter_map(|s| s.cmd().map(|c| c.to_string())).collect()
}

fn position(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in plan:\n{}", lines.join("\n")))
}

#[test]
fn kind_plan_order() {
    let plan = kind_plan(&cfg(false));
    let l = lines(&plan);
    let create = position(&l, "kind create cluster --name c1 --config");
    let image = position(&l, "cargo xtask image");
    let load = position(&l, "kind load docker-image multus-rs:dev --name c1");
    let plugins = position(&l, "docker cp /usr/lib/cni/macvlan c1-worker:/opt/cni/bin/macvlan");
    let apply = position(&l, "kubectl --context kind-c1 apply -k");
    let rollout = position(&l, "rollout status daemonset/kube-multus-ds");
    let nads = position(&l, "apply -f /tmp/w/objects/base.yaml");
    let pods = position(&l, "apply -f /tmp/w/objects/cases.yaml");
    let exec = position(&l, "-n multus-e2e exec macvlan -- ip -j addr show");
    let many = position(&l, "apply -f /tmp/w/objects/many.yaml");
    let restart = position(&l, "-n kube-system delete pod -l name=multus");
    let del = position(&l, "-n multus-e2e delete pod --all");
    assert!(create < image && image < load && load < plugins && plugins < apply && apply < rollout);
    assert!(rollout < nads && nads < pods && pods < exec && exec < many && many < restart && restart < del);
    assert!(l[apply].ends_with("/deployments"), "{}", l[apply]);
    assert!(matches!(&plan[1], Step::Finally { cmd, .. } if cmd.to_string() == "kind delete cluster --name c1"));
    for n in ["c1-control-plane", "c1-worker"] {
        for p in EXTRA_PLUGINS {
            position(&l, &format!("docker cp /usr/lib/cni/{p} {n}:/opt/cni/bin/{p}"));
        }
        position(&l, &format!("docker exec {n} sh -c"));
    }
    for i in 0..3 {
        position(&l, &format!("exec many-{i} -- ip -j addr show"));
    }
}

#[test]
fn kind_plan_covers_every_case_twice() {
    let plan = kind_plan(&cfg(false));
    for pod in CASE_PODS {
        let n = plan
            .iter()
            .filter(|s| matches!(s, Step::Check { check: Check::Addrs(e) | Check::Routes(e) | Check::Status(e), .. } if e.pod == pod))
            .count();
        assert_eq!(n, 6, "{pod}: addrs, routes, status before and after the restart");
    }
    assert!(plan.iter().any(|s| matches!(s, Step::Check { check: Check::NoLeases, .. })));
    assert!(plan.iter().any(|s| matches!(s, Step::Render { many: 3, .. })));
}

#[test]
fn check_is_sent_from_0_4_0() {
    for (v, want) in
        [("0.3.1", false), ("0.3.0", false), ("0.4.0", true), ("1.0.0", true), ("1.1.0", true), ("", false)]
    {
        assert_eq!(sends_check(v), want, "{v}");
    }
}

#[test]
fn keep_leaves_the_cluster() {
    let l = lines(&kind_plan(&cfg(true)));
    assert!(!l.iter().any(|c| c.contains("kind delete cluster")));
}

#[test]
fn judges_outputs() {
    let e = expectations(None).into_iter().find(|e| e.pod == "default-route").unwrap();
    let routes = r#"[{"dst":"default","gateway":"10.249.0.1","dev":"net1"},{"dst":"10.244.1.0/24","dev":"eth0"}]"#;
    assert!(judge(&Check::Routes(e.clone()), routes).is_ok());
    let both = r#"[{"dst":"default","gateway":"10.244.1.1","dev":"eth0"},{"dst":"default","gateway":"10.249.0.1","dev":"net1"}]"#;
    assert!(judge(&Check::Routes(e.clone()), both).is_err());
    let addrs = r#"[{"ifname":"eth0","address":"a","addr_info":[{"local":"10.244.1.5","prefixlen":24,"scope":"global"}]},{"ifname":"net1","address":"b","addr_info":[{"local":"10.249.0.3","prefixlen":24,"scope":"global"}]}]"#;
    assert!(judge(&Check::Addrs(e.clone()), addrs).is_ok());
    assert!(judge(&Check::ManyPod("p".into()), addrs).is_err());
    let status = json!({"metadata":{"annotations":{harness::NETWORK_STATUS:
        r#"[{"name":"kindnet","interface":"eth0","ips":["10.244.1.5"],"default":true},{"name":"multus-e2e/bridge-net","interface":"net1","ips":["10.249.0.3"]}]"#}}});
    assert!(judge(&Check::Status(e.clone()), &status.to_string()).is_ok());
    assert!(judge(&Check::Status(e), r#"{"metadata":{}}"#).is_err());
    assert!(judge(&Check::NoLeases, "/var/lib/cni/networks/macvlan-net:\nlast_reserved_ip.0\nlock\n").is_ok());
    assert!(judge(&Check::NoLeases, "/x:\n10.250.0.10\nlock\n").is_err());
}

#[test]
fn objects_render_for_kind_and_local() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = Vars::new();
    for (k, v) in
        [("NAMESPACE", NAMESPACE), ("IPAM_DIR", "/x"), ("NAD_BRIDGE", "b"), ("MACVLAN_MASTER", "m"), ("POD_IMAGE", "i")]
    {
        vars.insert(k.into(), v.into());
    }
    let f = render_objects(&vars, 2, Some("node1"), dir.path()).unwrap();
    let read = |p: &Path| fixtures::yaml_documents(&std::fs::read_to_string(p).unwrap()).unwrap();
    let cases = read(&f.cases);
    let names: Vec<&str> = cases.iter().map(|p| p["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, CASE_PODS);
    assert!(cases.iter().all(|p| p["spec"]["nodeName"] == "node1"));
    assert_eq!(read(&f.many).len(), 2);
    let f = render_objects(&vars, 1, None, dir.path()).unwrap();
    let after = read(&f.after_restart);
    assert!(after[0]["spec"].get("nodeName").is_none());
    assert_eq!(after[0]["metadata"]["name"], "after-restart");
}

#[test]
fn local_outline_mentions_the_real_parts() {
    let args = E2eArgs {
        local: true,
        container: false,
        cri: false,
        nodes: None,
        upstream: false,
        manifest: None,
        keep: false,
        dry_run: true,
        cluster: DEFAULT_CLUSTER.into(),
        pod_image: DEFAULT_POD_IMAGE.into(),
        many: 2,
        no_build: false,
    };
    let o = local_outline(&args).join("\n");
    assert!(o.contains("kubectl --kubeconfig <run>/kubeconfig apply -f") && o.contains("multus-shim"));
}

#[test]
fn the_cri_outline_has_containerd_run_the_shim() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        e2e: E2eArgs,
    }
    let cli = Cli::try_parse_from(["e2e", "--local", "--cri", "--dry-run"]).unwrap();
    let o = local_outline(&cli.e2e).join("\n");
    assert!(o.contains("containerd --config <run>/containerd/config.toml"), "{o}");
    assert!(o.contains("images import --snapshotter native"), "{o}");
    assert!(o.contains("RunPodSandbox") && !o.contains("CNI_COMMAND=ADD"), "{o}");
    // --cri needs --local and is not the docker node.
    assert!(Cli::try_parse_from(["e2e", "--cri"]).is_err());
    assert!(Cli::try_parse_from(["e2e", "--local", "--cri", "--container"]).is_err());
}
