//! Kyverno's custom JMESPath functions, registered on one shared runtime.
//!
//! Semantics follow `pkg/engine/jmespath` in Kyverno: string functions take
//! strings (the regex/pattern functions also accept numbers as their subject),
//! arithmetic is on numbers, times are RFC 3339 and durations are printed the
//! way Go's `time.Duration.String` does (`1h2m3s`). A wrong argument type or
//! count is an evaluation error, never a silent value.
//!
//! Time functions keep the offset of their input as Go's `time.Time` does
//! (`time_add('2021-01-02T15:04:05-07:00', '3h')` is `2021-01-02T18:04:05-07:00`;
//! `time_to_cron` reads the fields in that offset); `time_parse` and `time_since`
//! understand Go reference layouts (`Mon Jan 02 2006 15:04:05 -0700`), and an
//! integer layout (Kyverno documents `1136239445`) means Unix seconds.
//!
//! `truncate` clamps a negative length to 0 and truncates a fractional one, as
//! Kyverno; `random` generates a string matching a regular expression (see
//! `regen`); `x509_decode` returns Go's `x509.Certificate` / `CertificateRequest`
//! as Kyverno's JSON (see `x509`).
//!
//! Not implemented (calling one is an "unknown function" error): quantity/duration
//! arithmetic (only plain numbers are supported).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use jmespath::functions::{ArgumentType as A, CustomFunction, Signature};
use jmespath::{Context, ErrorReason, JmespathError, Rcvar, Runtime, Variable};
use serde_json::Value;

use sigil_oci::time::{NANOS_PER_SEC, civil_from_days, days_from_civil};

use crate::wildcard::Wildcard;

/// Parses RFC 3339 to Unix nanoseconds (`sigil_oci::time::parse_rfc3339_nanos`).
pub use sigil_oci::time::parse_rfc3339_nanos as parse_rfc3339;

type Res = Result<Rcvar, JmespathError>;
type Body = fn(&[Rcvar], &Context<'_>) -> Res;

/// The shared runtime: standard JMESPath functions plus Kyverno's.
pub static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let mut rt = Runtime::new();
    rt.register_builtin_functions();
    register_kyverno_functions(&mut rt);
    rt
});

/// Compiles `expr` on [`RUNTIME`] and checks that every function it calls exists (the
/// JMESPath parser alone only finds unknown functions when they are called).
pub fn compile_checked(expr: &str) -> Result<jmespath::Expression<'static>, String> {
    let compiled = RUNTIME.compile(expr).map_err(|e| e.to_string())?;
    check_function_names(compiled.as_ast())?;
    Ok(compiled)
}

