//! Kyverno conditions (`any`/`all`) with `{{ }}` JMESPath variables.
//!
//! Variables are substituted innermost-first, as Kyverno does: a string that
//! is exactly one `{{ expr }}` is replaced by the JSON value of `expr`; a
//! variable embedded in a longer string is replaced by its string form. The
//! JMESPath runtime is [`crate::functions::RUNTIME`]: the standard functions
//! plus Kyverno's custom ones. Calling an unimplemented function, or one with
//! wrong argument types, is an evaluation error, never a silent pass.

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::{EvalError, PolicyError};
use crate::raw::{RawAnyAll, RawCondition};
use crate::wildcard;

/// Kyverno condition operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `Equals` / `Equal`.
    Equals,
    /// `NotEquals` / `NotEqual`.
    NotEquals,
    /// `In` (deprecated).
    In,
    /// `AnyIn`.
    AnyIn,
    /// `AllIn`.
    AllIn,
    /// `NotIn` (deprecated).
    NotIn,
    /// `AnyNotIn`.
    AnyNotIn,
    /// `AllNotIn`.
    AllNotIn,
    /// `GreaterThan`.
    GreaterThan,
    /// `GreaterThanOrEquals`.
    GreaterThanOrEquals,
    /// `LessThan`.
    LessThan,
    /// `LessThanOrEquals`.
    LessThanOrEquals,
    /// `DurationGreaterThan`.
    DurationGreaterThan,
    /// `DurationGreaterThanOrEquals`.
    DurationGreaterThanOrEquals,
    /// `DurationLessThan`.
    DurationLessThan,
    /// `DurationLessThanOrEquals`.
    DurationLessThanOrEquals,
}

impl Operator {
    /// Parses an operator name (case-sensitive, as in Kyverno's CRD enum).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Equals" | "Equal" => Self::Equals,
            "NotEquals" | "NotEqual" => Self::NotEquals,
            "In" => Self::In,
            "AnyIn" => Self::AnyIn,
            "AllIn" => Self::AllIn,
            "NotIn" => Self::NotIn,
            "AnyNotIn" => Self::AnyNotIn,
            "AllNotIn" => Self::AllNotIn,
            "GreaterThan" => Self::GreaterThan,
            "GreaterThanOrEquals" => Self::GreaterThanOrEquals,
            "LessThan" => Self::LessThan,
            "LessThanOrEquals" => Self::LessThanOrEquals,
            "DurationGreaterThan" => Self::DurationGreaterThan,
            "DurationGreaterThanOrEquals" => Self::DurationGreaterThanOrEquals,
            "DurationLessThan" => Self::DurationLessThan,
            "DurationLessThanOrEquals" => Self::DurationLessThanOrEquals,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Equals => "Equals",
            Self::NotEquals => "NotEquals",
            Self::In => "In",
            Self::AnyIn => "AnyIn",
            Self::AllIn => "AllIn",
            Self::NotIn => "NotIn",
            Self::AnyNotIn => "AnyNotIn",
            Self::AllNotIn => "AllNotIn",
            Self::GreaterThan => "GreaterThan",
            Self::GreaterThanOrEquals => "GreaterThanOrEquals",
            Self::LessThan => "LessThan",
            Self::LessThanOrEquals => "LessThanOrEquals",
            Self::DurationGreaterThan => "DurationGreaterThan",
            Self::DurationGreaterThanOrEquals => "DurationGreaterThanOrEquals",
            Self::DurationLessThan => "DurationLessThan",
            Self::DurationLessThanOrEquals => "DurationLessThanOrEquals",
        }
    }
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Key (may contain variables).
    pub key: Value,
    /// Operator.
    pub operator: Operator,
    /// Value (may contain variables).
    pub value: Value,
    /// Message reported on failure.
    pub message: Option<String>,
}

/// A compiled `{any, all}` block.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnyAllConditions {
    /// At least one must hold (when non-empty).
    pub any: Vec<Condition>,
    /// All must hold.
    pub all: Vec<Condition>,
}

/// Result of evaluating conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionsOutcome {
    /// Whether the conditions hold.
    pub passed: bool,
    /// Messages of failed conditions (`message` or a generated description).
    pub failures: Vec<String>,
}

