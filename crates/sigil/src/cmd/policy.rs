//! `sigil policy apply|test`: Kyverno's `kyverno apply` and `kyverno test` for `verifyImages`
//! policies, run by [`sigil_engine`] against any reachable registry.
//!
//! `apply` reads policies (files or directories) and resources (multi-document YAML/JSON files or
//! directories, recursively), reviews every resource as an admission `CREATE`, and prints one block per
//! resource: each applicable rule with its status and message, each image with the digest it resolved
//! to and its trace (rule → attestor entry → the check that failed). The last line is Kyverno's
//! summary `pass: N, fail: N, warn: N, error: N, skip: N`, counted per rule and resource. As with
//! `kyverno apply`, failures of `Audit` rules count as failures unless `--audit-warn` is given; the
//! exit status is 1 when anything failed or could not be decided, else 0. `-o json` prints the
//! engine's results instead. `--patched-resources DIR` writes every resource the engine patched (digest
//! pins, the verify-images annotation) as YAML, with the JSON patch applied here (RFC 6902).
//!
//! `test DIR` finds `kyverno-test.yaml` files (`-f` for another name) under `DIR`, recursively, and
//! runs each: its `policies` over its `resources` (paths relative to the test file), comparing every
//! expected `results[]` entry (`policy`, `rule` — `autogen-<rule>` / `autogen-cronjob-<rule>` for pod
//! controllers —, `resources`, `kind`, `result`, `patchedResources`; also the deprecated `resource`,
//! `status` and `patchedResource`) with what the engine decided. A rule that did not apply to a resource
//! counts as `skip`; an `Audit` failure counts as `fail` (and also matches `warn`). It prints a table
//! and exits 1 with "N tests failed" when any expectation is not met; with no test files it exits 0.
//!
//! Bad input — unreadable files, malformed YAML, documents that are not Kubernetes objects, images
//! that do not parse, policies with unknown fields or invalid patterns, test files with unsupported
//! fields — ends the command with one line naming the file and the problem. Nothing is skipped
//! silently: a verification that cannot be decided is an `error`, never a pass.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sigil_engine::{
    Engine, EngineConfig, LoadedPolicy, Review, ReviewRequest, RuleResult, RuleStatus,
};
use sigil_policy::image::{ImageInfo, extract_images};
use sigil_policy::matching::Operation;
use sigil_sigstore::TrustedRoot;

use super::inspect::client;
use crate::cli::{EngineOptions, PolicyApplyArgs, PolicyOutput, PolicyTestArgs};

/// Resources reviewed at once (each review verifies its own images in parallel).
const PARALLEL_REVIEWS: usize = 4;

// ---- resources ---------------------------------------------------------------------------------------

/// One Kubernetes object read from a resource file.
#[derive(Debug, Clone)]
struct Resource {
    /// The file it came from.
    file: PathBuf,
    /// Zero-based index of the YAML document in that file.
    document: usize,
    /// The object.
    value: Value,
    /// `kind`.
    kind: String,
    /// `apiVersion`.
    api_version: String,
    /// `metadata.name`.
    name: String,
    /// `metadata.namespace`, else the default namespace.
    namespace: String,
}

