//! Keeps `openapi.yaml` in step with the router (issue 2: "a test keeps it in step with
//! the router"): the spec lists exactly `usher::http::routes()`, the table the router
//! is built from, documents a success and a client error for every operation, and every
//! operation it lists is served. The spec is read line by line, relying on its fixed
//! layout (paths at two spaces, methods at four, response codes at eight), so no YAML
//! crate is needed.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};

use crate::harness::{TestApp, read};

/// The operation keys of an OpenAPI path item.
const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Path-item keys that are not operations.
const PATH_ITEM_KEYS: &[&str] = &["summary", "description", "servers", "parameters", "$ref"];

/// One operation of the spec and the response codes it documents.
#[derive(Debug)]
struct Operation {
    method: String,
    path: String,
    statuses: Vec<String>,
}

fn spec_text() -> String {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {file}: {e}"))
}

/// The key of a `key:` or `key: value` line (quotes removed), or `None` for a sequence
/// item, a comment or a continuation line.
fn mapping_key(trimmed: &str) -> Option<String> {
    if trimmed.starts_with('-') || trimmed.starts_with('#') {
        return None;
    }
    let quote = trimmed.chars().next().filter(|c| *c == '\'' || *c == '"');
    if let Some(q) = quote {
        let end = trimmed[1..].find(q)? + 1;
        return trimmed[end + 1..]
            .starts_with(':')
            .then(|| trimmed[1..end].to_owned());
    }
    let colon = trimmed
        .find(": ")
        .or_else(|| trimmed.ends_with(':').then(|| trimmed.len() - 1))?;
    Some(trimmed[..colon].to_owned())
}

/// Reads the operations of the `paths:` section, refusing a layout the reader would
/// misread (tabs, a path not at two spaces, an unknown key at four spaces).
fn parse_operations(spec: &str) -> Result<Vec<Operation>, String> {
    let mut ops: Vec<Operation> = Vec::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    let mut in_responses = false;
    for (n, line) in spec.lines().enumerate() {
        let n = n + 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            in_paths = trimmed == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if line[..indent].contains('\t') {
            return Err(format!("line {n}: tab in indentation"));
        }
        let key = mapping_key(trimmed);
        match (indent, key) {
            (2, Some(k)) if k.starts_with('/') => {
                path = Some(k);
                in_responses = false;
            }
            (2, _) => return Err(format!("line {n}: expected a path at two spaces: {line}")),
            (4, Some(k)) if HTTP_METHODS.contains(&k.as_str()) => {
                let Some(p) = path.clone() else {
                    return Err(format!("line {n}: method outside a path"));
                };
                let method = k.to_ascii_uppercase();
                if ops.iter().any(|o| o.method == method && o.path == p) {
                    return Err(format!("line {n}: {method} {p} listed twice"));
                }
                ops.push(Operation {
                    method,
                    path: p,
                    statuses: Vec::new(),
                });
                in_responses = false;
            }
            (4, Some(k)) if PATH_ITEM_KEYS.contains(&k.as_str()) => in_responses = false,
            (4, _) => return Err(format!("line {n}: unexpected key at four spaces: {line}")),
            (6, key) => in_responses = key.as_deref() == Some("responses"),
            (8, Some(code)) if in_responses => {
                if let Some(op) = ops.last_mut() {
                    op.statuses.push(code);
                }
            }
            _ => {}
        }
    }
    if ops.is_empty() {
        return Err("no operation found under `paths:`".into());
    }
    Ok(ops)
}

fn spec_operations() -> Vec<Operation> {
    parse_operations(&spec_text()).unwrap_or_else(|e| panic!("openapi.yaml: {e}"))
}

/// The spec lists exactly the `(METHOD, path)` pairs of `usher::http::routes()`, the
/// table the router is built from: no route undocumented, no documented operation the
/// router lacks (issue 2, `openapi.yaml`).
#[test]
fn openapi_operations_match_router_routes() {
    let spec: BTreeSet<(String, String)> = spec_operations()
        .into_iter()
        .map(|o| (o.method, o.path))
        .collect();
    let router: BTreeSet<(String, String)> = usher::http::routes()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    let missing: Vec<_> = router.difference(&spec).collect();
    let extra: Vec<_> = spec.difference(&router).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "openapi.yaml is out of step with usher::http::routes()\n  \
         routed but not in the spec: {missing:?}\n  in the spec but not routed: {extra:?}"
    );
}

