//! Corrections the OpenAPI document needs so that it tells the truth about
//! what the intake answers, applied once to every operation rather than
//! repeated in each handler's annotation:
//!
//! - every error response is `application/problem+json` (the handlers'
//!   annotations name `Problem` as the body; utoipa would call it JSON);
//! - the answers every route of a kind can give are listed on all of them:
//!   401 where a bearer token is required, 403 and 404 inside a tenant, 400
//!   for a malformed path, body or JSON, 408/413/415/422 for routes with a
//!   body, 422 for query parameters.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

const PROBLEM_JSON: &str = crate::error::PROBLEM_JSON;

pub(crate) struct TruthfulErrors;

impl utoipa::Modify for TruthfulErrors {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                add_common(path, op);
                for (code, response) in op.responses.responses.iter_mut() {
                    if let (true, RefOr::T(r)) = (is_error(code), response) {
                        as_problem(r);
                    }
                }
            }
        }
    }
}

fn is_error(code: &str) -> bool {
    code.starts_with('4') || code.starts_with('5')
}

/// The problem body, whatever the annotation called its content type.
fn as_problem(r: &mut Response) {
    let schema = r
        .content
        .shift_remove("application/json")
        .and_then(|c| c.schema);
    let schema = schema.unwrap_or_else(|| RefOr::Ref(Ref::from_schema_name("Problem")));
    r.content
        .insert(PROBLEM_JSON.into(), Content::new(Some(schema)));
}

fn add_common(path: &str, op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let in_tenant = path.contains("{tenant_id}");
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.keys().any(|ct| ct.contains("json")));
    let has_body = op.request_body.is_some();
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_path_params = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let has_query = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));

    let mut add = |code: &str, why: &str| {
        op.responses
            .responses
            .entry(code.to_string())
            .or_insert_with(|| {
                let mut r = Response::new(why);
                as_problem(&mut r);
                RefOr::T(r)
            });
    };
    if secured {
        add(
            "401",
            "missing, malformed, unknown, expired or revoked credentials",
        );
        add("403", "the credential lacks the permission this needs");
    }
    if in_tenant {
        add(
            "404",
            "no such tenant for this caller (or no such object in it)",
        );
    }
    if has_path_params {
        add("400", "a path parameter is malformed");
        add("422", "a path parameter is invalid");
    }
    if has_body {
        add("400", "the body is malformed");
        add("408", "the body stopped arriving (idle timeout)");
        add("413", "the body is larger than the limit");
        add("415", "the body has an unsupported content type");
        add("422", "the body is invalid; `errors` names each field");
    }
    if json_body {
        add("422", "the body is invalid; `errors` names each field");
    }
    if has_query {
        add("422", "a query parameter is invalid; `errors` names it");
    }
}