impl Resource {
    /// `Kind namespace/name`.
    fn display(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The YAML/JSON files under `path`: the file itself, or a directory's `*.yaml|yml|json`
/// recursively, sorted.
fn resource_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
        for entry in entries {
            let p = entry.map_err(|e| anyhow!("{}: {e}", dir.display()))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Parses a multi-document YAML (or JSON) stream into its non-empty documents.
fn parse_documents(file: &Path, text: &str) -> anyhow::Result<Vec<(usize, Value)>> {
    let mut out = Vec::new();
    for (document, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = <Value as Deserialize>::deserialize(de).map_err(|e| {
            anyhow!(
                "{}: document {document}: malformed YAML: {e}",
                file.display()
            )
        })?;
        if !value.is_null() {
            out.push((document, value));
        }
    }
    Ok(out)
}

/// Checks that `value` is a Kubernetes object and wraps it; `List` kinds are expanded.
fn to_resources(
    file: &Path,
    document: usize,
    value: Value,
    default_namespace: &str,
    out: &mut Vec<Resource>,
) -> anyhow::Result<()> {
    let at = || format!("{}: document {document}", file.display());
    let Value::Object(map) = &value else {
        bail!(
            "{}: not a Kubernetes object (found {})",
            at(),
            type_name(&value)
        );
    };
    let field = |name: &str| -> anyhow::Result<String> {
        match map.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(other) => bail!(
                "{}: `{name}` must be a non-empty string, found {}",
                at(),
                type_name(other)
            ),
            None => bail!("{}: not a Kubernetes object: `{name}` is missing", at()),
        }
    };
    let kind = field("kind")?;
    let api_version = field("apiVersion")?;
    if kind == "List" || (kind.ends_with("List") && map.contains_key("items")) {
        let Some(Value::Array(items)) = map.get("items") else {
            bail!("{}: {kind} without an `items` list", at());
        };
        for item in items {
            to_resources(file, document, item.clone(), default_namespace, out)?;
        }
        return Ok(());
    }
    let metadata = match map.get("metadata") {
        Some(Value::Object(m)) => m,
        Some(other) => bail!(
            "{}: `metadata` must be an object, found {}",
            at(),
            type_name(other)
        ),
        None => bail!("{}: {kind}: `metadata` is missing", at()),
    };
    let name = match (metadata.get("name"), metadata.get("generateName")) {
        (Some(Value::String(s)), _) if !s.is_empty() => s.clone(),
        // As the API server would: a generated name starts with `generateName`.
        (None, Some(Value::String(g))) if !g.is_empty() => g.clone(),
        (Some(other), _) => bail!(
            "{}: {kind}: `metadata.name` must be a non-empty string, found {}",
            at(),
            type_name(other)
        ),
        (None, _) => bail!("{}: {kind}: `metadata.name` is missing", at()),
    };
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => default_namespace.to_owned(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => bail!(
            "{}: {kind} {name}: `metadata.namespace` must be a non-empty string, found {}",
            at(),
            type_name(other)
        ),
    };
    // Images that do not parse are bad input, reported here rather than as a rule error.
    let images = extract_images(&value).map_err(|e| anyhow!("{}: {kind} {name}: {e}", at()))?;
    for image in images {
        let parsed = ImageInfo::parse(&image.image)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                sigil_oci::Reference::parse(&image.image)
                    .map(drop)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = parsed {
            bail!(
                "{}: {kind} {name}: {}: image {:?} does not parse: {e}",
                at(),
                image.pointer,
                image.image
            );
        }
    }
    out.push(Resource {
        file: file.to_owned(),
        document,
        value,
        kind,
        api_version,
        name,
        namespace,
    });
    Ok(())
}

/// Joins a multi-line message (e.g. a regex parse error with its caret line) into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads every resource in `paths` (files or directories).
fn load_resources(paths: &[PathBuf], default_namespace: &str) -> anyhow::Result<Vec<Resource>> {
    let mut out = Vec::new();
    for path in paths {
        for file in resource_files(path)? {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow!("{}: {e}", file.display()))?;
            for (document, value) in parse_documents(&file, &text)? {
                to_resources(&file, document, value, default_namespace, &mut out)?;
            }
        }
    }
    Ok(out)
}

// ---- engine ------------------------------------------------------------------------------------------

/// Builds the engine: registry client, trusted roots, a decision cache for this run.
fn build_engine(opts: &EngineOptions, policies: Vec<LoadedPolicy>) -> anyhow::Result<Engine> {
    let mut config = EngineConfig::new(client(&opts.registry)?);
    for path in &opts.trusted_roots {
        let bytes = std::fs::read(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let root = TrustedRoot::from_json(&bytes)
            .map_err(|e| anyhow!("{}: not a usable trusted root: {e}", path.display()))?;
        if root.certificate_authorities.is_empty()
            && root.tlogs.is_empty()
            && root.ctlogs.is_empty()
            && root.timestamp_authorities.is_empty()
        {
            bail!(
                "{}: not a usable trusted root: no certificateAuthorities, tlogs, ctlogs or \
                 timestampAuthorities",
                path.display()
            );
        }
        config.trusted_roots.push(root);
    }
    if opts.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    config.default_timeout = Duration::from_secs(opts.timeout);
    // Unlike Kyverno's CLI, keep the decision cache on: it lives for one run only, is keyed by digest,
    // and lets identical images across many resources be verified once (concurrent ones coalesced).
    config.cache.enabled = true;
    Ok(Engine::new(config, policies))
}

fn load_policies(paths: &[PathBuf]) -> anyhow::Result<Vec<LoadedPolicy>> {
    for p in paths {
        if !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
    }
    let policies = sigil_engine::load_policy_files(paths)
        .map_err(|e| anyhow!("{}", one_line(&e.to_string())))?;
    if policies.is_empty() {
        bail!(
            "no Kyverno policies found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(policies)
}

/// Reviews every resource (a few at a time), keeping their order.
async fn review_all(engine: &Arc<Engine>, resources: &[Resource], timeout: u64) -> Vec<Review> {
    futures::stream::iter(resources.iter().map(|r| {
        let engine = engine.clone();
        let request = ReviewRequest {
            resource: r.value.clone(),
            old_resource: None,
            namespace: r.namespace.clone(),
            operation: Operation::Create,
            timeout: Some(Duration::from_secs(timeout)),
            dry_run: true,
        };
        async move { engine.mutate(&request).await }
    }))
    .buffered(PARALLEL_REVIEWS)
    .collect()
    .await
}

/// Whether the engine could not evaluate the resource at all (blocked, but no rule says why).
fn engine_error(review: &Review) -> Option<String> {
    (review.blocked && review.results.is_empty()).then(|| {
        review
            .message
            .clone()
            .unwrap_or_else(|| "blocked without a reason".to_owned())
    })
}

/// Whether a rule result is an `Audit` failure (reported, not blocking).
fn is_audit_failure(r: &RuleResult) -> bool {
    r.status == RuleStatus::Warn || (r.status == RuleStatus::Fail && !r.enforce)
}

// ---- JSON patch (RFC 6902) -------------------------------------------------------------------------

/// The reference tokens of an RFC 6901 JSON pointer.
fn pointer_tokens(pointer: &str) -> anyhow::Result<Vec<String>> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        bail!("JSON pointer {pointer:?} does not start with `/`");
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn array_index(token: &str, len: usize, allow_end: bool) -> anyhow::Result<usize> {
    if token == "-" && allow_end {
        return Ok(len);
    }
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let i: usize = if valid {
        token
            .parse()
            .map_err(|_| anyhow!("array index {token:?} out of range"))?
    } else {
        bail!("{token:?} is not an array index");
    };
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        bail!("array index {i} out of range (length {len})");
    }
    Ok(i)
}

fn pointer_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> anyhow::Result<&'a mut Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| anyhow!("member {t:?} does not exist"))?,
            Value::Array(a) => {
                let i = array_index(t, a.len(), false)?;
                &mut a[i]
            }
            _ => bail!("cannot descend into a scalar at {t:?}"),
        };
    }
    Ok(cur)
}

fn patch_add(doc: &mut Value, tokens: &[String], value: Value) -> anyhow::Result<()> {
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match pointer_mut(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true)?;
            a.insert(i, value);
        }
        _ => bail!("the parent of {last:?} is not an object or array"),
    }
    Ok(())
}

