use super::*;

#[test]
fn the_same_seed_gives_the_same_sequence() {
    let a: Vec<Op> = {
        let mut p = Planner::new(7, 8, 0.4);
        (0..500).map(|_| p.next_op()).collect()
    };
    let mut p = Planner::new(7, 8, 0.4);
    let b: Vec<Op> = (0..500).map(|_| p.next_op()).collect();
    assert_eq!(a, b);
    let mut p = Planner::new(8, 8, 0.4);
    let c: Vec<Op> = (0..500).map(|_| p.next_op()).collect();
    assert_ne!(a, c);
}

#[test]
fn slots_alternate_add_and_del_and_checks_hit_occupied_slots() {
    let mut p = Planner::new(42, 5, 0.5);
    let mut occupied = [false; 5];
    let mut faults = std::collections::BTreeSet::new();
    let mut bursts = 0;
    let ops = (0..8000).map(|_| p.next_op()).flat_map(|op| {
        if op.command == Command::Burst {
            bursts += 1;
            let slots: std::collections::BTreeSet<usize> = op.parallel.iter().map(|o| o.slot).collect();
            assert_eq!(slots.len(), op.parallel.len(), "one operation per pod in {op}");
            assert!(op.parallel.iter().all(|o| o.fault.as_ref().is_none_or(|f| f.delegate_nad().is_some())));
            op.parallel
        } else {
            vec![op]
        }
    });
    for op in ops.collect::<Vec<_>>() {
        match op.command {
            Command::Add => {
                assert!(!occupied[op.slot], "{op}");
                occupied[op.slot] = !matches!(op.fault, Some(Fault::ClientDisconnect { .. }));
            }
            Command::Check => {
                assert!(occupied[op.slot], "{op}");
                if let Some(Fault::Gc { listed }) = &op.fault {
                    assert!(listed.contains(&op.slot), "{op}");
                    assert!(listed.iter().all(|s| occupied[*s]), "GC lists live sandboxes only: {op}");
                    for (s, o) in occupied.iter_mut().enumerate() {
                        *o &= listed.contains(&s);
                    }
                }
            }
            Command::Burst => panic!("nested burst {op}"),
            Command::Del => {
                assert!(occupied[op.slot], "{op}");
                occupied[op.slot] = false;
            }
        }
        if let Some(f) = &op.fault {
            faults.insert(f.kind());
            if let Some(nad) = f.extra_nad() {
                assert!(op.networks.iter().any(|n| n == nad), "{op}");
            }
        }
    }
    assert_eq!(faults.len(), CLASSIC_KINDS.len() + ISSUE21_KINDS.len(), "every fault kind is drawn: {faults:?}");
    assert!(bursts > 100, "{bursts} bursts");
}

#[test]
fn only_enabled_kinds_are_drawn() {
    let classic = parse_fault_kinds("classic").unwrap();
    let mut p = Planner::with_faults(9, 6, 0.8, &classic);
    let kinds: std::collections::BTreeSet<&str> = (0..3000)
        .map(|_| p.next_op())
        .flat_map(|op| if op.command == Command::Burst { op.parallel } else { vec![op] })
        .filter_map(|op| op.fault.map(|f| f.kind()))
        .collect();
    assert_eq!(kinds.len(), CLASSIC_KINDS.len(), "{kinds:?}");
    assert!(kinds.iter().all(|k| CLASSIC_KINDS.contains(k)));
    assert_eq!(parse_fault_kinds("gc, grandchild,gc").unwrap(), ["gc", "grandchild"]);
    assert_eq!(parse_fault_kinds("all").unwrap().len(), 20);
    assert!(parse_fault_kinds("none").unwrap().is_empty());
    assert!(parse_fault_kinds("gcc").is_err());
}

#[test]
fn ops_round_trip_through_the_replay_file() {
    let mut p = Planner::new(3, 4, 1.0);
    let ops: Vec<Op> = (0..200).map(|_| p.next_op()).collect();
    let file = ReplayFile { seed: 3, pods: 4, fault_rate: 1.0, faults: vec!["gc".into()], ops: ops.clone() };
    let back: ReplayFile = serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
    assert_eq!(back.ops, ops);
    assert_eq!(back.faults, ["gc"]);
    let old: ReplayFile = serde_json::from_str(r#"{"seed":1,"pods":2,"fault_rate":0.3,"ops":[]}"#).unwrap();
    assert_eq!(old.faults.len(), CLASSIC_KINDS.len(), "files of older runs: the classic kinds");
}
