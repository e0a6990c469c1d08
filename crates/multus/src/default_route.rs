//! `default-route` handling (spec §5.15): the gateway check over all delegates, the actions the
//! daemon takes in the pod netns after a delegate's ADD, and the edits of that attachment's libcni
//! result cache (applied by the daemon through the cni runtime's cache-edit hook).
//!
//! Decisions (quirk 24):
//!
//! * the gateway check and the `IsFilterV4Gateway`/`IsFilterV6Gateway` flags are the reference's
//!   (they are stored in the delegate cache, and a pod asking `default-route` on `net1` is meant
//!   to lose the default routes of the other interfaces);
//! * in the netns, only default routes of the flagged families are removed, and only on the
//!   delegate's interface (the reference removes both families whatever the flags, and on every
//!   link when the lookup of the interface fails — the daemon must fail instead);
//! * cache edits match any default route of the family (prefix length 0: `0.0.0.0/0`, `::/0`,
//!   `::0/0`…), not only the literal `::0/0`;
//! * cache routes without a `dst` are dropped when the cache is edited, as in the reference: such a
//!   route is invalid (`dst` is required) and would make the cached result unparseable as the
//!   `prevResult` of CHECK/DEL;
//! * appended default routes use the reference's spelling (`0.0.0.0/0`, `::0/0`, and `::/0` in
//!   0.1.0/0.2.0 results) so the cache reads the same as the Go daemon's.

use crate::delegate::Delegate;
use cni::result::CniResult;
use serde_json::{Map, Value, json};
use std::net::IpAddr;

/// Why `default-route` requests cannot be honoured; the texts are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefaultRouteError {
    /// More than one gateway of one IP family was requested across the delegates.
    #[error("multus does not support ECMP for default-route")]
    Ecmp,
    /// A cached result has a `cniVersion` whose routes cannot be edited.
    #[error("not supported version: {0}")]
    UnsupportedVersion(String),
    /// A cached result's routes do not have the expected shape.
    #[error("wrong format: {0}")]
    Format(String),
}

/// Whether the gateway check must run: some delegate has a `default-route` list (even empty).
pub fn needs_gateway_check(delegates: &[Delegate]) -> bool {
    delegates.iter().any(|d| d.default_route.is_some())
}

/// `CheckGatewayConfig`: more than one IPv4 or more than one IPv6 gateway across all delegates is
/// an error; otherwise every delegate is marked filter-v4 and filter-v6, except for the families
/// its own list contains.
pub fn check_gateway_config(delegates: &mut [Delegate]) -> Result<(), DefaultRouteError> {
    let all = || delegates.iter().flat_map(|d| d.default_route.iter().flatten());
    let v4 = all().filter(|ip| ip.is_ipv4()).count();
    let v6 = all().filter(|ip| ip.is_ipv6()).count();
    if v4 > 1 || v6 > 1 {
        return Err(DefaultRouteError::Ecmp);
    }
    for d in delegates.iter_mut() {
        let list = d.default_route.as_deref().unwrap_or(&[]);
        d.filter_v4_gateway = !list.iter().any(IpAddr::is_ipv4);
        d.filter_v6_gateway = !list.iter().any(IpAddr::is_ipv6);
    }
    Ok(())
}

/// Run the check only when needed (§5.10 step 7).
pub fn apply_gateway_check(delegates: &mut [Delegate]) -> Result<(), DefaultRouteError> {
    if needs_gateway_check(delegates) { check_gateway_config(delegates) } else { Ok(()) }
}

/// What the daemon does after a delegate's successful ADD.
///
/// Netns side, on the delegate's interface only: remove the default routes (routes without
/// destination) of each flagged family, then add a default route via each gateway of
/// `add_gateways` (an existing identical route is tolerated). Cache side: apply
/// [`remove_default_routes`] with the same flags, then [`add_default_routes`]. Errors fail the ADD
/// ("error deleting default gateway…", "error setting default gateway…"), without rollback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteActions {
    /// Remove the IPv4 default routes the delegate installed.
    pub delete_default_v4: bool,
    /// Remove the IPv6 default routes the delegate installed.
    pub delete_default_v6: bool,
    /// Gateways to install default routes through.
    pub add_gateways: Vec<IpAddr>,
}

impl RouteActions {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        !self.delete_default_v4 && !self.delete_default_v6 && self.add_gateways.is_empty()
    }
}