fn patch_remove(doc: &mut Value, tokens: &[String]) -> anyhow::Result<Value> {
    let Some((last, parent)) = tokens.split_last() else {
        bail!("cannot remove the whole document");
    };
    match pointer_mut(doc, parent)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| anyhow!("member {last:?} does not exist")),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => bail!("the parent of {last:?} is not an object or array"),
    }
}

/// Applies an RFC 6902 JSON patch to `doc` (all six operations; stops at the first failing one).
fn apply_json_patch(doc: &mut Value, patch: &[Value]) -> anyhow::Result<()> {
    for (i, op) in patch.iter().enumerate() {
        let mut run = || -> anyhow::Result<()> {
            let name = op
                .get("op")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("no `op`"))?;
            let path = op
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("no `path`"))?;
            let tokens = pointer_tokens(path)?;
            let value = || {
                op.get("value")
                    .cloned()
                    .ok_or_else(|| anyhow!("{name} without `value`"))
            };
            let from = || -> anyhow::Result<Vec<String>> {
                pointer_tokens(
                    op.get("from")
                        .and_then(Value::as_str)
                        .ok_or_else(|| anyhow!("{name} without `from`"))?,
                )
            };
            match name {
                "add" => patch_add(doc, &tokens, value()?),
                "remove" => patch_remove(doc, &tokens).map(drop),
                "replace" => {
                    let v = value()?;
                    *pointer_mut(doc, &tokens)? = v;
                    Ok(())
                }
                "move" => {
                    let v = patch_remove(doc, &from()?)?;
                    patch_add(doc, &tokens, v)
                }
                "copy" => {
                    let v = pointer_mut(doc, &from()?)?.clone();
                    patch_add(doc, &tokens, v)
                }
                "test" => {
                    let want = value()?;
                    if *pointer_mut(doc, &tokens)? == want {
                        Ok(())
                    } else {
                        bail!("test failed: {path} is not {want}")
                    }
                }
                other => bail!("unknown op {other:?}"),
            }
        };
        run().with_context(|| format!("JSON patch operation {i} ({op})"))?;
    }
    Ok(())
}

/// A file name for a patched resource: `<kind>-<namespace>-<name>.yaml`.
fn patched_file_name(r: &Resource) -> String {
    let clean = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    format!(
        "{}-{}-{}.yaml",
        clean(&r.kind.to_ascii_lowercase()),
        clean(&r.namespace),
        clean(&r.name)
    )
}

/// The resource with the review's patch applied (the resource itself when there is no patch).
fn patched(resource: &Resource, review: &Review) -> anyhow::Result<Value> {
    let mut value = resource.value.clone();
    apply_json_patch(&mut value, &review.patch).with_context(|| {
        format!(
            "{}: patching {}",
            resource.file.display(),
            resource.display()
        )
    })?;
    Ok(value)
}

// ---- apply -------------------------------------------------------------------------------------------

/// Kyverno's summary counters.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Summary {
    pass: usize,
    fail: usize,
    warn: usize,
    error: usize,
    skip: usize,
}

impl Summary {
    fn count(&mut self, r: &RuleResult, audit_warn: bool) {
        match r.status {
            _ if is_audit_failure(r) => {
                if audit_warn {
                    self.warn += 1;
                } else {
                    self.fail += 1;
                }
            }
            RuleStatus::Pass => self.pass += 1,
            RuleStatus::Fail => self.fail += 1,
            RuleStatus::Skip => self.skip += 1,
            RuleStatus::Error => self.error += 1,
            RuleStatus::Warn => self.warn += 1,
        }
    }
}

fn status_word(s: RuleStatus) -> &'static str {
    match s {
        RuleStatus::Pass => "pass",
        RuleStatus::Fail => "fail",
        RuleStatus::Skip => "skip",
        RuleStatus::Error => "error",
        RuleStatus::Warn => "warn",
    }
}

/// One resource's block of the text report: each rule with its status; each image with its digest
/// and status (for a failure, the summary of why); then the attestor entries checked, each with its
/// outcome and the exact check that failed or what verified.
fn render_review(out: &mut String, r: &Resource, review: &Review) {
    let _ = writeln!(
        out,
        "{} ({}, document {}):",
        r.display(),
        r.file.display(),
        r.document
    );
    if let Some(why) = engine_error(review) {
        let _ = writeln!(out, "  error  {why}");
    } else if review.results.is_empty() {
        let _ = writeln!(out, "  no rules applied");
    }
    for rule in &review.results {
        let action = if rule.enforce { "Enforce" } else { "Audit" };
        let _ = write!(
            out,
            "  {:<5}  {}/{} [{action}]",
            status_word(rule.status),
            rule.policy,
            rule.rule
        );
        // A failing rule's message repeats its images' messages: say it once, on the image.
        if !rule.message.is_empty() && (rule.images.is_empty() || rule.status == RuleStatus::Pass) {
            let _ = write!(out, ": {}", rule.message);
        }
        out.push('\n');
        for image in &rule.images {
            let _ = write!(out, "           {}", image.image);
            if let Some(d) = &image.digest {
                let _ = write!(out, " @ {d}");
            }
            let _ = write!(out, ": {}", status_word(image.status));
            let steps: Vec<_> = image
                .trace
                .iter()
                .filter(|s| s.path != "image" && s.detail != image.message)
                .collect();
            if image.status != RuleStatus::Pass && !image.message.is_empty() {
                // With entry steps below, the summary up to the nested details is enough.
                let summary = match image.message.split_once(" (") {
                    Some((head, _)) if !steps.is_empty() => head,
                    _ => image.message.as_str(),
                };
                let _ = write!(out, ": {summary}");
            }
            if image.cached {
                out.push_str(" (cached)");
            }
            out.push('\n');
            for step in steps {
                let _ = writeln!(
                    out,
                    "             {}: {}: {}",
                    step.path,
                    status_word(step.status),
                    step.detail
                );
            }
        }
    }
    for w in &review.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    if review.blocked && !review.results.is_empty() {
        let _ = writeln!(out, "  => admission would be denied");
    }
}

