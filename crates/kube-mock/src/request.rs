//! Parsing of HTTP requests into operations, before anything acts on them.

use std::collections::BTreeMap;

use http::Method;

use crate::discovery::IncludeObject;
use crate::patch::PatchKind;
use crate::resources::{Registry, ResourceDef};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::DeleteOptions;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz`
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    ResourceList {
        /// API group (`""` for the core group).
        group: String,
        /// Group version.
        version: String,
    },
    /// `/openapi/v2`
    OpenApiV2,
    /// `/openapi/v3`
    OpenApiV3Index,
    /// `/openapi/v3/api/<version>` or `/openapi/v3/apis/<group>/<version>`
    OpenApiV3 {
        /// API group (`""` for the core group).
        group: String,
        /// Group version.
        version: String,
    },
    /// Anything under a served resource's path.
    Resource(Box<ResourceRequest>),
    /// `/_mock/<path>`: the admin API.
    Admin(String),
}

/// The verb of a resource request, as RBAC names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Read one object.
    Get,
    /// List a collection.
    List,
    /// Watch a collection or an object (`watch=true`).
    Watch,
    /// POST a new object.
    Create,
    /// PUT a whole object.
    Update,
    /// PATCH an object, in this patch format.
    Patch(PatchKind),
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    DeleteCollection,
}

impl Verb {
    /// The verb's RBAC name (`get`, `deletecollection`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch(_) => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// Options of list and watch requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: LabelSelector,
    /// `fieldSelector`.
    pub field_selector: FieldSelector,
    /// `limit`: the page size.
    pub limit: Option<usize>,
    /// `continue`: where the previous page ended.
    pub continue_token: Option<String>,
    /// `resourceVersion`: where a watch starts.
    pub resource_version: Option<String>,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `timeoutSeconds`: when the server ends a watch.
    pub timeout_seconds: Option<u64>,
    /// `sendInitialEvents`: a watch starts with the current objects.
    pub send_initial_events: bool,
}

/// The form of the answer, from the `Accept` header's `as`, `g` and `v` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// The objects themselves.
    #[default]
    Object,
    /// `as=Table;g=meta.k8s.io;v=v1` (kubectl's human-readable get).
    Table,
    /// `as=PartialObjectMetadata;g=meta.k8s.io;v=v1` (or `v1beta1`): metadata only, for get and
    /// watch.
    PartialObjectMetadata(MetaVersion),
    /// `as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (or `v1beta1`): metadata only, for list.
    PartialObjectMetadataList(MetaVersion),
}

/// The `meta.k8s.io` version a metadata-only answer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaVersion {
    /// `meta.k8s.io/v1`.
    V1,
    /// `meta.k8s.io/v1beta1`.
    V1beta1,
}