/// The actions for `delegate` given its ADD result (none when the result has neither interfaces
/// nor IPs).
pub fn route_actions(delegate: &Delegate, result: &CniResult) -> RouteActions {
    if result.interfaces.is_empty() && result.ips.is_empty() {
        return RouteActions::default();
    }
    planned_route_actions(delegate)
}

/// The actions [`route_actions`] takes for `delegate` once its ADD produced an interface or an
/// address, known before anything runs (used by `multusctl explain` to show them ahead).
pub fn planned_route_actions(delegate: &Delegate) -> RouteActions {
    let gws = delegate.default_route.clone().unwrap_or_default();
    RouteActions {
        delete_default_v4: delegate.filter_v4_gateway || gws.iter().any(IpAddr::is_ipv4),
        delete_default_v6: delegate.filter_v6_gateway || gws.iter().any(IpAddr::is_ipv6),
        add_gateways: gws,
    }
}

enum Shape {
    Legacy,
    Current,
}

fn shape_of(result: &Value) -> Result<Shape, DefaultRouteError> {
    let version = result.get("cniVersion").and_then(Value::as_str).unwrap_or("");
    match version {
        "0.1.0" | "0.2.0" => Ok(Shape::Legacy),
        "0.3.0" | "0.3.1" | "0.4.0" | "1.0.0" | "1.1.0" => Ok(Shape::Current),
        other => Err(DefaultRouteError::UnsupportedVersion(other.to_string())),
    }
}

/// Keep a route unless it is a default route of a removed family; routes without a parseable
/// `dst` string are dropped (see module docs).
fn keep_route(route: &Value, v4: bool, v6: bool) -> bool {
    let Some(dst) = route.get("dst").and_then(Value::as_str) else { return false };
    match dst.parse::<ipnet::IpNet>() {
        Ok(net) if net.prefix_len() == 0 => !((net.addr().is_ipv4() && v4) || (net.addr().is_ipv6() && v6)),
        Ok(_) => true,
        Err(_) => !dst.is_empty(),
    }
}

fn filter_routes(obj: &mut Map<String, Value>, v4: bool, v6: bool) -> Result<(), DefaultRouteError> {
    let Some(routes) = obj.get_mut("routes") else { return Ok(()) };
    match routes {
        Value::Null => {}
        Value::Array(list) => list.retain(|r| keep_route(r, v4, v6)),
        other => return Err(DefaultRouteError::Format(format!("routes is {}", crate::delegate::json_kind(other)))),
    }
    if routes.as_array().is_none_or(Vec::is_empty) {
        obj.shift_remove("routes");
    }
    Ok(())
}

/// Remove the default routes of the flagged families from a cached result (the `result` object
/// of a libcni cache file); an empty `routes` is removed. 0.1.0/0.2.0 results are edited inside
/// `ip4`/`ip6`.
pub fn remove_default_routes(result: &mut Value, v4: bool, v6: bool) -> Result<(), DefaultRouteError> {
    let shape = shape_of(result)?;
    let Value::Object(obj) = result else { return Err(DefaultRouteError::Format("result is not an object".into())) };
    match shape {
        Shape::Legacy => {
            for key in ["ip4", "ip6"] {
                match obj.get_mut(key) {
                    Some(Value::Object(ipc)) => filter_routes(ipc, v4, v6)?,
                    None | Some(Value::Null) => {}
                    Some(_) => return Err(DefaultRouteError::Format(format!("{key} is not an object"))),
                }
            }
        }
        Shape::Current => filter_routes(obj, v4, v6)?,
    }
    Ok(())
}

fn push_route(obj: &mut Map<String, Value>, route: Value) -> Result<(), DefaultRouteError> {
    let routes = obj.entry("routes").or_insert_with(|| json!([]));
    if routes.is_null() {
        *routes = json!([]);
    }
    let Value::Array(list) = routes else { return Err(DefaultRouteError::Format("routes is not a list".into())) };
    list.push(route);
    Ok(())
}

/// Append a default route via each gateway to a cached result.
pub fn add_default_routes(result: &mut Value, gateways: &[IpAddr]) -> Result<(), DefaultRouteError> {
    let shape = shape_of(result)?;
    let Value::Object(obj) = result else { return Err(DefaultRouteError::Format("result is not an object".into())) };
    for gw in gateways {
        match shape {
            Shape::Legacy => {
                let (key, dst) = if gw.is_ipv4() { ("ip4", "0.0.0.0/0") } else { ("ip6", "::/0") };
                let Some(Value::Object(ipc)) = obj.get_mut(key) else {
                    return Err(DefaultRouteError::Format(format!("no {key} in the result for gateway {gw}")));
                };
                push_route(ipc, json!({"dst": dst, "gw": gw.to_string()}))?;
            }
            Shape::Current => {
                let dst = if gw.is_ipv4() { "0.0.0.0/0" } else { "::0/0" };
                push_route(obj, json!({"dst": dst, "gw": gw.to_string()}))?;
            }
        }
    }
    Ok(())
}