/// `sigil policy apply`.
pub async fn apply(args: PolicyApplyArgs) -> anyhow::Result<ExitCode> {
    let mut policy_paths = args.policy_paths.clone();
    policy_paths.extend(args.policies.iter().cloned());
    if policy_paths.is_empty() {
        bail!("no policies given (POLICY... or -p PATH)");
    }
    let policies = load_policies(&policy_paths)?;
    let resources = load_resources(&args.resources, &args.namespace)?;
    if resources.is_empty() {
        bail!("no resources found in the -r paths");
    }
    let rule_count: usize = policies.iter().map(|p| p.policy.rules.len()).sum();
    let policy_count = policies.len();
    let engine = Arc::new(build_engine(&args.engine, policies)?);
    let reviews = review_all(&engine, &resources, args.engine.timeout).await;
    let stats = engine.stats();
    tracing::debug!(
        registry_requests = stats.registry_requests,
        cache_hits = stats.cache_hits,
        cache_misses = stats.cache_misses,
        "policy apply: engine statistics"
    );

    let mut summary = Summary::default();
    for review in &reviews {
        if engine_error(review).is_some() {
            summary.error += 1;
        }
        for rule in &review.results {
            summary.count(rule, args.audit_warn);
        }
        // Fail closed: a review the engine would deny always makes the run fail, even if no rule
        // result says why.
        if review.blocked
            && !review.results.is_empty()
            && !review
                .results
                .iter()
                .any(|r| matches!(r.status, RuleStatus::Fail | RuleStatus::Error))
        {
            summary.error += 1;
        }
    }

    if let Some(dir) = &args.patched_resources {
        std::fs::create_dir_all(dir).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
        let mut written = 0;
        for (r, review) in resources.iter().zip(&reviews) {
            if review.patch.is_empty() {
                continue;
            }
            let value = patched(r, review)?;
            let yaml = yaml_serde::to_string(&value)
                .map_err(|e| anyhow!("{}: cannot write YAML: {e}", r.display()))?;
            let path = dir.join(patched_file_name(r));
            std::fs::write(&path, yaml).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            written += 1;
        }
        eprintln!("wrote {written} patched resource(s) to {}", dir.display());
    }

    match args.output {
        PolicyOutput::Json => {
            let docs: Vec<Value> = resources
                .iter()
                .zip(&reviews)
                .map(|(r, review)| {
                    json!({
                        "file": r.file.display().to_string(),
                        "document": r.document,
                        "apiVersion": r.api_version,
                        "kind": r.kind,
                        "namespace": r.namespace,
                        "name": r.name,
                        "error": engine_error(review),
                        "review": review,
                    })
                })
                .collect();
            let doc = json!({"resources": docs, "summary": summary});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        PolicyOutput::Text => {
            let mut out = format!(
                "Applying {policy_count} {} ({rule_count} {}) to {} {}...\n\n",
                plural(policy_count, "policy", "policies"),
                plural(rule_count, "rule", "rules"),
                resources.len(),
                plural(resources.len(), "resource", "resources"),
            );
            for (r, review) in resources.iter().zip(&reviews) {
                render_review(&mut out, r, review);
            }
            let _ = writeln!(
                out,
                "\npass: {}, fail: {}, warn: {}, error: {}, skip: {}",
                summary.pass, summary.fail, summary.warn, summary.error, summary.skip
            );
            print!("{out}");
        }
    }
    Ok(if summary.fail > 0 || summary.error > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

// ---- test --------------------------------------------------------------------------------------------

/// `cli.kyverno.io/v1alpha1` `Test` (and the older un-versioned form with a top-level `name`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TestFile {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<TestMetadata>,
    /// Deprecated top-level name.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    target_resources: Option<Value>,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(default)]
    userinfo: Option<Value>,
    #[serde(default)]
    exceptions: Option<Value>,
    #[serde(default)]
    checks: Option<Value>,
    #[serde(default)]
    values: Option<Value>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    results: Vec<TestResultEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TestMetadata {
    #[serde(default)]
    name: Option<String>,
    /// Accepted and ignored.
    #[serde(default, rename = "labels")]
    _labels: Option<Value>,
    /// Accepted and ignored.
    #[serde(default, rename = "annotations")]
    _annotations: Option<Value>,
}

/// One `results[]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TestResultEntry {
    policy: String,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    /// Deprecated single resource.
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    result: Option<String>,
    /// Deprecated spelling of `result`.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    patched_resources: Option<String>,
    /// Deprecated spelling of `patchedResources`.
    #[serde(default)]
    patched_resource: Option<String>,
    #[serde(default)]
    generated_resource: Option<String>,
    #[serde(default)]
    clone_source_resource: Option<String>,
    #[serde(default)]
    is_validating_admission_policy: Option<bool>,
    #[serde(default)]
    is_validating_policy: Option<bool>,
    #[serde(default)]
    is_image_validating_policy: Option<bool>,
    #[serde(default)]
    is_mutating_admission_policy: Option<bool>,
}

/// What the engine decided for one (policy, rule, resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Expected {
    Pass,
    Fail,
    Skip,
    Warn,
    Error,
}

impl Expected {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pass" => Self::Pass,
            "fail" => Self::Fail,
            "skip" => Self::Skip,
            "warn" => Self::Warn,
            "error" => Self::Error,
            _ => return None,
        })
    }

    fn word(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Skip => "skip",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// One row of the test report.
#[derive(Debug, Clone, Serialize)]
struct TestRow {
    id: usize,
    policy: String,
    rule: String,
    resource: String,
    expected: Expected,
    /// What happened (`none` when the resource or policy was not found).
    actual: String,
    passed: bool,
    reason: String,
}

/// A test file's outcome.
#[derive(Debug, Serialize)]
struct TestReport {
    file: String,
    name: String,
    /// Set when the test could not run (load error); counts as one failed test.
    error: Option<String>,
    results: Vec<TestRow>,
}

/// Test files named `file_name` under `dir`, recursively, sorted.
fn find_test_files(dir: &Path, file_name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(dir).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        if dir.file_name().and_then(|n| n.to_str()) == Some(file_name) {
            return Ok(vec![dir.to_owned()]);
        }
        bail!("{}: not a directory", dir.display());
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| anyhow!("{}: {e}", d.display()))? {
            let p = entry.map_err(|e| anyhow!("{}: {e}", d.display()))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().and_then(|n| n.to_str()) == Some(file_name) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Parses a test file, rejecting what `policy test` cannot honour.
fn parse_test_file(path: &Path) -> anyhow::Result<TestFile> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let value: Value = yaml_serde::from_str(&text)
        .map_err(|e| anyhow!("{}: malformed YAML: {e}", path.display()))?;
    let test: TestFile = serde_path_to(&value).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let unsupported = |field: &str| {
        anyhow!(
            "{}: `{field}` is not supported by sigil policy test",
            path.display()
        )
    };
    match (test.api_version.as_deref(), test.kind.as_deref()) {
        (Some("cli.kyverno.io/v1alpha1"), Some("Test")) => {}
        (None, None) if test.name.is_some() => {}
        (Some(v), _) if v != "cli.kyverno.io/v1alpha1" => {
            bail!(
                "{}: unsupported apiVersion {v:?} (want cli.kyverno.io/v1alpha1)",
                path.display()
            )
        }
        (_, k) => bail!(
            "{}: not a Kyverno test (kind {:?}, want Test)",
            path.display(),
            k.unwrap_or("")
        ),
    }
    for (field, set) in [
        ("variables", test.variables.is_some()),
        ("userinfo", test.userinfo.is_some()),
        (
            "exceptions",
            test.exceptions.as_ref().is_some_and(non_empty),
        ),
        ("checks", test.checks.as_ref().is_some_and(non_empty)),
        ("values", test.values.as_ref().is_some_and(non_empty)),
        ("context", test.context.as_ref().is_some_and(non_empty)),
        (
            "targetResources",
            test.target_resources.as_ref().is_some_and(non_empty),
        ),
    ] {
        if set {
            return Err(unsupported(field));
        }
    }
    if test.policies.is_empty() {
        bail!("{}: `policies` is empty", path.display());
    }
    if test.resources.is_empty() {
        bail!("{}: `resources` is empty", path.display());
    }
    for (i, r) in test.results.iter().enumerate() {
        let at = |f: &str| format!("results[{i}].{f}");
        for (field, set) in [
            ("generatedResource", r.generated_resource.is_some()),
            ("cloneSourceResource", r.clone_source_resource.is_some()),
            (
                "isValidatingAdmissionPolicy",
                r.is_validating_admission_policy == Some(true),
            ),
            ("isValidatingPolicy", r.is_validating_policy == Some(true)),
            (
                "isImageValidatingPolicy",
                r.is_image_validating_policy == Some(true),
            ),
            (
                "isMutatingAdmissionPolicy",
                r.is_mutating_admission_policy == Some(true),
            ),
        ] {
            if set {
                return Err(unsupported(&at(field)));
            }
        }
        if r.rule.as_deref().is_none_or(str::is_empty) {
            bail!("{}: {}: required", path.display(), at("rule"));
        }
        match (r.result.as_deref(), r.status.as_deref()) {
            (Some(s), _) | (None, Some(s)) => {
                if Expected::parse(s).is_none() {
                    bail!(
                        "{}: {}: {s:?} is not one of pass, fail, skip, warn, error",
                        path.display(),
                        at("result")
                    );
                }
            }
            (None, None) => bail!("{}: {}: required", path.display(), at("result")),
        }
        if r.resources.is_empty() && r.resource.is_none() {
            bail!("{}: {}: required", path.display(), at("resources"));
        }
    }
    Ok(test)
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// Deserialises a test file, naming the offending field's path on error.
fn serde_path_to<T: serde::de::DeserializeOwned>(value: &Value) -> anyhow::Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        anyhow!("{path}: {}", e.into_inner())
    })
}

