#![allow(clippy::unwrap_used)]
//! Kyverno custom JMESPath functions.

use serde_json::{Value, json};
use sigil_policy::conditions::eval_jmespath;
use sigil_policy::functions::{format_go_duration, parse_rfc3339};

fn ev(expr: &str) -> Value {
    eval_jmespath(expr, &json!({})).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn ev_on(expr: &str, data: Value) -> Value {
    eval_jmespath(expr, &data).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn err(expr: &str) -> String {
    match eval_jmespath(expr, &json!({"n": null, "o": {}, "a": []})) {
        Ok(v) => panic!("{expr} should fail, got {v}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn string_functions() {
    assert_eq!(ev("compare('a', 'b')"), json!(-1.0));
    assert_eq!(ev("compare('b', 'a')"), json!(1.0));
    assert_eq!(ev("compare('b', 'b')"), json!(0.0));
    assert_eq!(ev("equal_fold('Go', 'GO')"), json!(true));
    assert_eq!(ev("equal_fold('Go', 'Gox')"), json!(false));
    assert_eq!(
        ev("replace('Lorem ipsum dolor sit amet', 'ipsum', 'muspi', `-1`)"),
        json!("Lorem muspi dolor sit amet")
    );
    assert_eq!(ev("replace('aaaa', 'a', 'b', `2`)"), json!("bbaa"));
    assert_eq!(
        ev("replace_all('Lorem ipsum dolor sit amet', 'Lorem', 'muspi')"),
        json!("muspi ipsum dolor sit amet")
    );
    assert_eq!(ev("to_upper('abc')"), json!("ABC"));
    assert_eq!(ev("to_lower('ABC')"), json!("abc"));
    assert_eq!(
        ev("trim('¡¡¡Hello, Gophers!!!', '!¡')"),
        json!("Hello, Gophers")
    );
    assert_eq!(
        ev("trim_prefix('docker://ghcr.io/x', 'docker://')"),
        json!("ghcr.io/x")
    );
    assert_eq!(
        ev("trim_prefix('ghcr.io/x', 'docker://')"),
        json!("ghcr.io/x")
    );
    assert_eq!(
        ev("split('apple,banana,cherry', ',')"),
        json!(["apple", "banana", "cherry"])
    );
    assert_eq!(ev("split('ab', '')"), json!(["a", "b"]));
    assert_eq!(
        ev("truncate('Lorem ipsum dolor sit amet', `5`)"),
        json!("Lorem")
    );
    assert_eq!(ev("truncate('abc', `10`)"), json!("abc"));
}

#[test]
fn regex_and_pattern_functions() {
    assert_eq!(ev("regex_match('^[0-9]+$', '123')"), json!(true));
    assert_eq!(ev("regex_match('^[0-9]+$', `123`)"), json!(true));
    assert_eq!(ev("regex_match('^[0-9]+$', 'abc')"), json!(false));
    assert_eq!(
        ev("regex_replace_all('([Hh]e|G)l', 'Hello, Gophers', '${1}G')"),
        json!("HeGlo, Gophers")
    );
    assert_eq!(
        ev("regex_replace_all('^([0-9]+)$', `42`, 'n$1')"),
        json!("n42")
    );
    assert_eq!(
        ev("regex_replace_all_literal('[Hh]el?', 'Hello, Gophers', 'G')"),
        json!("Glo, GopGrs")
    );
    assert_eq!(
        ev("regex_replace_all_literal('o', 'foo', '$1')"),
        json!("f$1$1")
    );
    assert_eq!(ev("pattern_match('prefix-*', 'prefix-abc')"), json!(true));
    assert_eq!(ev("pattern_match('12*', `123`)"), json!(true));
    assert_eq!(ev("pattern_match('prefix-?', 'prefix-ab')"), json!(false));
    assert!(err("regex_match('(', 'x')").contains("invalid regex"));
}

#[test]
fn label_match_function() {
    let data = json!({"sel": {"app": "web"}, "labels": {"app": "web", "tier": "fe"}, "other": {"app": "db"}});
    assert_eq!(ev_on("label_match(sel, labels)", data.clone()), json!(true));
    assert_eq!(ev_on("label_match(sel, other)", data.clone()), json!(false));
    assert_eq!(ev_on("label_match(labels, sel)", data), json!(false));
}

#[test]
fn encoding_and_parsing_functions() {
    assert_eq!(
        ev("base64_encode('Hello, World!')"),
        json!("SGVsbG8sIFdvcmxkIQ==")
    );
    assert_eq!(
        ev("base64_decode('SGVsbG8sIFdvcmxkIQ==')"),
        json!("Hello, World!")
    );
    assert!(err("base64_decode('***')").contains("base64_decode"));
    assert_eq!(
        ev("parse_json('{\"a\": [1, \"b\"]}')"),
        json!({"a": [1, "b"]})
    );
    assert_eq!(ev("parse_json('{\"a\": [1, \"b\"]}').a[1]"), json!("b"));
    assert_eq!(
        ev("parse_yaml('a:\n  b: 1\nc: [x]')"),
        json!({"a": {"b": 1}, "c": ["x"]})
    );
    assert!(err("parse_json('{')").contains("parse_json"));
}

#[test]
fn time_functions() {
    // Kyverno docs: time_since('', '2021-01-02T15:04:05-07:00', '2021-01-10T03:14:05-07:00').
    assert_eq!(
        ev("time_since('', '2021-01-02T15:04:05-07:00', '2021-01-10T03:14:05-07:00')"),
        json!("180h10m0s")
    );
    assert_eq!(
        ev("time_since('', '2022-04-10T20:30:00Z', '2022-04-10T20:30:01.5Z')"),
        json!("1.5s")
    );
    assert_eq!(
        ev("time_since('', '2022-04-10T20:30:05Z', '2022-04-10T20:30:00Z')"),
        json!("-5s")
    );
    let since = ev("time_since('', '2000-01-01T00:00:00Z', '')");
    assert!(since.as_str().unwrap().ends_with('s'));
    let now = ev("time_now_utc()");
    assert!(parse_rfc3339(now.as_str().unwrap()).is_some(), "{now}");
    assert_eq!(
        ev("time_after('2021-01-02T15:04:05Z', '2021-01-01T15:04:05Z')"),
        json!(true)
    );
    assert_eq!(
        ev("time_after('2021-01-01T15:04:05Z', '2021-01-02T15:04:05Z')"),
        json!(false)
    );
    assert_eq!(
        ev("time_before('2021-01-01T15:04:05Z', '2021-01-02T15:04:05+01:00')"),
        json!(true)
    );
    assert!(err("time_after('yesterday', '2021-01-01T15:04:05Z')").contains("RFC 3339"));
    assert_eq!(format_go_duration(0), "0s");
    assert_eq!(format_go_duration(1_500_000), "1.5ms");
    assert_eq!(format_go_duration(3_723_000_000_000), "1h2m3s");
    assert_eq!(format_go_duration(61_000_000_000), "1m1s");
    assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1_000_000_000));
}

#[test]
fn arithmetic_functions() {
    assert_eq!(ev("add(`12`, `13`)"), json!(25.0));
    assert_eq!(ev("subtract(`12`, `13`)"), json!(-1.0));
    assert_eq!(ev("multiply(`12`, `13`)"), json!(156.0));
    assert_eq!(ev("divide(`12`, `3`)"), json!(4.0));
    assert_eq!(ev("modulo(`12`, `5`)"), json!(2.0));
    assert_eq!(ev("sum([`1`, `2`, `3`])"), json!(6.0));
    assert!(err("divide(`1`, `0`)").contains("Zero divisor"));
    assert!(err("modulo(`1.5`, `1`)").contains("Non-integer"));
    assert!(err("sum(a)").contains("at least one element"));
}

#[test]
fn semver_function() {
    // Kyverno docs: semver_compare('4.1.3', '>=4.1.x') style ranges; plain comparators here.
    assert_eq!(ev("semver_compare('4.1.3', '>=4.1.0')"), json!(true));
    assert_eq!(ev("semver_compare('4.1.3', '4.1.3')"), json!(true));
    assert_eq!(ev("semver_compare('4.1.3', '>4.1.3')"), json!(false));
    assert_eq!(ev("semver_compare('1.5.0', '>1.0.0 <2.0.0')"), json!(true));
    assert_eq!(
        ev("semver_compare('2.5.0', '>1.0.0 <2.0.0 || >=3.0.0')"),
        json!(false)
    );
    assert_eq!(
        ev("semver_compare('3.0.0', '>1.0.0 <2.0.0 || >=3.0.0')"),
        json!(true)
    );
    assert_eq!(ev("semver_compare('1.0.0-rc.1', '<1.0.0')"), json!(true));
    assert_eq!(ev("semver_compare('1.2.3', '!=1.2.3')"), json!(false));
    assert!(err("semver_compare('1.2', '>1.0.0')").contains("invalid semantic version"));
    assert!(err("semver_compare('1.2.3', '>=4.1.x')").contains("invalid version range"));
}

#[test]
fn collection_functions() {
    let data = json!({"obj": {"b": 2, "a": 1}, "arr": ["x", "y"]});
    assert_eq!(
        ev_on("items(obj, 'key', 'value')", data.clone()),
        json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}])
    );
    assert_eq!(
        ev_on("items(arr, 'i', 'v')", data.clone()),
        json!([{"i": 0.0, "v": "x"}, {"i": 1.0, "v": "y"}])
    );
    assert_eq!(
        ev("object_from_lists(['a', 'b'], [`1`])"),
        json!({"a": 1, "b": null})
    );
    assert_eq!(ev_on("lookup(obj, 'a')", data.clone()), json!(1));
    assert_eq!(ev_on("lookup(obj, 'z')", data.clone()), Value::Null);
    assert_eq!(ev_on("lookup(arr, `1`)", data.clone()), json!("y"));
    assert_eq!(ev_on("lookup(arr, `5`)", data.clone()), Value::Null);
    assert!(ev_on_err("lookup(obj, `1`)", data.clone()).contains("lookup"));
    assert!(ev_on_err("lookup(arr, 'a')", data).contains("lookup"));
}

fn ev_on_err(expr: &str, data: Value) -> String {
    match eval_jmespath(expr, &data) {
        Ok(v) => panic!("{expr} should fail, got {v}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn wrong_argument_types_are_errors() {
    for expr in [
        "regex_match('a', n)",
        "regex_match(`1`, 'a')",
        "to_upper(`1`)",
        "trim_prefix(o, 'a')",
        "split('a')",
        "truncate('abc', `-1`)",
        "truncate('abc', `1.5`)",
        "label_match(a, o)",
        "base64_encode(n)",
        "parse_json(o)",
        "time_since('', `1`, '')",
        "add('1', `2`)",
        "sum(['a'])",
        "semver_compare(`1`, '>1.0.0')",
        "items('a', 'k', 'v')",
        "object_from_lists([`1`], [])",
        "lookup('a', 'b')",
        "time_now_utc('x')",
    ] {
        let _ = err(expr);
    }
    assert!(err("to_upper(`1`)").to_lowercase().contains("type"));
}