/// Both cache edits of [`RouteActions`], in the reference's order.
pub fn apply_cache_edits(result: &mut Value, actions: &RouteActions) -> Result<(), DefaultRouteError> {
    if actions.delete_default_v4 || actions.delete_default_v6 {
        remove_default_routes(result, actions.delete_default_v4, actions.delete_default_v6)?;
    }
    if !actions.add_gateways.is_empty() {
        add_default_routes(result, &actions.add_gateways)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delegate::load_delegate;

    fn d(gw: Option<Vec<&str>>) -> Delegate {
        let mut d = load_delegate(br#"{"name":"n","type":"t"}"#, None, "", "").unwrap();
        d.default_route = gw.map(|l| l.into_iter().map(|s| s.parse().unwrap()).collect());
        d
    }

    #[test]
    fn gateway_check() {
        let mut ds = vec![d(None), d(Some(vec!["10.1.1.254"])), d(Some(vec!["fd00::1"]))];
        assert!(needs_gateway_check(&ds));
        check_gateway_config(&mut ds).unwrap();
        assert_eq!((ds[0].filter_v4_gateway, ds[0].filter_v6_gateway), (true, true));
        assert_eq!((ds[1].filter_v4_gateway, ds[1].filter_v6_gateway), (false, true));
        assert_eq!((ds[2].filter_v4_gateway, ds[2].filter_v6_gateway), (true, false));

        let mut ecmp = vec![d(Some(vec!["10.0.0.1"])), d(Some(vec!["10.0.0.2"]))];
        assert_eq!(
            check_gateway_config(&mut ecmp).unwrap_err().to_string(),
            "multus does not support ECMP for default-route"
        );
        let mut ecmp = vec![d(Some(vec!["fd00::1", "fd00::2"]))];
        assert_eq!(apply_gateway_check(&mut ecmp), Err(DefaultRouteError::Ecmp));

        let mut none = vec![d(None), d(None)];
        apply_gateway_check(&mut none).unwrap();
        assert!(none.iter().all(|d| !d.filter_v4_gateway && !d.filter_v6_gateway));
        let mut empty = vec![d(None), d(Some(vec![]))];
        apply_gateway_check(&mut empty).unwrap();
        assert!(empty.iter().all(|d| d.filter_v4_gateway && d.filter_v6_gateway));
    }

    #[test]
    fn actions() {
        let r = CniResult::from_value(&json!({"cniVersion":"1.0.0","interfaces":[{"name":"net1","sandbox":"/ns"}]}))
            .unwrap();
        let mut ds = vec![d(None), d(Some(vec!["10.1.1.254"]))];
        check_gateway_config(&mut ds).unwrap();
        assert_eq!(
            route_actions(&ds[0], &r),
            RouteActions { delete_default_v4: true, delete_default_v6: true, add_gateways: vec![] }
        );
        assert_eq!(
            route_actions(&ds[1], &r),
            RouteActions {
                delete_default_v4: true,
                delete_default_v6: true,
                add_gateways: vec!["10.1.1.254".parse().unwrap()]
            }
        );
        let empty = CniResult::from_value(&json!({"cniVersion":"1.0.0"})).unwrap();
        assert!(route_actions(&ds[1], &empty).is_empty());
        assert!(route_actions(&d(None), &r).is_empty());
        // Known ahead: the same actions as after an ADD with an interface.
        for delegate in &ds {
            assert_eq!(planned_route_actions(delegate), route_actions(delegate, &r));
        }
        assert!(!planned_route_actions(&ds[1]).is_empty());
    }

    #[test]
    fn remove_from_current_results() {
        // §12.6 item 74: 0.3.x/0.4.0, 1.0.0, 1.1.0
        for v in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            let mut r = json!({"cniVersion": v, "ips":[{"address":"10.0.0.2/24"}], "routes":[
                {"dst":"0.0.0.0/0","gw":"10.0.0.1"},{"dst":"::0/0","gw":"fd00::1"},{"dst":"::/0"},
                {"dst":"10.9.0.0/16"},{"gw":"10.0.0.1"}]});
            remove_default_routes(&mut r, true, false).unwrap();
            assert_eq!(
                r["routes"],
                json!([{"dst":"::0/0","gw":"fd00::1"},{"dst":"::/0"},{"dst":"10.9.0.0/16"}]),
                "{v}"
            );
            remove_default_routes(&mut r, false, true).unwrap();
            assert_eq!(r["routes"], json!([{"dst":"10.9.0.0/16"}]));
            let mut r = json!({"cniVersion": v, "routes":[{"dst":"0.0.0.0/0"}]});
            remove_default_routes(&mut r, true, true).unwrap();
            assert_eq!(r, json!({"cniVersion": v}));
            let mut r = json!({"cniVersion": v});
            remove_default_routes(&mut r, true, true).unwrap();
            assert_eq!(r, json!({"cniVersion": v}));
        }
    }

    #[test]
    fn remove_from_legacy_results() {
        let mut r = json!({"cniVersion":"0.2.0",
            "ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"},{"dst":"10.2.0.0/16"}]},
            "ip6":{"ip":"fd00::5/64","routes":[{"dst":"::/0","gw":"fd00::1"}]}});
        remove_default_routes(&mut r, true, true).unwrap();
        assert_eq!(r["ip4"]["routes"], json!([{"dst":"10.2.0.0/16"}]));
        assert!(r["ip6"].get("routes").is_none());
        let mut r = json!({"cniVersion":"0.1.0","ip4":{"ip":"10.1.0.5/16","routes":[{"dst":"0.0.0.0/0"}]}});
        remove_default_routes(&mut r, true, false).unwrap();
        assert_eq!(r, json!({"cniVersion":"0.1.0","ip4":{"ip":"10.1.0.5/16"}}));
    }

    #[test]
    fn add_to_results() {
        let gws: Vec<IpAddr> = vec!["10.1.1.254".parse().unwrap(), "fd00::1".parse().unwrap()];
        for v in ["0.4.0", "1.0.0", "1.1.0"] {
            let mut r = json!({"cniVersion": v});
            add_default_routes(&mut r, &gws).unwrap();
            assert_eq!(r["routes"], json!([{"dst":"0.0.0.0/0","gw":"10.1.1.254"},{"dst":"::0/0","gw":"fd00::1"}]));
            let mut r = json!({"cniVersion": v, "routes":[{"dst":"10.9.0.0/16"}]});
            add_default_routes(&mut r, &gws[..1]).unwrap();
            assert_eq!(r["routes"], json!([{"dst":"10.9.0.0/16"},{"dst":"0.0.0.0/0","gw":"10.1.1.254"}]));
        }
        let mut r = json!({"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/16"},"ip6":{"ip":"fd00::5/64","routes":[]}});
        add_default_routes(&mut r, &gws).unwrap();
        assert_eq!(r["ip4"]["routes"], json!([{"dst":"0.0.0.0/0","gw":"10.1.1.254"}]));
        assert_eq!(r["ip6"]["routes"], json!([{"dst":"::/0","gw":"fd00::1"}]));
        let mut r = json!({"cniVersion":"0.2.0"});
        assert!(matches!(add_default_routes(&mut r, &gws), Err(DefaultRouteError::Format(_))));
    }

    #[test]
    fn unsupported_versions() {
        let mut r = json!({"cniVersion":"0.9.0","routes":[]});
        assert_eq!(remove_default_routes(&mut r, true, true).unwrap_err().to_string(), "not supported version: 0.9.0");
        assert_eq!(add_default_routes(&mut r, &[]).unwrap_err().to_string(), "not supported version: 0.9.0");
        let mut r = json!({"routes":[]});
        assert_eq!(remove_default_routes(&mut r, true, true).unwrap_err().to_string(), "not supported version: ");
    }

    #[test]
    fn combined_edit_round_trips_through_the_result_parser() {
        let mut r = json!({"cniVersion":"1.0.0","interfaces":[{"name":"net1","sandbox":"/ns"}],
            "ips":[{"address":"10.1.1.11/24","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.1.1"}]});
        let actions = RouteActions {
            delete_default_v4: true,
            delete_default_v6: true,
            add_gateways: vec!["10.1.1.254".parse().unwrap()],
        };
        apply_cache_edits(&mut r, &actions).unwrap();
        let parsed = CniResult::from_value(&r).unwrap();
        assert_eq!(parsed.routes.len(), 1);
        assert_eq!(parsed.routes[0].gw, Some("10.1.1.254".parse().unwrap()));
    }
}