/// Does a test's resource name (`name` or `namespace/name`) designate `r`?
fn names_resource(spec: &str, namespace: Option<&str>, r: &Resource) -> bool {
    match spec.split_once('/') {
        Some((ns, name)) => ns == r.namespace && name == r.name,
        None => spec == r.name && namespace.is_none_or(|ns| ns == r.namespace),
    }
}

/// Does the engine's policy name (`name`, or `namespace/name` for a `Policy`) match the test's?
fn names_policy(test: &str, engine: &str) -> bool {
    test == engine || engine.rsplit_once('/').is_some_and(|(_, n)| n == test)
}

/// Whether `rule` names a rule of `policy` (directly or by its autogen names).
fn rule_exists(policy: &LoadedPolicy, rule: &str) -> bool {
    policy.policy.rules.iter().any(|r| {
        r.name == rule
            || (r.autogen_eligible
                && (rule == format!("autogen-{}", r.name)
                    || rule == format!("autogen-cronjob-{}", r.name)))
    })
}

/// Loads a test's files and runs it.
async fn run_test_file(path: &Path, args: &PolicyTestArgs) -> TestReport {
    let mut report = TestReport {
        file: path.display().to_string(),
        name: String::new(),
        error: None,
        results: Vec::new(),
    };
    match run_test_inner(path, args, &mut report).await {
        Ok(()) => {}
        Err(e) => report.error = Some(format!("{e:#}")),
    }
    report
}