fn check_function_names(ast: &jmespath::ast::Ast) -> Result<(), String> {
    use jmespath::ast::Ast;
    match ast {
        Ast::Function { name, args, .. } => {
            if RUNTIME.get_function(name).is_none() {
                return Err(format!("unknown function `{name}`"));
            }
            args.iter().try_for_each(check_function_names)
        }
        Ast::Comparison { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => {
            check_function_names(lhs)?;
            check_function_names(rhs)
        }
        Ast::Condition {
            predicate, then, ..
        } => {
            check_function_names(predicate)?;
            check_function_names(then)
        }
        Ast::Expref { ast: node, .. }
        | Ast::Flatten { node, .. }
        | Ast::Not { node, .. }
        | Ast::ObjectValues { node, .. } => check_function_names(node),
        Ast::MultiList { elements, .. } => elements.iter().try_for_each(check_function_names),
        Ast::MultiHash { elements, .. } => elements
            .iter()
            .try_for_each(|kv| check_function_names(&kv.value)),
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Literal { .. }
        | Ast::Slice { .. } => Ok(()),
    }
}

/// Names of the Kyverno functions registered on [`RUNTIME`].
pub const KYVERNO_FUNCTIONS: &[&str] = &[
    "compare",
    "equal_fold",
    "replace",
    "replace_all",
    "to_upper",
    "to_lower",
    "trim",
    "trim_prefix",
    "split",
    "truncate",
    "random",
    "x509_decode",
    "regex_match",
    "regex_replace_all",
    "regex_replace_all_literal",
    "pattern_match",
    "label_match",
    "base64_decode",
    "base64_encode",
    "parse_json",
    "parse_yaml",
    "time_now_utc",
    "time_since",
    "time_after",
    "time_before",
    "time_now",
    "time_add",
    "time_parse",
    "time_utc",
    "time_diff",
    "time_truncate",
    "time_between",
    "time_to_cron",
    "round",
    "to_boolean",
    "path_canonicalize",
    "image_normalize",
    "add",
    "subtract",
    "multiply",
    "divide",
    "modulo",
    "sum",
    "semver_compare",
    "items",
    "object_from_lists",
    "lookup",
];

fn reg(rt: &mut Runtime, name: &'static str, inputs: Vec<A>, body: Body) {
    rt.register_function(
        name,
        Box::new(CustomFunction::new(
            Signature::new(inputs, None),
            Box::new(move |args: &[Rcvar], ctx: &mut Context<'_>| body(args, ctx)),
        )),
    );
}

/// Registers Kyverno's function pack on `rt`.
pub fn register_kyverno_functions(rt: &mut Runtime) {
    register_time_functions(rt);
    register_misc_functions(rt);
    let s = || A::String;
    let sn = || A::Union(vec![A::String, A::Number]);
    reg(rt, "compare", vec![s(), s()], |a, _| {
        Ok(num(match str_at(a, 0).cmp(str_at(a, 1)) {
            std::cmp::Ordering::Less => -1.0,
            std::cmp::Ordering::Equal => 0.0,
            std::cmp::Ordering::Greater => 1.0,
        }))
    });
    reg(rt, "equal_fold", vec![s(), s()], |a, _| {
        Ok(boolean(
            str_at(a, 0).to_lowercase() == str_at(a, 1).to_lowercase(),
        ))
    });
    reg(rt, "replace", vec![s(), s(), s(), A::Number], |a, ctx| {
        let n = int_at(a, 3, ctx, "replace")?;
        let (src, old, new) = (str_at(a, 0), str_at(a, 1), str_at(a, 2));
        Ok(string(if n < 0 {
            go_replace(src, old, new, usize::MAX)
        } else {
            go_replace(src, old, new, usize::try_from(n).unwrap_or(usize::MAX))
        }))
    });
    reg(rt, "replace_all", vec![s(), s(), s()], |a, _| {
        Ok(string(go_replace(
            str_at(a, 0),
            str_at(a, 1),
            str_at(a, 2),
            usize::MAX,
        )))
    });
    reg(rt, "to_upper", vec![s()], |a, _| {
        Ok(string(str_at(a, 0).to_uppercase()))
    });
    reg(rt, "to_lower", vec![s()], |a, _| {
        Ok(string(str_at(a, 0).to_lowercase()))
    });
    reg(rt, "trim", vec![s(), s()], |a, _| {
        let cut: Vec<char> = str_at(a, 1).chars().collect();
        Ok(string(str_at(a, 0).trim_matches(&cut[..]).to_owned()))
    });
    reg(rt, "trim_prefix", vec![s(), s()], |a, _| {
        let (x, p) = (str_at(a, 0), str_at(a, 1));
        Ok(string(x.strip_prefix(p).unwrap_or(x).to_owned()))
    });
    reg(rt, "split", vec![s(), s()], |a, _| {
        let (x, sep) = (str_at(a, 0), str_at(a, 1));
        let parts: Vec<Rcvar> = if sep.is_empty() {
            x.chars().map(|c| string(c.to_string())).collect()
        } else {
            x.split(sep).map(|p| string(p.to_owned())).collect()
        };
        Ok(Arc::new(Variable::Array(parts)))
    });
    reg(rt, "truncate", vec![s(), A::Number], |a, ctx| {
        // Kyverno: a negative length is 0, a fractional one is truncated (Go's `int(f)`);
        // the cut is by characters (runes).
        let n = num_at(a, 1);
        if !n.is_finite() {
            return Err(fail(ctx, "truncate", "length must be a finite number"));
        }
        // `as` saturates: lengths beyond usize keep the whole string.
        let n = if n < 0.0 { 0 } else { n.trunc() as usize };
        Ok(string(str_at(a, 0).chars().take(n).collect()))
    });
    reg(rt, "x509_decode", vec![s()], |a, ctx| {
        let v = crate::x509::decode(str_at(a, 0))
            .map_err(|e| fail(ctx, "x509_decode", &e.to_string()))?;
        to_var(&v, ctx, "x509_decode")
    });
    reg(rt, "random", vec![s()], |a, ctx| {
        crate::regen::generate(str_at(a, 0))
            .map(string)
            .map_err(|e| fail(ctx, "random", &e.to_string()))
    });
    reg(rt, "regex_match", vec![s(), sn()], |a, ctx| {
        let re = regex_at(a, 0, ctx, "regex_match")?;
        Ok(boolean(re.is_match(&str_or_num(&a[1]))))
    });
    reg(rt, "regex_replace_all", vec![s(), sn(), sn()], |a, ctx| {
        let re = regex_at(a, 0, ctx, "regex_replace_all")?;
        let rep = str_or_num(&a[2]);
        Ok(string(
            re.replace_all(&str_or_num(&a[1]), rep.as_str())
                .into_owned(),
        ))
    });
    reg(
        rt,
        "regex_replace_all_literal",
        vec![s(), sn(), sn()],
        |a, ctx| {
            let re = regex_at(a, 0, ctx, "regex_replace_all_literal")?;
            let rep = str_or_num(&a[2]);
            Ok(string(
                re.replace_all(&str_or_num(&a[1]), regex::NoExpand(&rep))
                    .into_owned(),
            ))
        },
    );
    reg(rt, "pattern_match", vec![s(), sn()], |a, _| {
        Ok(boolean(
            Wildcard::new(str_at(a, 0)).matches(&str_or_num(&a[1])),
        ))
    });
    reg(rt, "label_match", vec![A::Object, A::Object], |a, ctx| {
        let (sel, labels) = (obj_at(a, 0), obj_at(a, 1));
        let mut ok = true;
        for (k, v) in sel {
            let want = v
                .as_string()
                .ok_or_else(|| fail(ctx, "label_match", "selector values must be strings"))?;
            if labels.get(k).and_then(|l| l.as_string()) != Some(want) {
                ok = false;
            }
        }
        Ok(boolean(ok))
    });
    reg(rt, "base64_decode", vec![s()], |a, ctx| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(str_at(a, 0))
            .map_err(|e| fail(ctx, "base64_decode", &e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| fail(ctx, "base64_decode", "decoded data is not UTF-8"))?;
        Ok(string(text))
    });
    reg(rt, "base64_encode", vec![s()], |a, _| {
        Ok(string(
            base64::engine::general_purpose::STANDARD.encode(str_at(a, 0)),
        ))
    });
    reg(rt, "parse_json", vec![s()], |a, ctx| {
        let v: Value = serde_json::from_str(str_at(a, 0))
            .map_err(|e| fail(ctx, "parse_json", &e.to_string()))?;
        to_var(&v, ctx, "parse_json")
    });
    reg(rt, "parse_yaml", vec![s()], |a, ctx| {
        let v: Value = yaml_serde::from_str(str_at(a, 0))
            .map_err(|e| fail(ctx, "parse_yaml", &e.to_string()))?;
        to_var(&v, ctx, "parse_yaml")
    });
    reg(rt, "time_now_utc", vec![], |_, _| {
        Ok(string(format_rfc3339(now_nanos())))
    });
    reg(rt, "time_since", vec![s(), s(), s()], |a, ctx| {
        let layout = str_at(a, 0);
        let t1 = parse_time(layout, str_at(a, 1), ctx, "time_since")?;
        let t2 = if str_at(a, 2).is_empty() {
            now_nanos()
        } else {
            parse_time(layout, str_at(a, 2), ctx, "time_since")?
        };
        Ok(string(format_go_duration(t2 - t1)))
    });
    reg(rt, "time_after", vec![s(), s()], |a, ctx| {
        let t1 = parse_time("", str_at(a, 0), ctx, "time_after")?;
        let t2 = parse_time("", str_at(a, 1), ctx, "time_after")?;
        Ok(boolean(t1 > t2))
    });
    reg(rt, "time_before", vec![s(), s()], |a, ctx| {
        let t1 = parse_time("", str_at(a, 0), ctx, "time_before")?;
        let t2 = parse_time("", str_at(a, 1), ctx, "time_before")?;
        Ok(boolean(t1 < t2))
    });
    reg(rt, "add", vec![A::Number, A::Number], |a, _| {
        Ok(num(num_at(a, 0) + num_at(a, 1)))
    });
    reg(rt, "subtract", vec![A::Number, A::Number], |a, _| {
        Ok(num(num_at(a, 0) - num_at(a, 1)))
    });
    reg(rt, "multiply", vec![A::Number, A::Number], |a, _| {
        Ok(num(num_at(a, 0) * num_at(a, 1)))
    });
    reg(rt, "divide", vec![A::Number, A::Number], |a, ctx| {
        if num_at(a, 1) == 0.0 {
            return Err(fail(ctx, "divide", "Zero divisor passed"));
        }
        Ok(num(num_at(a, 0) / num_at(a, 1)))
    });
    reg(rt, "modulo", vec![A::Number, A::Number], |a, ctx| {
        let (x, y) = (num_at(a, 0), num_at(a, 1));
        if x.fract() != 0.0 || y.fract() != 0.0 {
            return Err(fail(
                ctx,
                "modulo",
                "Non-integer argument(s) passed for modulo",
            ));
        }
        if y == 0.0 {
            return Err(fail(ctx, "modulo", "Zero divisor passed"));
        }
        Ok(num(x % y))
    });
    reg(
        rt,
        "sum",
        vec![A::TypedArray(Box::new(A::Number))],
        |a, ctx| {
            let arr = a[0].as_array().map(Vec::as_slice).unwrap_or_default();
            if arr.is_empty() {
                return Err(fail(
                    ctx,
                    "sum",
                    "at least one element in the array is required",
                ));
            }
            Ok(num(arr.iter().filter_map(|v| v.as_number()).sum()))
        },
    );
    reg(rt, "semver_compare", vec![s(), s()], |a, ctx| {
        let v = Semver::parse(str_at(a, 0))
            .ok_or_else(|| fail(ctx, "semver_compare", "invalid semantic version"))?;
        let ok = semver_range_matches(&v, str_at(a, 1))
            .ok_or_else(|| fail(ctx, "semver_compare", "invalid version range"))?;
        Ok(boolean(ok))
    });
    reg(
        rt,
        "items",
        vec![A::Union(vec![A::Object, A::Array]), s(), s()],
        |a, _| {
            let (kn, vn) = (str_at(a, 1), str_at(a, 2));
            let entry = |k: Rcvar, v: Rcvar| {
                let mut m = BTreeMap::new();
                m.insert(kn.to_owned(), k);
                m.insert(vn.to_owned(), v);
                Arc::new(Variable::Object(m))
            };
            let out: Vec<Rcvar> = match &*a[0] {
                Variable::Object(o) => o
                    .iter()
                    .map(|(k, v)| entry(string(k.clone()), v.clone()))
                    .collect(),
                Variable::Array(arr) => arr
                    .iter()
                    .enumerate()
                    .map(|(i, v)| entry(num(i as f64), v.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            Ok(Arc::new(Variable::Array(out)))
        },
    );
    reg(
        rt,
        "object_from_lists",
        vec![A::TypedArray(Box::new(A::String)), A::Array],
        |a, _| {
            let keys = a[0].as_array().map(Vec::as_slice).unwrap_or_default();
            let vals = a[1].as_array().map(Vec::as_slice).unwrap_or_default();
            let mut m = BTreeMap::new();
            for (i, k) in keys.iter().enumerate() {
                let key = k.as_string().cloned().unwrap_or_default();
                let v = vals
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Variable::Null));
                m.insert(key, v);
            }
            Ok(Arc::new(Variable::Object(m)))
        },
    );
    reg(
        rt,
        "lookup",
        vec![A::Union(vec![A::Object, A::Array]), sn()],
        |a, ctx| match (&*a[0], &*a[1]) {
            (Variable::Object(o), Variable::String(k)) => Ok(o
                .get(k)
                .cloned()
                .unwrap_or_else(|| Arc::new(Variable::Null))),
            (Variable::Array(arr), Variable::Number(n)) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 || !f.is_finite() {
                    return Err(fail(ctx, "lookup", "array index must be an integer"));
                }
                let item = if f < 0.0 {
                    None
                } else {
                    usize::try_from(f as u64).ok().and_then(|i| arr.get(i))
                };
                Ok(item.cloned().unwrap_or_else(|| Arc::new(Variable::Null)))
            }
            _ => Err(fail(
                ctx,
                "lookup",
                "key must be a string for objects and a number for arrays",
            )),
        },
    );
}

// ---- argument helpers (types are validated by the signature first) ----

fn str_at(a: &[Rcvar], i: usize) -> &str {
    a[i].as_string().map(String::as_str).unwrap_or_default()
}

fn num_at(a: &[Rcvar], i: usize) -> f64 {
    a[i].as_number().unwrap_or(f64::NAN)
}

fn obj_at(a: &[Rcvar], i: usize) -> &BTreeMap<String, Rcvar> {
    static EMPTY: BTreeMap<String, Rcvar> = BTreeMap::new();
    a[i].as_object().unwrap_or(&EMPTY)
}

fn int_at(a: &[Rcvar], i: usize, ctx: &Context<'_>, f: &str) -> Result<i64, JmespathError> {
    let n = num_at(a, i);
    if n.fract() != 0.0 || !n.is_finite() {
        return Err(fail(ctx, f, "expected an integer"));
    }
    Ok(n as i64)
}

/// A string argument, or a number formatted like Go's `%v` / `FormatFloat(-1)`.
fn str_or_num(v: &Rcvar) -> String {
    match &**v {
        Variable::String(s) => s.clone(),
        Variable::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn regex_at(
    a: &[Rcvar],
    i: usize,
    ctx: &Context<'_>,
    f: &str,
) -> Result<regex::Regex, JmespathError> {
    regex::Regex::new(str_at(a, i)).map_err(|e| fail(ctx, f, &format!("invalid regex: {e}")))
}

fn to_var(v: &Value, ctx: &Context<'_>, f: &str) -> Res {
    Variable::try_from(v)
        .map(Arc::new)
        .map_err(|e| fail(ctx, f, &e.to_string()))
}

fn fail(ctx: &Context<'_>, f: &str, msg: &str) -> JmespathError {
    // jmespath 0.5 has no free-form runtime error; `Parse` carries the message.
    JmespathError::from_ctx(ctx, ErrorReason::Parse(format!("{f}: {msg}")))
}

fn string(s: String) -> Rcvar {
    Arc::new(Variable::String(s))
}

fn boolean(b: bool) -> Rcvar {
    Arc::new(Variable::Bool(b))
}

fn num(n: f64) -> Rcvar {
    Arc::new(
        serde_json::Number::from_f64(n)
            .map(Variable::Number)
            .unwrap_or(Variable::Null),
    )
}

/// Go's `strings.Replace(s, old, new, n)` for `n >= 0` (`usize::MAX` = all).
fn go_replace(s: &str, old: &str, new: &str, n: usize) -> String {
    if old.is_empty() {
        // Go inserts `new` before each rune and at the end, up to n times.
        let mut out = String::new();
        let mut count = 0usize;
        for c in s.chars() {
            if count < n {
                out.push_str(new);
                count += 1;
            }
            out.push(c);
        }
        if count < n {
            out.push_str(new);
        }
        return out;
    }
    s.replacen(old, new, n)
}

// ---- time ----

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or_default()
}

/// Parses `s` with a Go layout (empty: RFC 3339) into Unix nanoseconds.
fn parse_time(layout: &str, s: &str, ctx: &Context<'_>, f: &str) -> Result<i128, JmespathError> {
    if layout.is_empty() {
        return parse_rfc3339(s)
            .ok_or_else(|| fail(ctx, f, &format!("invalid RFC 3339 time `{s}`")));
    }
    parse_go_layout(layout, s)
        .map(|t| t.nanos)
        .map_err(|e| fail(ctx, f, &format!("parsing `{s}` as `{layout}`: {e}")))
}

/// Formats Unix nanoseconds as RFC 3339 UTC (`2006-01-02T15:04:05Z`).
pub fn format_rfc3339(nanos: i128) -> String {
    let secs = nanos.div_euclid(NANOS_PER_SEC);
    sigil_oci::time::format_rfc3339(i64::try_from(secs).unwrap_or(if secs < 0 {
        i64::MIN
    } else {
        i64::MAX
    }))
}

/// Formats nanoseconds like Go's `time.Duration.String()`.
pub fn format_go_duration(nanos: i128) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let frac = |v: u128, unit: u128| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.to_string().len() - 1;
        let f = format!("{rest:0width$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 1_000_000))
    } else {
        let total_secs = u / 1_000_000_000;
        let h = total_secs / 3600;
        let m = (total_secs % 3600) / 60;
        let s = frac(u % 60_000_000_000, 1_000_000_000);
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else if m > 0 {
            format!("{m}m{s}s")
        } else {
            format!("{s}s")
        }
    };
    if neg { format!("-{body}") } else { body }
}

// ---- time functions that keep the input's offset ----

/// A point in time with the UTC offset it was written with (Go's `time.Time` with a fixed zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ZonedTime {
    /// Unix nanoseconds (UTC).
    nanos: i128,
    /// Offset east of UTC, in seconds.
    offset: i64,
}

/// The offset of an RFC 3339 string (`Z` or `±hh:mm`), in seconds.
fn rfc3339_offset(s: &str) -> Option<i64> {
    if s.ends_with(['Z', 'z']) {
        return Some(0);
    }
    let tail = s.get(s.len().checked_sub(6)?..)?;
    let b = tail.as_bytes();
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h: i64 = tail.get(1..3)?.parse().ok()?;
    let m: i64 = tail.get(4..6)?.parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

fn parse_zoned(s: &str, ctx: &Context<'_>, f: &str) -> Result<ZonedTime, JmespathError> {
    match (parse_rfc3339(s), rfc3339_offset(s)) {
        (Some(nanos), Some(offset)) => Ok(ZonedTime { nanos, offset }),
        _ => Err(fail(ctx, f, &format!("invalid RFC 3339 time `{s}`"))),
    }
}

/// Formats as Go's `Format(time.RFC3339)`: whole seconds, `Z` for a zero offset, else `±hh:mm`.
fn format_zoned(t: ZonedTime) -> String {
    let utc = format_rfc3339(t.nanos + i128::from(t.offset) * 1_000_000_000);
    if t.offset == 0 {
        return utc;
    }
    let sign = if t.offset < 0 { '-' } else { '+' };
    let a = t.offset.abs();
    format!(
        "{}{sign}{:02}:{:02}",
        utc.trim_end_matches('Z'),
        a / 3600,
        (a % 3600) / 60
    )
}

/// Parses a Go duration (`1h30m`, `-1.5h`, `300ms`, `0`) into nanoseconds, exactly.
pub fn parse_go_duration_nanos(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            frac_part = &r[..n];
            rest = &r[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        total = total.checked_add(whole.checked_mul(unit)?)?;
        // The fraction scaled to the unit, truncated as Go does.
        let mut scale = unit;
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            total = total.checked_add(i128::from(d - b'0') * scale)?;
        }
    }
    // Go durations are int64 nanoseconds.
    if total > i128::from(i64::MAX) {
        return None;
    }
    Some(if neg { -total } else { total })
}

fn duration_arg(a: &[Rcvar], i: usize, ctx: &Context<'_>, f: &str) -> Result<i128, JmespathError> {
    let s = str_at(a, i);
    parse_go_duration_nanos(s).ok_or_else(|| fail(ctx, f, &format!("invalid duration `{s}`")))
}

/// Seconds from Go's zero time (0001-01-01T00:00:00Z) to the Unix epoch: `Truncate` counts from there.
const GO_ZERO_TO_UNIX_SECS: i128 = 62_135_596_800;

fn register_time_functions(rt: &mut Runtime) {
    let s = || A::String;
    reg(rt, "time_now", vec![], |_, _| {
        Ok(string(format_rfc3339(now_nanos())))
    });
    reg(rt, "time_add", vec![s(), s()], |a, ctx| {
        let t = parse_zoned(str_at(a, 0), ctx, "time_add")?;
        let d = duration_arg(a, 1, ctx, "time_add")?;
        Ok(string(format_zoned(ZonedTime {
            nanos: t.nanos + d,
            ..t
        })))
    });
    reg(rt, "time_utc", vec![s()], |a, ctx| {
        let t = parse_zoned(str_at(a, 0), ctx, "time_utc")?;
        Ok(string(format_rfc3339(t.nanos)))
    });
    reg(rt, "time_diff", vec![s(), s()], |a, ctx| {
        let t1 = parse_zoned(str_at(a, 0), ctx, "time_diff")?;
        let t2 = parse_zoned(str_at(a, 1), ctx, "time_diff")?;
        Ok(string(format_go_duration(t2.nanos - t1.nanos)))
    });
    reg(rt, "time_truncate", vec![s(), s()], |a, ctx| {
        let t = parse_zoned(str_at(a, 0), ctx, "time_truncate")?;
        let d = duration_arg(a, 1, ctx, "time_truncate")?;
        if d <= 0 {
            // Go: Truncate with d <= 0 returns the time unchanged (without monotonic reading).
            return Ok(string(format_zoned(t)));
        }
        let abs = t.nanos + GO_ZERO_TO_UNIX_SECS * 1_000_000_000;
        let truncated = abs - abs.rem_euclid(d) - GO_ZERO_TO_UNIX_SECS * 1_000_000_000;
        Ok(string(format_zoned(ZonedTime {
            nanos: truncated,
            ..t
        })))
    });
    reg(rt, "time_between", vec![s(), s(), s()], |a, ctx| {
        let t = parse_zoned(str_at(a, 0), ctx, "time_between")?;
        let start = parse_zoned(str_at(a, 1), ctx, "time_between")?;
        let end = parse_zoned(str_at(a, 2), ctx, "time_between")?;
        Ok(boolean(t.nanos > start.nanos && t.nanos < end.nanos))
    });
    reg(rt, "time_to_cron", vec![s()], |a, ctx| {
        // In the time's own offset, as Go's `t.Minute()`, `t.Hour()`, ... do.
        let t = parse_zoned(str_at(a, 0), ctx, "time_to_cron")?;
        let local = t.nanos + i128::from(t.offset) * 1_000_000_000;
        let secs = local.div_euclid(1_000_000_000) as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (_, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday (4); cron's weekday 0 is Sunday.
        let weekday = (days + 4).rem_euclid(7);
        Ok(string(format!(
            "{} {} {day} {month} {weekday}",
            (rem % 3600) / 60,
            rem / 3600
        )))
    });
    reg(rt, "time_parse", vec![s(), s()], |a, ctx| {
        let (layout, value) = (str_at(a, 0), str_at(a, 1));
        let t = parse_go_layout(layout, value).map_err(|e| {
            fail(
                ctx,
                "time_parse",
                &format!("parsing `{value}` as `{layout}`: {e}"),
            )
        })?;
        Ok(string(format_zoned(t)))
    });
}

// ---- Go reference layouts (`time.Parse`) ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Literal(String),
    LongMonth,
    Month,
    NumMonth {
        zero: bool,
    },
    LongWeekday,
    Weekday,
    Day {
        pad: DayPad,
    },
    YearDay {
        pad: bool,
    },
    Hour,
    Hour12 {
        zero: bool,
    },
    Minute {
        zero: bool,
    },
    Second {
        zero: bool,
    },
    LongYear,
    Year,
    Pm {
        upper: bool,
    },
    ZoneName,
    /// `-0700`-style offsets: `z` allows `Z` for UTC; `colon`; `seconds`; `hours_only` (`-07`).
    Offset {
        z: bool,
        colon: bool,
        seconds: bool,
        hours_only: bool,
    },
    /// `.000` (exactly `digits`) or `.999` (any number of digits, possibly none).
    Fraction {
        digits: usize,
        exact: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayPad {
    None,
    Zero,
    Space,
}

/// Splits a Go layout into chunks (the rules of Go's `nextStdChunk`).
fn layout_chunks(layout: &str) -> Vec<Chunk> {
    let b = layout.as_bytes();
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let starts = |i: usize, p: &str| layout.get(i..).is_some_and(|r| r.starts_with(p));
    while i < b.len() {
        let found: Option<(Chunk, usize)> = match b[i] {
            b'J' if starts(i, "January") => Some((Chunk::LongMonth, 7)),
            b'J' if starts(i, "Jan") => Some((Chunk::Month, 3)),
            b'M' if starts(i, "Monday") => Some((Chunk::LongWeekday, 6)),
            b'M' if starts(i, "Mon") => Some((Chunk::Weekday, 3)),
            b'M' if starts(i, "MST") => Some((Chunk::ZoneName, 3)),
            b'0' if starts(i, "002") => Some((Chunk::YearDay { pad: true }, 3)),
            b'0' if starts(i, "01") => Some((Chunk::NumMonth { zero: true }, 2)),
            b'0' if starts(i, "02") => Some((Chunk::Day { pad: DayPad::Zero }, 2)),
            b'0' if starts(i, "03") => Some((Chunk::Hour12 { zero: true }, 2)),
            b'0' if starts(i, "04") => Some((Chunk::Minute { zero: true }, 2)),
            b'0' if starts(i, "05") => Some((Chunk::Second { zero: true }, 2)),
            b'0' if starts(i, "06") => Some((Chunk::Year, 2)),
            b'1' if starts(i, "15") => Some((Chunk::Hour, 2)),
            b'1' => Some((Chunk::NumMonth { zero: false }, 1)),
            b'2' if starts(i, "2006") => Some((Chunk::LongYear, 4)),
            b'2' => Some((Chunk::Day { pad: DayPad::None }, 1)),
            // `_` is literal before a year (`_2006`), as in Go.
            b'_' if starts(i, "_2006") => None,
            b'_' if starts(i, "__2") => Some((Chunk::YearDay { pad: false }, 3)),
            b'_' if starts(i, "_2") => Some((Chunk::Day { pad: DayPad::Space }, 2)),
            b'3' => Some((Chunk::Hour12 { zero: false }, 1)),
            b'4' => Some((Chunk::Minute { zero: false }, 1)),
            b'5' => Some((Chunk::Second { zero: false }, 1)),
            b'P' if starts(i, "PM") => Some((Chunk::Pm { upper: true }, 2)),
            b'p' if starts(i, "pm") => Some((Chunk::Pm { upper: false }, 2)),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                let rest = &layout[i + 1..];
                [
                    ("070000", false, true, false),
                    ("07:00:00", true, true, false),
                    ("0700", false, false, false),
                    ("07:00", true, false, false),
                    ("07", false, false, true),
                ]
                .into_iter()
                .find(|(p, ..)| rest.starts_with(p))
                .map(|(p, colon, seconds, hours_only)| {
                    (
                        Chunk::Offset {
                            z,
                            colon,
                            seconds,
                            hours_only,
                        },
                        p.len() + 1,
                    )
                })
            }
            b'.' | b',' if i + 1 < b.len() && matches!(b[i + 1], b'0' | b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == ch {
                    j += 1;
                }
                // Only when not followed by another digit (as in Go).
                if j < b.len() && b[j].is_ascii_digit() {
                    None
                } else {
                    Some((
                        Chunk::Fraction {
                            digits: j - i - 1,
                            exact: ch == b'0',
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        match found {
            Some((chunk, len)) => {
                if !lit.is_empty() {
                    out.push(Chunk::Literal(std::mem::take(&mut lit)));
                }
                out.push(chunk);
                i += len;
            }
            None => {
                let c = layout[i..].chars().next().unwrap_or_default();
                lit.push(c);
                i += c.len_utf8().max(1);
            }
        }
    }
    if !lit.is_empty() {
        out.push(Chunk::Literal(lit));
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Takes 1–2 digits (`fixed`: exactly 2) from the front of `v`.
fn take_num(v: &mut &str, fixed: bool) -> Result<i64, String> {
    let n = v.bytes().take(2).take_while(u8::is_ascii_digit).count();
    if n == 0 || (fixed && n != 2) {
        return Err(format!("expected a number at `{v}`"));
    }
    let (d, rest) = v.split_at(n);
    *v = rest;
    d.parse().map_err(|_| format!("bad number `{d}`"))
}

fn take_digits(v: &mut &str, n: usize) -> Result<i64, String> {
    let d = v
        .get(..n)
        .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| format!("expected {n} digits at `{v}`"))?;
    *v = &v[n..];
    d.parse().map_err(|_| format!("bad number `{d}`"))
}

/// Takes one of `names` (full, or the 3-letter prefix when `short`), case-insensitively.
fn take_name(v: &mut &str, names: &[&str], short: bool) -> Result<usize, String> {
    for (i, name) in names.iter().enumerate() {
        let want = if short { &name[..3] } else { name };
        if v.len() >= want.len()
            && v.is_char_boundary(want.len())
            && v[..want.len()].eq_ignore_ascii_case(want)
        {
            *v = &v[want.len()..];
            return Ok(i);
        }
    }
    Err(format!("unknown name at `{v}`"))
}

/// Go's `skip`: matches a literal, treating runs of spaces as equivalent.
fn take_literal(v: &mut &str, lit: &str) -> Result<(), String> {
    let mut p = lit;
    while !p.is_empty() {
        if p.starts_with(' ') {
            if !v.is_empty() && !v.starts_with(' ') {
                return Err(format!("expected `{lit}` at `{v}`"));
            }
            p = p.trim_start_matches(' ');
            *v = v.trim_start_matches(' ');
            continue;
        }
        let c = p.chars().next().unwrap_or_default();
        if !v.starts_with(c) {
            return Err(format!("expected `{lit}` at `{v}`"));
        }
        p = &p[c.len_utf8()..];
        *v = &v[c.len_utf8()..];
    }
    Ok(())
}

fn take_fraction(v: &mut &str) -> i128 {
    let digits = v.bytes().skip(1).take_while(u8::is_ascii_digit).count();
    let f: String = v[1..=digits]
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    *v = &v[1 + digits..];
    f.parse().unwrap_or_default()
}

/// Go's `time.Parse(layout, value)` for the layout elements above (and the epoch layout).
fn parse_go_layout(layout: &str, value: &str) -> Result<ZonedTime, String> {
    // Any integer layout (Kyverno documents `1136239445`) means the value is Unix seconds.
    if layout.parse::<i64>().is_ok() {
        let secs: i64 = value
            .parse()
            .map_err(|_| "expected Unix seconds".to_owned())?;
        return Ok(ZonedTime {
            nanos: i128::from(secs) * 1_000_000_000,
            offset: 0,
        });
    }
    let chunks = layout_chunks(layout);
    let mut v = value;
    let (mut year, mut month, mut day, mut yday) = (0i64, -1i64, -1i64, -1i64);
    let (mut hour, mut minute, mut second, mut nanos) = (0i64, 0i64, 0i64, 0i128);
    let (mut pm, mut am, mut offset) = (false, false, 0i64);
    for (idx, chunk) in chunks.iter().enumerate() {
        match chunk {
            Chunk::Literal(l) => take_literal(&mut v, l)?,
            Chunk::LongMonth => month = take_name(&mut v, &MONTHS, false)? as i64 + 1,
            Chunk::Month => month = take_name(&mut v, &MONTHS, true)? as i64 + 1,
            Chunk::NumMonth { zero } => month = take_num(&mut v, *zero)?,
            Chunk::LongWeekday => drop(take_name(&mut v, &WEEKDAYS, false)?),
            Chunk::Weekday => drop(take_name(&mut v, &WEEKDAYS, true)?),
            Chunk::Day { pad } => {
                if *pad == DayPad::Space && v.starts_with(' ') {
                    v = &v[1..];
                }
                day = take_num(&mut v, *pad == DayPad::Zero)?;
            }
            Chunk::YearDay { pad } => {
                if !pad {
                    v = v.trim_start_matches(' ');
                    let n = v.bytes().take(3).take_while(u8::is_ascii_digit).count();
                    yday = take_digits(&mut v, n.max(1))?;
                } else {
                    yday = take_digits(&mut v, 3)?;
                }
            }
            Chunk::Hour => hour = take_num(&mut v, false)?,
            Chunk::Hour12 { zero } => hour = take_num(&mut v, *zero)?,
            Chunk::Minute { zero } => minute = take_num(&mut v, *zero)?,
            Chunk::Second { zero } => {
                second = take_num(&mut v, *zero)?;
                // A fraction may follow even when the layout has none (as in Go).
                let next_is_fraction = matches!(chunks.get(idx + 1), Some(Chunk::Fraction { .. }));
                if !next_is_fraction
                    && v.len() >= 2
                    && matches!(v.as_bytes()[0], b'.' | b',')
                    && v.as_bytes()[1].is_ascii_digit()
                {
                    nanos = take_fraction(&mut v);
                }
            }
            Chunk::LongYear => year = take_digits(&mut v, 4)?,
            Chunk::Year => {
                let y = take_digits(&mut v, 2)?;
                year = if y >= 69 { 1900 + y } else { 2000 + y };
            }
            Chunk::Pm { upper } => {
                let got = v.get(..2).ok_or("expected AM or PM")?;
                let (p, a) = if *upper { ("PM", "AM") } else { ("pm", "am") };
                if got == p {
                    pm = true;
                } else if got == a {
                    am = true;
                } else {
                    return Err(format!("expected {a} or {p} at `{v}`"));
                }
                v = &v[2..];
            }
            Chunk::ZoneName => {
                let n = v.bytes().take_while(u8::is_ascii_uppercase).count();
                if !(3..=5).contains(&n) {
                    return Err(format!("expected a time zone name at `{v}`"));
                }
                // Abbreviations carry no offset: Go fabricates a zone with offset 0.
                v = &v[n..];
            }
            Chunk::Offset {
                z,
                colon,
                seconds,
                hours_only,
            } => {
                if *z && v.starts_with('Z') {
                    v = &v[1..];
                    offset = 0;
                    continue;
                }
                let sign = match v.as_bytes().first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return Err(format!("expected a UTC offset at `{v}`")),
                };
                v = &v[1..];
                let h = take_digits(&mut v, 2)?;
                let mut m = 0;
                let mut sec = 0;
                if !hours_only {
                    if *colon {
                        take_literal(&mut v, ":")?;
                    }
                    m = take_digits(&mut v, 2)?;
                    if *seconds {
                        if *colon {
                            take_literal(&mut v, ":")?;
                        }
                        sec = take_digits(&mut v, 2)?;
                    }
                }
                if h > 24 || m > 59 || sec > 59 {
                    return Err("UTC offset out of range".into());
                }
                offset = sign * (h * 3600 + m * 60 + sec);
            }
            Chunk::Fraction { digits, exact } => {
                let has = v.len() >= 2
                    && matches!(v.as_bytes()[0], b'.' | b',')
                    && v.as_bytes()[1].is_ascii_digit();
                if *exact {
                    if !has || v.bytes().skip(1).take_while(u8::is_ascii_digit).count() < *digits {
                        return Err(format!("expected {digits} fractional digits at `{v}`"));
                    }
                    let f: String = v[1..=*digits]
                        .chars()
                        .chain(std::iter::repeat('0'))
                        .take(9)
                        .collect();
                    nanos = f.parse().unwrap_or_default();
                    v = &v[1 + digits..];
                } else if has {
                    nanos = take_fraction(&mut v);
                }
            }
        }
    }
    if !v.is_empty() {
        return Err(format!("extra text `{v}`"));
    }
    if pm && hour < 12 {
        hour += 12;
    } else if am && hour == 12 {
        hour = 0;
    }
    if (pm || am) && !(0..=23).contains(&hour) {
        return Err("hour out of range".into());
    }
    if !(0..=23).contains(&hour) || !(0..=59).contains(&minute) || !(0..=59).contains(&second) {
        return Err("time of day out of range".into());
    }
    if yday >= 0 {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        if yday < 1 || yday > if leap { 366 } else { 365 } {
            return Err("day of year out of range".into());
        }
        let (_, m, d) = civil_from_days(days_from_civil(year, 1, 1) + yday - 1);
        if (month >= 0 && month != m) || (day >= 0 && day != d) {
            return Err("day of year does not match the date".into());
        }
        month = m;
        day = d;
    }
    let month = if month < 0 { 1 } else { month };
    let day = if day < 0 { 1 } else { day };
    if !(1..=12).contains(&month) {
        return Err("month out of range".into());
    }
    let month_len = days_from_civil(
        if month == 12 { year + 1 } else { year },
        if month == 12 { 1 } else { month + 1 },
        1,
    ) - days_from_civil(year, month, 1);
    if day < 1 || day > month_len {
        return Err("day out of range".into());
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Ok(ZonedTime {
        nanos: i128::from(secs) * 1_000_000_000 + nanos,
        offset,
    })
}

// ---- other functions ----

fn register_misc_functions(rt: &mut Runtime) {
    let s = || A::String;
    reg(rt, "round", vec![A::Number, A::Number], |a, ctx| {
        let places = num_at(a, 1);
        if places.fract() != 0.0 || !places.is_finite() {
            return Err(fail(ctx, "round", "decimal places must be an integer"));
        }
        if places < 0.0 {
            return Err(fail(ctx, "round", "decimal places must be >= 0"));
        }
        let shift = 10f64.powi(i32::try_from(places as i64).unwrap_or(i32::MAX));
        // f64::round rounds half away from zero, as Go's math.Round.
        Ok(num((num_at(a, 0) * shift).round() / shift))
    });
    reg(rt, "to_boolean", vec![s()], |a, ctx| {
        match str_at(a, 0).to_ascii_lowercase().as_str() {
            "true" => Ok(boolean(true)),
            "false" => Ok(boolean(false)),
            other => Err(fail(
                ctx,
                "to_boolean",
                &format!("`{other}` is not true or false"),
            )),
        }
    });
    reg(rt, "path_canonicalize", vec![s()], |a, _| {
        Ok(string(clean_path(str_at(a, 0))))
    });
    reg(rt, "image_normalize", vec![s()], |a, ctx| {
        let info = crate::image::ImageInfo::parse(str_at(a, 0))
            .map_err(|e| fail(ctx, "image_normalize", &e.to_string()))?;
        Ok(string(info.kyverno_string()))
    });
}

/// Go's `path/filepath.Join(p)` on Unix: `Clean(p)`, except that an empty path stays empty.
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return String::new();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

// ---- semver (blang/semver ranges, as used by Kyverno) ----

#[derive(Debug, PartialEq, Eq)]
struct Semver {
    core: (u64, u64, u64),
    pre: Vec<String>,
}

impl Semver {
    fn parse(s: &str) -> Option<Self> {
        let s = s.split('+').next()?;
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, p.split('.').map(str::to_owned).collect()),
            None => (s, Vec::new()),
        };
        let mut it = core.split('.');
        let mut part = || -> Option<u64> {
            let p = it.next()?;
            if p.is_empty()
                || !p.bytes().all(|c| c.is_ascii_digit())
                || (p.len() > 1 && p.starts_with('0'))
            {
                return None;
            }
            p.parse().ok()
        };
        let v = (part()?, part()?, part()?);
        if it.next().is_some() {
            return None;
        }
        let pre: Vec<String> = pre;
        if pre.iter().any(String::is_empty) {
            return None;
        }
        Some(Self { core: v, pre })
    }

    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        self.core
            .cmp(&o.core)
            .then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(&o.pre) {
                        let ord = match (a.parse::<u64>(), b.parse::<u64>()) {
                            (Ok(x), Ok(y)) => x.cmp(&y),
                            (Ok(_), Err(_)) => Ordering::Less,
                            (Err(_), Ok(_)) => Ordering::Greater,
                            (Err(_), Err(_)) => a.cmp(b),
                        };
                        if ord != Ordering::Equal {
                            return ord;
                        }
                    }
                    self.pre.len().cmp(&o.pre.len())
                }
            })
    }
}

/// `>=1.0.0 <2.0.0 || 3.x`-style ranges: `||` separates alternatives, spaces AND.
/// Operators: `=`/`==`/none, `!=`/`!`, `>`, `>=`, `<`, `<=`. `x` wildcards are not supported.
fn semver_range_matches(v: &Semver, range: &str) -> Option<bool> {
    let mut any = false;
    for alt in range.split("||") {
        let mut all = true;
        let mut n = 0;
        for c in alt.split_whitespace() {
            n += 1;
            let (op, ver) = if let Some(r) = c.strip_prefix(">=") {
                (">=", r)
            } else if let Some(r) = c.strip_prefix("<=") {
                ("<=", r)
            } else if let Some(r) = c.strip_prefix("!=") {
                ("!=", r)
            } else if let Some(r) = c.strip_prefix("==") {
                ("=", r)
            } else if let Some(r) = c.strip_prefix('>') {
                (">", r)
            } else if let Some(r) = c.strip_prefix('<') {
                ("<", r)
            } else if let Some(r) = c.strip_prefix('=') {
                ("=", r)
            } else if let Some(r) = c.strip_prefix('!') {
                ("!=", r)
            } else {
                ("=", c)
            };
            let ord = v.cmp(&Semver::parse(ver)?);
            let ok = match op {
                ">=" => ord.is_ge(),
                "<=" => ord.is_le(),
                ">" => ord.is_gt(),
                "<" => ord.is_lt(),
                "!=" => ord.is_ne(),
                _ => ord.is_eq(),
            };
            all &= ok;
        }
        if n == 0 {
            return None;
        }
        any |= all;
    }
    Some(any)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{Value, json};

    use super::parse_go_duration_nanos;
    use crate::conditions::eval_jmespath;

    fn ev(expr: &str) -> Value {
        eval_jmespath(expr, &json!({})).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn err(expr: &str) -> String {
        match eval_jmespath(expr, &json!({})) {
            Ok(v) => panic!("{expr} should fail, got {v}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn time_arithmetic_keeps_the_offset() {
        assert_eq!(
            ev("time_add('2021-01-02T15:04:05-07:00', '3h')"),
            json!("2021-01-02T18:04:05-07:00")
        );
        assert_eq!(
            ev("time_add('2021-01-02T15:04:05Z', '-1.5h')"),
            json!("2021-01-02T13:34:05Z")
        );
        assert_eq!(
            ev("time_add('2021-12-31T23:30:00+05:30', '45m')"),
            json!("2022-01-01T00:15:00+05:30")
        );
        assert_eq!(
            ev("time_utc('2021-01-02T18:04:05-07:00')"),
            json!("2021-01-03T01:04:05Z")
        );
        assert_eq!(
            ev("time_diff('2021-01-01T00:00:00Z', '2021-01-02T00:00:00Z')"),
            json!("24h0m0s")
        );
        assert_eq!(
            ev("time_diff('2021-01-02T00:00:00Z', '2021-01-01T00:00:00Z')"),
            json!("-24h0m0s")
        );
        assert_eq!(
            ev("time_diff('2021-01-01T00:00:00-01:00', '2021-01-01T00:00:00Z')"),
            json!("-1h0m0s")
        );
    }

    #[test]
    fn time_truncate_between_and_cron() {
        assert_eq!(
            ev("time_truncate('2023-02-25T19:40:27Z', '1h')"),
            json!("2023-02-25T19:00:00Z")
        );
        assert_eq!(
            ev("time_truncate('2023-02-25T19:40:27Z', '24h')"),
            json!("2023-02-25T00:00:00Z")
        );
        assert_eq!(
            ev("time_truncate('2023-02-25T19:40:27Z', '15m')"),
            json!("2023-02-25T19:30:00Z")
        );
        // Truncation is on the absolute time; the offset is kept for display (Go's Truncate).
        assert_eq!(
            ev("time_truncate('2023-02-25T19:40:27+05:30', '1h')"),
            json!("2023-02-25T19:30:00+05:30")
        );
        assert_eq!(
            ev(
                "time_between('2021-01-02T17:04:05-07:00', '2021-01-01T00:00:00-07:00', '2021-01-03T00:00:00-07:00')"
            ),
            json!(true)
        );
        assert_eq!(
            ev(
                "time_between('2021-01-03T00:00:00-07:00', '2021-01-01T00:00:00-07:00', '2021-01-03T00:00:00-07:00')"
            ),
            json!(false)
        );
        assert_eq!(
            ev("time_to_cron('2022-04-11T03:12:14Z')"),
            json!("12 3 11 4 1")
        );
        // In the time's own offset (Go's t.Hour() etc.), not UTC.
        assert_eq!(
            ev("time_to_cron('2022-04-11T03:12:14+05:00')"),
            json!("12 3 11 4 1")
        );
        assert_eq!(
            ev("time_to_cron('2022-04-10T23:59:00-01:00')"),
            json!("59 23 10 4 0")
        );
        let now = ev("time_now()");
        assert!(
            super::parse_rfc3339(now.as_str().unwrap()).is_some(),
            "{now}"
        );
    }

    #[test]
    fn time_parse_go_layouts() {
        for (layout, value, want) in [
            (
                "Mon Jan 02 2006 15:04:05 -0700",
                "Sat Jan 01 2022 00:00:00 +0000",
                "2022-01-01T00:00:00Z",
            ),
            (
                "Mon Jan 02 2006 15:04:05 -0700",
                "Sat Jan 01 2022 00:00:00 -0130",
                "2022-01-01T00:00:00-01:30",
            ),
            ("2006-01-02", "2023-03-01", "2023-03-01T00:00:00Z"),
            (
                "02 Jan 06 15:04 MST",
                "25 Feb 23 19:40 UTC",
                "2023-02-25T19:40:00Z",
            ),
            (
                "Monday, 02-Jan-06 15:04:05 MST",
                "Tuesday, 07-Mar-23 08:09:10 GMT",
                "2023-03-07T08:09:10Z",
            ),
            (
                "Jan _2 15:04:05.000",
                "Feb  5 07:08:09.123",
                "0000-02-05T07:08:09Z",
            ),
            ("3:04PM", "7:08PM", "0000-01-01T19:08:00Z"),
            ("3:04pm", "12:08am", "0000-01-01T00:08:00Z"),
            (
                "2006-01-02T15:04:05Z07:00",
                "2021-01-02T15:04:05-07:00",
                "2021-01-02T15:04:05-07:00",
            ),
            (
                "2006-01-02T15:04:05Z07:00",
                "2021-01-02T15:04:05.999Z",
                "2021-01-02T15:04:05Z",
            ),
            (
                "January 2, 2006",
                "February 28, 1999",
                "1999-02-28T00:00:00Z",
            ),
            ("2006-002", "2024-060", "2024-02-29T00:00:00Z"),
            ("20060102T150405", "20230704T050607", "2023-07-04T05:06:07Z"),
            ("1136239445", "1666780200", "2022-10-26T10:30:00Z"),
            ("0", "-1", "1969-12-31T23:59:59Z"),
        ] {
            assert_eq!(
                ev(&format!("time_parse('{layout}', '{value}')")),
                json!(want),
                "{layout} / {value}"
            );
        }
        for (layout, value, needle) in [
            ("2006-01-02", "2023-02-30", "day out of range"),
            ("2006-01-02", "2023-02-01x", "extra text"),
            ("2006-01-02", "23-02-01", "expected 4 digits"),
            ("15:04", "25:00", "out of range"),
            ("Jan 2", "Foo 2", "unknown name"),
            ("2006-002", "2023-366", "day of year out of range"),
            ("1136239445", "soon", "Unix seconds"),
        ] {
            let e = err(&format!("time_parse('{layout}', '{value}')"));
            assert!(e.contains(needle), "{layout} / {value}: {e}");
        }
    }

    #[test]
    fn time_since_with_a_layout_and_round() {
        assert_eq!(
            ev("time_since('2006-01-02 15:04', '2023-01-01 10:00', '2023-01-02 11:30')"),
            json!("25h30m0s")
        );
        assert!(err("time_since('2006-01-02', '2023-13-01', '')").contains("month out of range"));
        assert_eq!(ev("round(`2.71828`, `2`)"), json!(2.72));
        assert_eq!(ev("round(`2.5`, `0`)"), json!(3.0));
        assert_eq!(ev("round(`-2.5`, `0`)"), json!(-3.0));
        assert!(err("round(`1.5`, `-1`)").contains(">= 0"));
        assert!(err("round(`1.5`, `0.5`)").contains("integer"));
    }

    #[test]
    fn time_errors_are_errors() {
        assert!(err("time_add('yesterday', '1h')").contains("invalid RFC 3339"));
        assert!(err("time_add('2021-01-02T15:04:05Z', '1d')").contains("invalid duration"));
        assert!(err("time_truncate('2021-01-02T15:04:05Z', 'h')").contains("invalid duration"));
        assert!(err("time_to_cron('2021-13-02T15:04:05Z')").contains("invalid RFC 3339"));
    }

    #[test]
    fn go_durations_in_nanoseconds() {
        for (s, want) in [
            ("0", Some(0)),
            ("1h30m", Some(5_400_000_000_000)),
            ("1.5h", Some(5_400_000_000_000)),
            ("300ms", Some(300_000_000)),
            ("-2m3.5s", Some(-123_500_000_000)),
            (".5s", Some(500_000_000)),
            ("1.s", Some(1_000_000_000)),
            ("1µs", Some(1_000)),
            ("1.0000000001s", Some(1_000_000_000)),
            ("", None),
            ("5", None),
            ("1d", None),
            ("h", None),
            (".s", None),
            ("3000000h", None),
        ] {
            assert_eq!(parse_go_duration_nanos(s), want, "{s:?}");
        }
    }

    #[test]
    fn booleans_paths_and_images() {
        assert_eq!(ev("to_boolean('True')"), json!(true));
        assert_eq!(ev("to_boolean('false')"), json!(false));
        assert!(err("to_boolean('yes')").contains("not true or false"));
        for (p, want) in [
            ("/var/lib/../lib/./x//y/", "/var/lib/x/y"),
            ("../a/../../b", "../../b"),
            ("", ""),
            ("/..", "/"),
            ("a/..", "."),
            ("//etc/passwd", "/etc/passwd"),
        ] {
            assert_eq!(ev(&format!("path_canonicalize('{p}')")), json!(want), "{p}");
        }
        assert_eq!(
            ev("image_normalize('nginx')"),
            json!("docker.io/nginx:latest")
        );
        assert_eq!(
            ev("image_normalize('ghcr.io/kyverno/kyverno')"),
            json!("ghcr.io/kyverno/kyverno:latest")
        );
        assert_eq!(
            ev("image_normalize('127.0.0.1:5000/a/b:v1@sha256:0123')"),
            json!("127.0.0.1:5000/a/b@sha256:0123")
        );
        assert!(err("image_normalize('')").contains("invalid image reference"));
        // Not a PEM block: an error naming the function, never a value.
        let e = err("x509_decode('x')");
        assert!(e.contains("x509_decode: failed to decode PEM block"), "{e}");
    }
}