impl MetaVersion {
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`.
    pub fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// The answer's form for an `Accept` header, as the API server negotiates it: the first media
/// range that is served wins (JSON, YAML, protobuf or a wildcard — answers are JSON anyway), a
/// range asking for a conversion the server does not do is skipped, and when no range is
/// acceptable the answer is 406.
pub fn negotiate_output(accept: &str) -> Result<Output, ApiError> {
    if accept.trim().is_empty() {
        return Ok(Output::Object);
    }
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let (mut as_kind, mut group, mut version) = (None, None, None);
        for param in parts {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            let value = value.trim().trim_matches('"');
            match key.trim() {
                "as" => as_kind = Some(value),
                "g" => group = Some(value),
                "v" => version = Some(value),
                _ => {}
            }
        }
        let textual = matches!(media.as_str(), "application/json" | "application/yaml" | "application/*" | "*/*");
        if !textual && media != "application/vnd.kubernetes.protobuf" {
            continue;
        }
        let Some(kind) = as_kind else {
            return Ok(Output::Object);
        };
        let meta_version = match (group, version) {
            (Some("meta.k8s.io"), Some("v1")) => MetaVersion::V1,
            (Some("meta.k8s.io"), Some("v1beta1")) => MetaVersion::V1beta1,
            _ => continue,
        };
        match kind {
            "Table" if textual => return Ok(Output::Table),
            "PartialObjectMetadata" => return Ok(Output::PartialObjectMetadata(meta_version)),
            "PartialObjectMetadataList" => return Ok(Output::PartialObjectMetadataList(meta_version)),
            _ => continue,
        }
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
    ))
}

/// An operation on a served resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRequest {
    /// The served resource.
    pub def: ResourceDef,
    /// What to do.
    pub verb: Verb,
    /// Namespace from the path (None for cluster-scoped requests and all-namespace lists).
    pub namespace: Option<String>,
    /// Object name from the path (None for collection requests).
    pub name: Option<String>,
    /// `status` for `pods/<name>/status`.
    pub subresource: Option<String>,
    /// List and watch options from the query.
    pub options: ListOptions,
    /// The form of the answer the client asked for (Table, metadata only).
    pub output: Output,
    /// What a Table row embeds (`includeObject`).
    pub include_object: IncludeObject,
    /// `dryRun=All`: validate and answer, but store nothing.
    pub dry_run: bool,
    /// DeleteOptions from the query (`propagationPolicy`, `gracePeriodSeconds`,
    /// `orphanDependents`); a DELETE body replaces them.
    pub delete_options: DeleteOptions,
}

impl ResourceRequest {
    /// Whether the client asked for a Table.
    pub fn as_table(&self) -> bool {
        self.output == Output::Table
    }

    /// `pods` or `pods/status`, as RBAC and deny rules name it.
    pub fn resource_name(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.def.plural),
            None => self.def.plural.clone(),
        }
    }
}

/// Decodes `%XX` escapes and `+` in a query component. Invalid escapes are kept verbatim.
pub fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as a map of decoded keys and values (a later repeated key wins).
pub fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn truthy(value: Option<&String>) -> bool {
    matches!(value.map(String::as_str), Some("true" | "1" | "True"))
}

fn parse_list_options(query: &BTreeMap<String, String>, plural: &str) -> Result<ListOptions, ApiError> {
    let number = |key: &str| -> Result<Option<u64>, ApiError> {
        query
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid {key} {v:?}: not a number"))))
            .transpose()
    };
    Ok(ListOptions {
        label_selector: LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {}", e.0)))?,
        field_selector: FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""), plural)
            .map_err(|e| ApiError::bad_request(e.0))?,
        limit: number("limit")?.filter(|l| *l > 0).map(|l| l as usize),
        continue_token: query.get("continue").filter(|c| !c.is_empty()).cloned(),
        resource_version: query.get("resourceVersion").cloned(),
        allow_bookmarks: truthy(query.get("allowWatchBookmarks")),
        timeout_seconds: number("timeoutSeconds")?,
        send_initial_events: truthy(query.get("sendInitialEvents")),
    })
}

/// Routes a request. `admin_prefix` (e.g. `/_mock`) is checked first.
pub fn route(
    method: &Method,
    path: &str,
    query: Option<&str>,
    accept: &str,
    content_type: &str,
    registry: &Registry,
    admin_prefix: &str,
) -> Result<Route, ApiError> {
    if let Some(rest) = path.strip_prefix(admin_prefix)
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return Ok(Route::Admin(rest.trim_start_matches('/').to_string()));
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError::new(404, "NotFound", "the server could not find the requested resource");
    let read_only = |route: Route| {
        if method == Method::GET || method == Method::HEAD {
            Ok(route)
        } else {
            Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method ({method}) on the requested resource"
            )))
        }
    };
    match segments.as_slice() {
        ["version"] => read_only(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => read_only(Route::Health),
        ["api"] => read_only(Route::CoreVersions),
        ["apis"] => read_only(Route::Groups),
        ["openapi", "v2"] => read_only(Route::OpenApiV2),
        ["openapi", "v3"] => read_only(Route::OpenApiV3Index),
        ["openapi", "v3", "api", version] => {
            read_only(Route::OpenApiV3 { group: String::new(), version: version.to_string() })
        }
        ["openapi", "v3", "apis", group, version] => {
            read_only(Route::OpenApiV3 { group: group.to_string(), version: version.to_string() })
        }
        ["api", version] if registry.serves_group_version("", version) => {
            read_only(Route::ResourceList { group: String::new(), version: version.to_string() })
        }
        ["apis", group] if registry.groups().iter().any(|(g, _)| g == group) => {
            read_only(Route::Group(group.to_string()))
        }
        ["apis", group, version] if registry.serves_group_version(group, version) => {
            read_only(Route::ResourceList { group: group.to_string(), version: version.to_string() })
        }
        ["api", version, rest @ ..] if !rest.is_empty() => {
            resource_route(method, "", version, rest, query, accept, content_type, registry)
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            resource_route(method, group, version, rest, query, accept, content_type, registry)
        }
        _ => Err(not_found()),
    }
}

#[allow(clippy::too_many_arguments)]
fn resource_route(
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: Option<&str>,
    accept: &str,
    content_type: &str,
    registry: &Registry,
) -> Result<Route, ApiError> {
    let not_found = || ApiError::new(404, "NotFound", "the server could not find the requested resource");
    // Legacy `/watch/` paths: /api/v1/watch/namespaces/ns/pods.
    let (legacy_watch, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let find = |plural: &str| registry.find(group, version, plural);
    // Split into (namespace, resource, name, subresource).
    let (namespace, def, name, subresource) = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|d| d.namespaced) => {
            let def = find(plural).ok_or_else(not_found)?;
            match tail {
                [] => (Some(ns.to_string()), def, None, None),
                [name] => (Some(ns.to_string()), def, Some(name.to_string()), None),
                [name, sub] => (Some(ns.to_string()), def, Some(name.to_string()), Some(sub.to_string())),
                _ => return Err(not_found()),
            }
        }
        [plural, tail @ ..] => {
            let def = find(plural).ok_or_else(not_found)?;
            match tail {
                [] => (None, def, None, None),
                // A name under a namespaced resource without a namespace is not a route.
                [_, ..] if def.namespaced => return Err(not_found()),
                [name] => (None, def, Some(name.to_string()), None),
                [name, sub] => (None, def, Some(name.to_string()), Some(sub.to_string())),
                _ => return Err(not_found()),
            }
        }
        [] => return Err(not_found()),
    };
    if let Some(sub) = &subresource
        && !def.serves_subresource(sub)
    {
        return Err(not_found());
    }
    let query = parse_query(query);
    let watch = legacy_watch || truthy(query.get("watch"));
    let verb = match (method, name.is_some()) {
        (&Method::GET, true) if watch => Verb::Watch,
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) if watch => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::POST, false) if subresource.is_none() => Verb::Create,
        // TokenRequest: POST serviceaccounts/<name>/token.
        (&Method::POST, true) if subresource.as_deref().is_some_and(|s| def.serves_create_subresource(s)) => {
            Verb::Create
        }
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch(
            PatchKind::from_content_type(content_type).ok_or_else(|| ApiError::unsupported_media_type(content_type))?,
        ),
        (&Method::DELETE, true) if subresource.is_none() => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method ({method}) on the requested resource"
            )));
        }
    };
    let mut options = parse_list_options(&query, &def.plural)?;
    if let (Verb::Watch, Some(n)) = (verb, &name) {
        // Watching one object is a watch with a name field selector.
        options.field_selector.0.push(crate::selector::FieldRequirement {
            field: "metadata.name".into(),
            value: n.clone(),
            negated: false,
        });
    }
    let name = if verb == Verb::Watch { None } else { name };
    let delete_options = if matches!(verb, Verb::Delete | Verb::DeleteCollection) {
        DeleteOptions::from_query(&query)?
    } else {
        DeleteOptions::default()
    };
    Ok(Route::Resource(Box::new(ResourceRequest {
        namespace: if def.namespaced { namespace } else { None },
        verb,
        name,
        subresource,
        options,
        output: negotiate_output(accept)?,
        include_object: IncludeObject::parse(query.get("includeObject").map(String::as_str)),
        dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
        delete_options,
        def,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: Method, path: &str, query: Option<&str>) -> Result<Route, ApiError> {
        route(&method, path, query, "application/json", "application/json", &Registry::with_builtins(), "/_mock")
    }

    fn resource(method: Method, path: &str, query: Option<&str>) -> ResourceRequest {
        match r(method, path, query).unwrap() {
            Route::Resource(req) => *req,
            other => panic!("not a resource route: {other:?}"),
        }
    }

    #[test]
    fn routes_discovery_and_admin() {
        assert_eq!(r(Method::GET, "/api", None).unwrap(), Route::CoreVersions);
        assert_eq!(r(Method::GET, "/apis/k8s.cni.cncf.io", None).unwrap(), Route::Group("k8s.cni.cncf.io".into()));
        assert!(matches!(r(Method::GET, "/apis/apps/v1", None).unwrap(), Route::ResourceList { .. }));
        assert_eq!(r(Method::POST, "/_mock/faults", None).unwrap(), Route::Admin("faults".into()));
        assert_eq!(r(Method::POST, "/api", None).unwrap_err().code, 405);
        assert_eq!(r(Method::GET, "/apis/nope/v1", None).unwrap_err().code, 404);
    }

    #[test]
    fn routes_resources_like_client_go() {
        let list = resource(
            Method::GET,
            "/api/v1/pods",
            Some("fieldSelector=spec.nodeName%3Dnode1&limit=500&resourceVersion=0"),
        );
        assert_eq!(list.verb, Verb::List);
        assert_eq!(list.options.field_selector.pinned("spec.nodeName"), Some("node1"));
        assert_eq!(list.options.limit, Some(500));
        let watch = resource(
            Method::GET,
            "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions",
            Some("allowWatchBookmarks=true&resourceVersion=1020&timeout=9m43s&timeoutSeconds=583&watch=true"),
        );
        assert_eq!(watch.verb, Verb::Watch);
        assert!(watch.options.allow_bookmarks);
        assert_eq!(watch.options.timeout_seconds, Some(583));
        let status = resource(Method::PUT, "/api/v1/namespaces/default/pods/pod1/status", None);
        assert_eq!((status.verb, status.resource_name().as_str()), (Verb::Update, "pods/status"));
        assert_eq!(status.namespace.as_deref(), Some("default"));
        let ns = resource(Method::GET, "/api/v1/namespaces/default", None);
        assert_eq!((ns.def.plural.as_str(), ns.name.as_deref()), ("namespaces", Some("default")));
        let legacy = resource(Method::GET, "/api/v1/watch/namespaces/default/pods/p", None);
        assert_eq!(legacy.verb, Verb::Watch);
        assert_eq!(legacy.options.field_selector.pinned("metadata.name"), Some("p"));
    }

    #[test]
    fn rejects_bad_requests() {
        assert_eq!(r(Method::GET, "/api/v1/pods", Some("labelSelector=a%20in%20b")).unwrap_err().code, 400);
        assert_eq!(r(Method::GET, "/api/v1/pods", Some("fieldSelector=spec.foo%3D1")).unwrap_err().code, 400);
        assert_eq!(r(Method::GET, "/api/v1/pods", Some("limit=abc")).unwrap_err().code, 400);
        assert_eq!(r(Method::GET, "/api/v1/configmaps/x/status", None).unwrap_err().code, 404);
        assert_eq!(r(Method::POST, "/api/v1/namespaces/default/pods/p", None).unwrap_err().code, 405);
        assert_eq!(r(Method::GET, "/api/v1/namespaces/default/configmaps/x/status", None).unwrap_err().code, 404);
        assert_eq!(r(Method::GET, "/api/v1/a/b/c/d/e/f", None).unwrap_err().code, 404);
        let patch = route(
            &Method::PATCH,
            "/api/v1/namespaces/default/pods/p",
            None,
            "",
            "text/plain",
            &Registry::with_builtins(),
            "/_mock",
        );
        assert_eq!(patch.unwrap_err().code, 415);
    }

    #[test]
    fn accept_headers_choose_the_output() {
        assert_eq!(negotiate_output("").unwrap(), Output::Object);
        assert_eq!(negotiate_output("application/json, */*").unwrap(), Output::Object);
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate_output(kubectl).unwrap(), Output::Table);
        assert_eq!(
            negotiate_output("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").unwrap(),
            Output::PartialObjectMetadataList(MetaVersion::V1)
        );
        let client_go = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(negotiate_output(client_go).unwrap(), Output::PartialObjectMetadata(MetaVersion::V1));
        // An unknown conversion is skipped; nothing acceptable is a 406.
        assert_eq!(
            negotiate_output("application/json;as=Foo;g=meta.k8s.io;v=v1,application/json").unwrap(),
            Output::Object
        );
        assert_eq!(negotiate_output("text/html").unwrap_err().code, 406);
        assert_eq!(negotiate_output("application/json;as=Table").unwrap_err().code, 406);
    }

    #[test]
    fn delete_options_come_from_the_query() {
        let del = resource(
            Method::DELETE,
            "/api/v1/namespaces/default/pods/p",
            Some("propagationPolicy=Foreground&gracePeriodSeconds=0"),
        );
        assert_eq!(del.delete_options.propagation_policy, Some(crate::store::Propagation::Foreground));
        assert_eq!(del.delete_options.grace_period_seconds, Some(0));
        assert_eq!(
            r(Method::DELETE, "/api/v1/namespaces/default/pods/p", Some("propagationPolicy=Nope")).unwrap_err().code,
            422
        );
        let token = resource(Method::POST, "/api/v1/namespaces/default/serviceaccounts/sa/token", None);
        assert_eq!((token.verb, token.resource_name().as_str()), (Verb::Create, "serviceaccounts/token"));
    }

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(percent_decode("a%3Db+c"), "a=b c");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }
}
