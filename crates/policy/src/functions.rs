//! Kyverno's custom JMESPath functions, registered on one shared runtime.
//!
//! Semantics follow `pkg/engine/jmespath` in Kyverno: string functions take
//! strings (the regex/pattern functions also accept numbers as their subject),
//! arithmetic is on numbers, times are RFC 3339 and durations are printed the
//! way Go's `time.Duration.String` does (`1h2m3s`). A wrong argument type or
//! count is an evaluation error, never a silent value.
//!
//! Not implemented (calling one is an "unknown function" error):
//! `time_to_cron`, `random`, `x509_decode`, `image_normalize`, `path_canonicalize`,
//! `time_add`, `time_parse`, `time_utc`, `time_diff`, `time_truncate`, `to_boolean`
//! and quantity/duration arithmetic (only plain numbers are supported).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use jmespath::functions::{ArgumentType as A, CustomFunction, Signature};
use jmespath::{Context, ErrorReason, JmespathError, Rcvar, Runtime, Variable};
use serde_json::Value;

use crate::wildcard::Wildcard;

type Res = Result<Rcvar, JmespathError>;
type Body = fn(&[Rcvar], &Context<'_>) -> Res;

/// The shared runtime: standard JMESPath functions plus Kyverno's.
pub static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let mut rt = Runtime::new();
    rt.register_builtin_functions();
    register_kyverno_functions(&mut rt);
    rt
});

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
        let n = int_at(a, 1, ctx, "truncate")?;
        let n = usize::try_from(n).map_err(|_| fail(ctx, "truncate", "length must be >= 0"))?;
        Ok(string(str_at(a, 0).chars().take(n).collect()))
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

fn parse_time(layout: &str, s: &str, ctx: &Context<'_>, f: &str) -> Result<i128, JmespathError> {
    if !layout.is_empty() && layout != "2006-01-02T15:04:05Z07:00" {
        return Err(fail(ctx, f, "only RFC 3339 layouts are supported"));
    }
    parse_rfc3339(s).ok_or_else(|| fail(ctx, f, &format!("invalid RFC 3339 time `{s}`")))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Parses RFC 3339 (`2006-01-02T15:04:05[.frac](Z|±hh:mm)`) to Unix nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac: i128 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let f = s.get(start..i)?;
        if f.is_empty() {
            return None;
        }
        let f9: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
        frac = f9.parse().ok()?;
    }
    let offset_secs: i64 = match s.get(i..)? {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh = digits(i + 1..i + 3)?;
            let om = digits(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + frac)
}

/// Formats Unix nanoseconds as RFC 3339 UTC (`2006-01-02T15:04:05Z`).
pub fn format_rfc3339(nanos: i128) -> String {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
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