/// Compiles a `{any, all}` block or a legacy list of conditions from raw JSON.
pub(crate) fn compile_conditions_value(
    value: &Value,
    path: &str,
) -> Result<AnyAllConditions, PolicyError> {
    match value {
        Value::Array(_) => {
            let list: Vec<RawCondition> = crate::from_value_at(value, path)?;
            let all = list
                .iter()
                .enumerate()
                .map(|(i, c)| compile_condition(c, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?;
            Ok(AnyAllConditions {
                any: Vec::new(),
                all,
            })
        }
        _ => {
            let raw: RawAnyAll = crate::from_value_at(value, path)?;
            compile_any_all(&raw, path)
        }
    }
}

pub(crate) fn compile_any_all(
    raw: &RawAnyAll,
    path: &str,
) -> Result<AnyAllConditions, PolicyError> {
    let any = raw
        .any
        .iter()
        .enumerate()
        .map(|(i, c)| compile_condition(c, &format!("{path}.any[{i}]")))
        .collect::<Result<_, _>>()?;
    let all = raw
        .all
        .iter()
        .enumerate()
        .map(|(i, c)| compile_condition(c, &format!("{path}.all[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(AnyAllConditions { any, all })
}

fn compile_condition(raw: &RawCondition, path: &str) -> Result<Condition, PolicyError> {
    let operator = Operator::parse(&raw.operator).ok_or_else(|| {
        PolicyError::invalid(
            format!("{path}.operator"),
            format!("unknown operator `{}`", raw.operator),
        )
    })?;
    check_variables(&raw.key, &format!("{path}.key"))?;
    check_variables(&raw.value, &format!("{path}.value"))?;
    Ok(Condition {
        key: raw.key.clone(),
        operator,
        value: raw.value.clone(),
        message: raw.message.clone(),
    })
}

/// Validates the syntax of innermost variables (those without nested `{{`).
fn check_variables(v: &Value, path: &str) -> Result<(), PolicyError> {
    match v {
        Value::String(s) => {
            if s.matches("{{").count() != s.matches("}}").count() {
                return Err(PolicyError::invalid(
                    path,
                    format!("unbalanced `{{{{ }}}}` in `{s}`"),
                ));
            }
            if let Some((start, end)) = innermost(s) {
                let expr = s[start + 2..end].trim();
                if !s[start + 2..end].contains("{{") {
                    crate::functions::RUNTIME.compile(expr).map_err(|e| {
                        PolicyError::invalid(path, format!("invalid JMESPath `{expr}`: {e}"))
                    })?;
                }
            }
            Ok(())
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_variables(x, &format!("{path}[{i}]"))),
        Value::Object(m) => m
            .iter()
            .try_for_each(|(k, x)| check_variables(x, &format!("{path}.{k}"))),
        _ => Ok(()),
    }
}

/// Finds the first innermost `{{ ... }}` span: (index of `{{`, index of `}}`).
fn innermost(s: &str) -> Option<(usize, usize)> {
    let end = s.find("}}")?;
    let start = s[..end].rfind("{{")?;
    Some((start, end))
}

/// Substitutes all `{{ }}` variables in `v` against `data` (a variable that resolves to nothing
/// becomes `null`, or an empty string inside a longer string: the conditions semantics).
pub fn substitute(v: &Value, data: &Value) -> Result<Value, EvalError> {
    substitute_with(v, data, false)
}

/// Substitutes all `{{ }}` variables in `v` against `data`, as Kyverno substitutes a rule body: a
/// variable that resolves to `null` (an unknown path) is an [`EvalError::UnresolvedVariable`].
pub fn substitute_strict(v: &Value, data: &Value) -> Result<Value, EvalError> {
    substitute_with(v, data, true)
}

fn substitute_with(v: &Value, data: &Value, strict: bool) -> Result<Value, EvalError> {
    match v {
        Value::String(s) => substitute_str(s, data, strict),
        Value::Array(a) => a
            .iter()
            .map(|x| substitute_with(x, data, strict))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                out.insert(k.clone(), substitute_with(x, data, strict)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn substitute_str(s: &str, data: &Value, strict: bool) -> Result<Value, EvalError> {
    let mut current = s.to_owned();
    // Bounded: every iteration removes one `{{ }}` pair.
    loop {
        let Some((start, end)) = innermost(&current) else {
            if current.contains("{{") || current.contains("}}") {
                return Err(EvalError::MalformedVariable(s.to_owned()));
            }
            return Ok(Value::String(current));
        };
        let expr = current[start + 2..end].trim().to_owned();
        let value = eval_jmespath(&expr, data)?;
        if strict && value.is_null() {
            return Err(EvalError::UnresolvedVariable(expr));
        }
        if start == 0 && end + 2 == current.len() {
            return Ok(value);
        }
        let text = match &value {
            Value::String(x) => x.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        current.replace_range(start..end + 2, &text);
    }
}

/// Evaluates one JMESPath expression against `data`.
pub fn eval_jmespath(expr: &str, data: &Value) -> Result<Value, EvalError> {
    let err = |e: &dyn std::fmt::Display| EvalError::JmesPath {
        expression: expr.to_owned(),
        message: e.to_string(),
    };
    let compiled = crate::functions::RUNTIME
        .compile(expr)
        .map_err(|e| err(&e))?;
    let result = compiled.search(data).map_err(|e| err(&e))?;
    serde_json::to_value(&*result).map_err(|e| err(&e))
}

impl AnyAllConditions {
    /// True when there are no conditions.
    pub fn is_empty(&self) -> bool {
        self.any.is_empty() && self.all.is_empty()
    }

    /// Evaluates the block: every `all` condition and (if non-empty) at least one `any` condition.
    pub fn evaluate(&self, data: &Value) -> Result<ConditionsOutcome, EvalError> {
        let mut failures = Vec::new();
        let mut all_ok = true;
        for c in &self.all {
            if !c.evaluate(data)? {
                all_ok = false;
                failures.push(c.describe());
            }
        }
        let mut any_ok = self.any.is_empty();
        let mut any_failures = Vec::new();
        for c in &self.any {
            if c.evaluate(data)? {
                any_ok = true;
            } else {
                any_failures.push(c.describe());
            }
        }
        if !any_ok {
            failures.extend(any_failures);
        }
        Ok(ConditionsOutcome {
            passed: all_ok && any_ok,
            failures,
        })
    }
}

/// Evaluates a list of blocks (AND across the list).
pub fn evaluate_all(
    blocks: &[AnyAllConditions],
    data: &Value,
) -> Result<ConditionsOutcome, EvalError> {
    let mut out = ConditionsOutcome {
        passed: true,
        failures: Vec::new(),
    };
    for b in blocks {
        let r = b.evaluate(data)?;
        out.passed &= r.passed;
        out.failures.extend(r.failures);
    }
    Ok(out)
}

impl Condition {
    fn describe(&self) -> String {
        self.message.clone().unwrap_or_else(|| {
            format!(
                "condition failed: {} {} {}",
                self.key,
                self.operator.name(),
                self.value
            )
        })
    }

    /// Substitutes variables and applies the operator.
    pub fn evaluate(&self, data: &Value) -> Result<bool, EvalError> {
        let key = substitute(&self.key, data)?;
        let value = substitute(&self.value, data)?;
        apply_operator(self.operator, &key, &value)
    }
}

/// Applies an operator to substituted operands.
pub fn apply_operator(op: Operator, key: &Value, value: &Value) -> Result<bool, EvalError> {
    use Operator as O;
    Ok(match op {
        O::Equals => equals(key, value),
        O::NotEquals => !equals(key, value),
        O::In | O::AnyIn | O::AllIn | O::NotIn | O::AnyNotIn | O::AllNotIn => {
            set_op(op, key, value)?
        }
        O::GreaterThan | O::GreaterThanOrEquals | O::LessThan | O::LessThanOrEquals => {
            let ord = compare_numeric(key, value).ok_or_else(|| EvalError::Operand {
                operator: op.name().into(),
                message: format!("cannot compare {key} with {value}"),
            })?;
            ordering_ok(op, ord)
        }
        O::DurationGreaterThan
        | O::DurationGreaterThanOrEquals
        | O::DurationLessThan
        | O::DurationLessThanOrEquals => {
            let bad = |v: &Value| EvalError::Operand {
                operator: op.name().into(),
                message: format!("{v} is not a duration"),
            };
            let k = duration_of(key).ok_or_else(|| bad(key))?;
            let v = duration_of(value).ok_or_else(|| bad(value))?;
            ordering_ok(op, k.partial_cmp(&v).unwrap_or(Ordering::Equal))
        }
    })
}

fn ordering_ok(op: Operator, ord: Ordering) -> bool {
    use Operator as O;
    match op {
        O::GreaterThan | O::DurationGreaterThan => ord == Ordering::Greater,
        O::GreaterThanOrEquals | O::DurationGreaterThanOrEquals => ord != Ordering::Less,
        O::LessThan | O::DurationLessThan => ord == Ordering::Less,
        _ => ord != Ordering::Greater,
    }
}

/// Kyverno equality: strings match with the value as a wildcard pattern; numbers
/// compare numerically (also across string/number); everything else deep-equals.
fn equals(key: &Value, value: &Value) -> bool {
    match (key, value) {
        (Value::String(k), Value::String(v)) => k == v || wildcard::matches(v, k),
        (Value::Number(_), Value::Number(_))
        | (Value::Number(_), Value::String(_))
        | (Value::String(_), Value::Number(_)) => match (as_f64(key), as_f64(value)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
        (Value::Bool(k), Value::String(v)) | (Value::String(v), Value::Bool(k)) => {
            (v.eq_ignore_ascii_case("true") && *k) || (v.eq_ignore_ascii_case("false") && !*k)
        }
        _ => key == value,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Is `k` a member of `set`? Kyverno's `keyExistsInArray` matches wildcards in both directions.
fn member(k: &Value, set: &[Value]) -> bool {
    let ks = scalar_string(k);
    set.iter().any(|p| {
        let ps = scalar_string(p);
        ps == ks || wildcard::matches(&ps, &ks) || wildcard::matches(&ks, &ps) || equals(k, p)
    })
}

fn set_op(op: Operator, key: &Value, value: &Value) -> Result<bool, EvalError> {
    use Operator as O;
    let set: Vec<Value> = match value {
        Value::Array(a) => a.clone(),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(a)) => a,
            _ => vec![value.clone()],
        },
        other => vec![other.clone()],
    };
    let keys: Vec<Value> = match key {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let in_count = keys.iter().filter(|k| member(k, &set)).count();
    let n = keys.len();
    Ok(match op {
        // `In`: every key element is in the set (scalar: membership).
        O::In | O::AllIn => n > 0 && in_count == n,
        O::AnyIn => in_count > 0,
        // `NotIn`: not every key element is in the set.
        O::NotIn => in_count < n || n == 0,
        O::AnyNotIn => in_count < n,
        O::AllNotIn => in_count == 0,
        _ => {
            return Err(EvalError::Operand {
                operator: op.name().into(),
                message: "not a set operator".into(),
            });
        }
    })
}

/// Numeric comparison over numbers, Kubernetes quantities, Go durations and semantic versions.
fn compare_numeric(key: &Value, value: &Value) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (as_f64(key), as_f64(value)) {
        return a.partial_cmp(&b);
    }
    let (Value::String(k), Value::String(v)) = (key, value) else {
        // Number vs quantity string, e.g. 2 vs "1Gi".
        let a = quantity_of(key)?;
        let b = quantity_of(value)?;
        return a.partial_cmp(&b);
    };
    if let (Some(a), Some(b)) = (parse_quantity(k), parse_quantity(v)) {
        return a.partial_cmp(&b);
    }
    if let (Some(a), Some(b)) = (parse_duration(k), parse_duration(v)) {
        return a.partial_cmp(&b);
    }
    if let (Some(a), Some(b)) = (parse_semver(k), parse_semver(v)) {
        return Some(a.cmp(&b));
    }
    None
}

fn quantity_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_quantity(s),
        _ => None,
    }
}

/// Parses a Kubernetes resource quantity (`100m`, `1Gi`, `2k`, `1e3`).
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suf, mult) in SUFFIXES {
        if let Some(num) = s.strip_suffix(suf)
            && !num.is_empty()
            && num
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
        {
            return num.parse::<f64>().ok().map(|n| n * mult);
        }
    }
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
    {
        return s.parse::<f64>().ok();
    }
    None
}

/// Parses a Go duration (`1h30m`, `-5s`, `300ms`, `0`) into seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Some(if neg { -total } else { total })
}

/// Duration operands: Go duration strings, or numbers as seconds.
fn duration_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_duration(s),
        _ => None,
    }
}

fn parse_semver(s: &str) -> Option<(u64, u64, u64)> {
    let s = s.trim().trim_start_matches('v');
    let core = s.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let a = parts.next()?.parse().ok()?;
    let b = parts.next()?.parse().ok()?;
    let c = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((a, b, c))
}
