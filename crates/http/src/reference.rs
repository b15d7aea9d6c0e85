//! `docs/api.md`'s route reference, generated from the OpenAPI document so
//! it cannot drift: a test compares the file with [`markdown`] and, run with
//! `UPDATE_DOCS=1`, rewrites it.

use std::collections::BTreeMap;
use std::fmt::Write;
use utoipa::openapi::OpenApi;

/// Marks the generated part of `docs/api.md`.
pub const BEGIN: &str = "<!-- routes: generated from the OpenAPI document; UPDATE_DOCS=1 cargo test -p bizcontacts-http reference -->";
pub const END: &str = "<!-- end of routes -->";

/// One table per tag: method, path, what it does, the statuses it answers.
pub fn markdown(doc: &OpenApi) -> String {
    let mut by_tag: BTreeMap<String, Vec<(String, String, String, String)>> = BTreeMap::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let tag = op
                .tags
                .as_ref()
                .and_then(|t| t.first().cloned())
                .unwrap_or_else(|| "other".into());
            let what = op
                .summary
                .clone()
                .unwrap_or_default()
                .replace('|', "\\|")
                .replace('\n', " ");
            let statuses: Vec<&str> = op.responses.responses.keys().map(String::as_str).collect();
            by_tag.entry(tag).or_default().push((
                method.to_string(),
                path.clone(),
                what,
                statuses.join(" "),
            ));
        }
    }
    let mut out = String::new();
    for (tag, mut ops) in by_tag {
        ops.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        let _ = writeln!(out, "\n### {tag}\n");
        out.push_str("| method | path | what | answers |\n|---|---|---|---|\n");
        for (method, path, what, statuses) in ops {
            let _ = writeln!(out, "| {method} | `{path}` | {what} | {statuses} |");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_api_md_lists_every_route_as_the_document_says() {
        let (_, _, _, doc) = crate::api();
        let generated = markdown(&doc);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
        let text = std::fs::read_to_string(path).expect("docs/api.md exists");
        let (head, rest) = text
            .split_once(BEGIN)
            .expect("docs/api.md has the begin marker");
        let (current, tail) = rest
            .split_once(END)
            .expect("docs/api.md has the end marker");
        if current.trim() == generated.trim() {
            return;
        }
        if std::env::var("UPDATE_DOCS").is_ok() {
            let updated = format!("{head}{BEGIN}\n{}\n{END}{tail}", generated.trim());
            std::fs::write(path, updated).expect("docs/api.md is writable");
            return;
        }
        panic!(
            "docs/api.md is out of date with the routes; run \
             `UPDATE_DOCS=1 cargo test -p bizcontacts-http reference` and commit it"
        );
    }
}