async fn run_test_inner(
    path: &Path,
    args: &PolicyTestArgs,
    report: &mut TestReport,
) -> anyhow::Result<()> {
    let test = parse_test_file(path)?;
    report.name = test
        .metadata
        .as_ref()
        .and_then(|m| m.name.clone())
        .or_else(|| test.name.clone())
        .unwrap_or_else(|| path.display().to_string());
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let policy_paths: Vec<PathBuf> = test.policies.iter().map(|p| base.join(p)).collect();
    let resource_paths: Vec<PathBuf> = test.resources.iter().map(|p| base.join(p)).collect();
    let policies = load_policies(&policy_paths)?;
    let resources = load_resources(&resource_paths, "default")?;
    let engine = Arc::new(build_engine(&args.engine, policies.clone())?);
    let reviews = review_all(&engine, &resources, args.engine.timeout).await;

    let mut id = 0;
    for entry in &test.results {
        let rule = entry.rule.clone().unwrap_or_default();
        let expected_word = entry
            .result
            .as_deref()
            .or(entry.status.as_deref())
            .unwrap_or_default();
        let expected = Expected::parse(expected_word)
            .ok_or_else(|| anyhow!("{}: bad result {expected_word:?}", path.display()))?;
        let patched_file = entry
            .patched_resources
            .as_deref()
            .or(entry.patched_resource.as_deref());
        let mut names: Vec<&str> = entry.resources.iter().map(String::as_str).collect();
        names.extend(entry.resource.as_deref());
        let policy = policies
            .iter()
            .find(|p| names_policy(&entry.policy, &policy_name(p)));
        for name in names {
            id += 1;
            let mut row = TestRow {
                id,
                policy: entry.policy.clone(),
                rule: rule.clone(),
                resource: name.to_owned(),
                expected,
                actual: "none".to_owned(),
                passed: false,
                reason: String::new(),
            };
            let Some(policy) = policy else {
                row.reason = format!("policy {:?} not found in the test's policies", entry.policy);
                report.results.push(row);
                continue;
            };
            if !rule_exists(policy, &rule) {
                row.reason = format!("policy {} has no rule {rule:?}", entry.policy);
                report.results.push(row);
                continue;
            }
            let matched: Vec<usize> = resources
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    names_resource(name, entry.namespace.as_deref(), r)
                        && entry.kind.as_deref().is_none_or(|k| k == r.kind)
                })
                .map(|(i, _)| i)
                .collect();
            if matched.is_empty() {
                row.reason = format!(
                    "resource {}{name:?} not found in the test's resources",
                    entry
                        .kind
                        .as_deref()
                        .map(|k| format!("{k} "))
                        .unwrap_or_default()
                );
                report.results.push(row);
                continue;
            }
            let mut reasons = Vec::new();
            let mut all_ok = true;
            let mut actuals = Vec::new();
            for &i in &matched {
                let (r, review) = (&resources[i], &reviews[i]);
                row.resource = format!("{}/{}/{}", r.kind, r.namespace, r.name);
                let (actual, message, audit) = actual_for(review, &entry.policy, &rule);
                let ok = actual == expected || (audit && expected == Expected::Warn);
                actuals.push(if audit {
                    format!("{} (Audit)", actual.word())
                } else {
                    actual.word().to_owned()
                });
                if !ok {
                    all_ok = false;
                    let mut why = format!("want {}, got {}", expected.word(), actual.word());
                    if !message.is_empty() {
                        let _ = write!(why, ": {message}");
                    }
                    reasons.push(why);
                } else if let Some(file) = patched_file {
                    match compare_patched(&base.join(file), r, review) {
                        Ok(()) => {}
                        Err(e) => {
                            all_ok = false;
                            reasons.push(format!("{e:#}"));
                        }
                    }
                }
            }
            row.actual = actuals.join(", ");
            row.passed = all_ok;
            row.reason = if all_ok {
                "Ok".to_owned()
            } else {
                reasons.join("; ")
            };
            report.results.push(row);
        }
    }
    Ok(())
}

fn policy_name(p: &LoadedPolicy) -> String {
    match &p.policy.namespace {
        Some(ns) => format!("{ns}/{}", p.policy.name),
        None => p.policy.name.clone(),
    }
}