/// Every operation documents at least one success (2xx, or a 3xx for browser forms) and
/// one client error (4xx);
/// a `$ref` to `components.responses` counts as documented.
#[test]
fn openapi_every_operation_documents_success_and_client_error() {
    let gaps: Vec<String> = spec_operations()
        .iter()
        .filter_map(|op| {
            let has = |class: char| op.statuses.iter().any(|s| s.starts_with(class));
            let mut lacks = Vec::new();
            // Browser form posts succeed with a 303 to the next page (post/redirect/get).
            if !has('2') && !has('3') {
                lacks.push("2xx or 3xx");
            }
            if !has('4') {
                lacks.push("4xx");
            }
            (!lacks.is_empty()).then(|| {
                format!(
                    "{} {} lacks {} (documents {:?})",
                    op.method,
                    op.path,
                    lacks.join(" and "),
                    op.statuses
                )
            })
        })
        .collect();
    assert!(gaps.is_empty(), "{}", gaps.join("\n"));
}

/// Every `$ref: '#/components/<kind>/<Name>'` names a component the spec defines, so
/// the reused responses, schemas, examples and headers cannot silently dangle.
#[test]
fn openapi_component_refs_resolve() {
    let spec = spec_text();
    let mut defined: BTreeSet<(String, String)> = BTreeSet::new();
    let mut in_components = false;
    let mut kind = String::new();
    for line in spec.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match (indent, mapping_key(trimmed)) {
            (0, Some(k)) => in_components = k == "components",
            (2, Some(k)) if in_components => kind = k,
            (4, Some(name)) if in_components => {
                defined.insert((kind.clone(), name));
            }
            _ => {}
        }
    }
    let dangling: Vec<String> = spec
        .lines()
        .filter_map(|line| line.split_once("$ref: ").map(|(_, r)| r.trim()))
        .map(|r| r.trim_matches(|c| c == '\'' || c == '"'))
        .filter(|r| {
            let parts: Vec<&str> = r.split('/').collect();
            !matches!(parts.as_slice(), ["#", "components", k, name]
                if defined.contains(&((*k).to_owned(), (*name).to_owned())))
        })
        .map(str::to_owned)
        .collect();
    assert!(dangling.is_empty(), "unresolved $refs: {dangling:?}");
}

/// Every operation of the spec is served: its method on its path (a dummy value for each
/// `{param}`) is neither 405 nor the router's 404 `not_found` for an unknown route.
#[tokio::test]
async fn openapi_every_operation_is_served() {
    let app = TestApp::sqlite().await;
    let probe = |method: Method, path: String| {
        let request = app.client.request(method, app.url(&path));
        async move { read(request.send().await.unwrap()).await }
    };
    // The probe can tell an unserved route and a wrong method apart from a served one.
    let unknown = probe(Method::GET, "/api/v1/no-such-route".into()).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["code"], "not_found");
    let wrong = probe(Method::DELETE, "/healthz".into()).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);

    let mut unserved = Vec::new();
    for op in spec_operations() {
        let path = fill_params(&op.path);
        let method = Method::from_bytes(op.method.as_bytes()).unwrap();
        let r = probe(method, path.clone()).await;
        let unrouted = r.status == StatusCode::NOT_FOUND && r.body["code"] == "not_found";
        if r.status == StatusCode::METHOD_NOT_ALLOWED || unrouted {
            unserved.push(format!("{} {path}: {} {}", op.method, r.status, r.text));
        }
    }
    assert!(unserved.is_empty(), "not served:\n{}", unserved.join("\n"));
}

/// Replaces each `{param}` of a path template by `dummy`.
fn fill_params(template: &str) -> String {
    template
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "dummy"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