/// The engine's decision for (policy, rule) in a review: status, message, whether it is an Audit
/// failure. A rule that did not apply is `skip`.
fn actual_for(review: &Review, policy: &str, rule: &str) -> (Expected, String, bool) {
    if let Some(why) = engine_error(review) {
        return (Expected::Error, why, false);
    }
    let Some(r) = review
        .results
        .iter()
        .find(|r| names_policy(policy, &r.policy) && r.rule == rule)
    else {
        return (
            Expected::Skip,
            "the rule did not apply to this resource".to_owned(),
            false,
        );
    };
    let audit = is_audit_failure(r);
    let status = match r.status {
        _ if audit => Expected::Fail,
        RuleStatus::Pass => Expected::Pass,
        RuleStatus::Fail => Expected::Fail,
        RuleStatus::Skip => Expected::Skip,
        RuleStatus::Error => Expected::Error,
        RuleStatus::Warn => Expected::Warn,
    };
    let mut message = r.message.clone();
    if message.is_empty() {
        message = r
            .images
            .iter()
            .filter(|i| !i.message.is_empty())
            .map(|i| format!("{}: {}", i.image, i.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    (status, message, audit)
}

/// Compares the patched resource with the one in `file` (same kind and name).
fn compare_patched(file: &Path, r: &Resource, review: &Review) -> anyhow::Result<()> {
    let expected = load_resources(std::slice::from_ref(&file.to_path_buf()), &r.namespace)?;
    let want = expected
        .iter()
        .find(|e| e.kind == r.kind && e.name == r.name)
        .ok_or_else(|| {
            anyhow!(
                "{}: no {} {} among the patched resources",
                file.display(),
                r.kind,
                r.name
            )
        })?;
    let got = patched(r, review)?;
    match first_difference(&want.value, &got, "") {
        None => Ok(()),
        Some((pointer, w, g)) => bail!(
            "patched resource differs from {} at {}: want {w}, got {g}",
            file.display(),
            if pointer.is_empty() { "/" } else { &pointer }
        ),
    }
}

/// The first place two JSON values differ: `(pointer, want, got)`.
fn first_difference(want: &Value, got: &Value, at: &str) -> Option<(String, String, String)> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let keys: std::collections::BTreeSet<&String> = w.keys().chain(g.keys()).collect();
            for k in keys {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (w.get(k), g.get(k)) {
                    (Some(a), Some(b)) => {
                        if let Some(d) = first_difference(a, b, &p) {
                            return Some(d);
                        }
                    }
                    (a, b) => {
                        let show = |v: Option<&Value>| {
                            v.map_or_else(|| "nothing".to_owned(), Value::to_string)
                        };
                        return Some((p, show(a), show(b)));
                    }
                }
            }
            None
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .find_map(|(i, (a, b))| first_difference(a, b, &format!("{at}/{i}"))),
        _ if want == got => None,
        _ => Some((at.to_owned(), want.to_string(), got.to_string())),
    }
}

fn render_table(out: &mut String, rows: &[&TestRow]) {
    let headers = ["ID", "POLICY", "RULE", "RESOURCE", "RESULT", "REASON"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.policy.clone(),
                r.rule.clone(),
                r.resource.clone(),
                if r.passed { "Pass" } else { "Fail" }.to_owned(),
                r.reason.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |out: &mut String, cols: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        let _ = writeln!(out, "  {}", l.trim_end());
    };
    line(out, &headers);
    for c in &cells {
        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
        line(out, &refs);
    }
}

/// `sigil policy test`.
pub async fn test(args: PolicyTestArgs) -> anyhow::Result<ExitCode> {
    let files = find_test_files(&args.dir, &args.file_name)?;
    if files.is_empty() {
        match args.output {
            PolicyOutput::Json => println!(
                "{}",
                serde_json::to_string_pretty(&json!({"tests": [], "passed": 0, "failed": 0}))?
            ),
            PolicyOutput::Text => println!(
                "No test files named {} found under {}",
                args.file_name,
                args.dir.display()
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut reports = Vec::new();
    for f in &files {
        reports.push(run_test_file(f, &args).await);
    }
    let mut passed = 0usize;
    let mut failed = 0usize;
    for r in &reports {
        if r.error.is_some() {
            failed += 1;
        }
        for row in &r.results {
            if row.passed {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    match args.output {
        PolicyOutput::Json => {
            let doc = json!({"tests": reports, "passed": passed, "failed": failed});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        PolicyOutput::Text => {
            let mut out = String::new();
            for r in &reports {
                let _ = writeln!(out, "Test {} ({}):", r.name, r.file);
                if let Some(e) = &r.error {
                    let _ = writeln!(out, "  error: {e}\n");
                    continue;
                }
                let rows: Vec<&TestRow> = r
                    .results
                    .iter()
                    .filter(|row| !args.fail_only || !row.passed)
                    .collect();
                if rows.is_empty() {
                    let _ = writeln!(out, "  (no failing results)\n");
                    continue;
                }
                render_table(&mut out, &rows);
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "Test Summary: {passed} {} passed and {failed} {} failed",
                plural(passed, "test", "tests"),
                plural(failed, "test", "tests")
            );
            print!("{out}");
        }
    }
    if failed > 0 {
        bail!("{failed} {} failed", plural(failed, "test", "tests"));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"a": {"b": [1, 2]}, "c~d": 1, "e/f": 2});
        let patch = vec![
            json!({"op": "add", "path": "/a/b/1", "value": 9}),
            json!({"op": "add", "path": "/a/b/-", "value": 3}),
            json!({"op": "replace", "path": "/c~0d", "value": "x"}),
            json!({"op": "remove", "path": "/e~1f"}),
            json!({"op": "copy", "from": "/a/b/0", "path": "/g"}),
            json!({"op": "move", "from": "/g", "path": "/h"}),
            json!({"op": "test", "path": "/h", "value": 1}),
            json!({"op": "add", "path": "/m", "value": {"n": 1}}),
        ];
        apply_json_patch(&mut doc, &patch).unwrap();
        assert_eq!(
            doc,
            json!({"a": {"b": [1, 9, 2, 3]}, "c~d": "x", "h": 1, "m": {"n": 1}})
        );
    }

    #[test]
    fn json_patch_errors() {
        let doc = json!({"a": [1]});
        for (op, needle) in [
            (
                json!({"op": "replace", "path": "/b", "value": 1}),
                "does not exist",
            ),
            (
                json!({"op": "add", "path": "/a/5", "value": 1}),
                "out of range",
            ),
            (
                json!({"op": "add", "path": "/a/01", "value": 1}),
                "not an array index",
            ),
            (json!({"op": "remove", "path": "/a/1"}), "out of range"),
            (
                json!({"op": "test", "path": "/a/0", "value": 2}),
                "test failed",
            ),
            (json!({"op": "frob", "path": "/a"}), "unknown op"),
            (
                json!({"op": "add", "path": "a", "value": 1}),
                "does not start",
            ),
            (json!({"op": "add", "path": "/x"}), "without `value`"),
        ] {
            let mut d = doc.clone();
            let e = apply_json_patch(&mut d, std::slice::from_ref(&op)).unwrap_err();
            assert!(format!("{e:#}").contains(needle), "{op}: {e:#}");
        }
    }

    #[test]
    fn resources_are_checked() {
        let f = Path::new("r.yaml");
        let mut out = Vec::new();
        let docs = parse_documents(
            f,
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec: {containers: [{name: c, image: nginx}]}\n---\n",
        )
        .unwrap();
        for (i, v) in docs {
            to_resources(f, i, v, "default", &mut out).unwrap();
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].display(), "Pod default/a");
        for (text, needle) in [
            ("- a\n- b\n", "not a Kubernetes object (found a list)"),
            (
                "kind: Pod\nmetadata: {name: a}\n",
                "`apiVersion` is missing",
            ),
            ("apiVersion: v1\nkind: Pod\n", "`metadata` is missing"),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: 3}\n",
                "metadata.name",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: 'UPPER/Case::x'}]}\n",
                "does not parse",
            ),
        ] {
            let docs = parse_documents(f, text).unwrap();
            let mut out = Vec::new();
            let e = docs
                .into_iter()
                .try_for_each(|(i, v)| to_resources(f, i, v, "default", &mut out))
                .unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.starts_with("r.yaml: document 0"), "{msg}");
            assert!(msg.contains(needle), "{text}: {msg}");
        }
        let e = parse_documents(f, "a: [1\n").unwrap_err();
        assert!(format!("{e}").contains("malformed YAML"), "{e}");
    }

    #[test]
    fn test_files_in_current_and_deprecated_forms() {
        let dir = tempfile_dir();
        let current = dir.join("current.yaml");
        std::fs::write(
            &current,
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata: {name: t}\npolicies: [p.yaml]\nresources: [r.yaml]\nresults:\n- policy: p\n  rule: autogen-r\n  resources: [ns/a, b]\n  kind: Deployment\n  result: pass\n  patchedResources: patched.yaml\n",
        )
        .unwrap();
        let t = parse_test_file(&current).unwrap();
        assert_eq!(t.results[0].resources, ["ns/a", "b"]);
        assert_eq!(
            t.results[0].patched_resources.as_deref(),
            Some("patched.yaml")
        );
        let old = dir.join("old.yaml");
        std::fs::write(
            &old,
            "name: legacy\npolicies: [p.yaml]\nresources: [r.yaml]\nresults:\n- policy: p\n  rule: r\n  resource: a\n  namespace: ns\n  status: Fail\n  patchedResource: x.yaml\n",
        )
        .unwrap();
        let t = parse_test_file(&old).unwrap();
        assert_eq!(t.results[0].resource.as_deref(), Some("a"));
        assert_eq!(
            Expected::parse(t.results[0].status.as_deref().unwrap()),
            Some(Expected::Fail)
        );
        for (body, needle) in [
            ("apiVersion: v1\nkind: Pod\n", "unsupported apiVersion"),
            (
                "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\npolicies: [p]\nresources: [r]\nresults:\n- policy: p\n  resources: [a]\n  result: pass\n",
                "results[0].rule: required",
            ),
            (
                "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\npolicies: [p]\nresources: [r]\nresults:\n- policy: p\n  rule: r\n  resources: [a]\n  result: pass\n  generatedResource: g.yaml\n",
                "results[0].generatedResource` is not supported",
            ),
            (
                "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\npolicies: []\nresources: [r]\n",
                "`policies` is empty",
            ),
        ] {
            let f = dir.join("bad.yaml");
            std::fs::write(&f, body).unwrap();
            let e = format!("{:#}", parse_test_file(&f).unwrap_err());
            assert!(e.contains("bad.yaml") && e.contains(needle), "{body}: {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sigil-policy-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn names_of_resources_policies_and_rules() {
        let r = Resource {
            file: PathBuf::from("r.yaml"),
            document: 0,
            value: json!({}),
            kind: "Pod".into(),
            api_version: "v1".into(),
            name: "a".into(),
            namespace: "ns".into(),
        };
        assert!(names_resource("a", None, &r));
        assert!(names_resource("ns/a", None, &r));
        assert!(names_resource("a", Some("ns"), &r));
        assert!(!names_resource("other/a", None, &r));
        assert!(!names_resource("a", Some("other"), &r));
        assert!(names_policy("p", "p"));
        assert!(names_policy("p", "team/p"));
        assert!(names_policy("team/p", "team/p"));
        assert!(!names_policy("q", "team/p"));
        let yaml = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: pods\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages: [{imageReferences: ['*'], attestors: [{entries: [{keyless: {subject: s, issuer: i, rekor: {url: 'https://rekor.example'}}}]}]}]\n  - name: named\n    match: {any: [{resources: {kinds: [Pod], names: [x]}}]}\n    verifyImages: [{imageReferences: ['*'], attestors: [{entries: [{keyless: {subject: s, issuer: i, rekor: {url: 'https://rekor.example'}}}]}]}]\n";
        let policy = sigil_policy::parse_policies(yaml)
            .unwrap()
            .policies
            .remove(0);
        let loaded = LoadedPolicy::new(policy, PathBuf::from("p.yaml"), yaml);
        assert!(rule_exists(&loaded, "pods"));
        assert!(rule_exists(&loaded, "autogen-pods"));
        assert!(rule_exists(&loaded, "autogen-cronjob-pods"));
        // A rule matching by name is not autogen-eligible.
        assert!(rule_exists(&loaded, "named"));
        assert!(!rule_exists(&loaded, "autogen-named"));
        assert!(!rule_exists(&loaded, "other"));
    }

    #[test]
    fn first_difference_names_the_pointer() {
        let a = json!({"spec": {"containers": [{"image": "a"}]}, "x": 1});
        let b = json!({"spec": {"containers": [{"image": "b"}]}, "x": 1});
        let (p, w, g) = first_difference(&a, &b, "").unwrap();
        assert_eq!(p, "/spec/containers/0/image");
        assert_eq!((w.as_str(), g.as_str()), ("\"a\"", "\"b\""));
        assert!(first_difference(&a, &a.clone(), "").is_none());
    }
}
