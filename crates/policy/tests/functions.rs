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
    // Kyverno's Test_Truncate: lengths are clamped at 0 and fractions truncated.
    for (expr, want) in [
        (
            "truncate('Lorem ipsum ipsum ipsum dolor sit amet', `11`)",
            "Lorem ipsum",
        ),
        (
            "truncate('Lorem ipsum ipsum ipsum dolor sit amet', `40`)",
            "Lorem ipsum ipsum ipsum dolor sit amet",
        ),
        ("truncate('Lorem ipsum', `2.6`)", "Lo"),
        ("truncate('Lorem ipsum', `0`)", ""),
        ("truncate('Lorem ipsum', `-1`)", ""),
        ("truncate('Lorem ipsum', `-0.5`)", ""),
        ("truncate('Lorem ipsum', `1e300`)", "Lorem ipsum"),
    ] {
        assert_eq!(ev(expr), json!(want), "{expr}");
    }
    // Runes, not bytes.
    assert_eq!(ev("truncate('h\u{e9}llo', `2`)"), json!("h\u{e9}"));
}

#[test]
fn random_strings_match_the_pattern() {
    let re = regex::Regex::new("^[0-9a-z]{5}$").unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let v = ev("random('[0-9a-z]{5}')");
        let s = v.as_str().unwrap();
        assert!(re.is_match(s), "{s}");
        seen.insert(s.to_owned());
    }
    // Random: twenty draws from 36^5 strings are not all the same.
    assert!(seen.len() > 1, "{seen:?}");
    // Kyverno's documented example shape (a UUID-like name) and anchors.
    let v = ev("random('^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$')");
    let uuid = regex::Regex::new("^[a-f0-9]{8}(-[a-f0-9]{4}){3}-[a-f0-9]{12}$").unwrap();
    assert!(uuid.is_match(v.as_str().unwrap()), "{v}");
    assert!(err("random('')").contains("no pattern provided"));
    assert!(err("random('[a-')").contains("invalid pattern"));
    assert!(err("random(`1`)").to_lowercase().contains("type"));
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
        "truncate(`1`, `1`)",
        "truncate('abc', '1')",
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

fn x509_data(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/x509/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Every number as a float, as after Kyverno's JSON round trip into `interface{}`.
fn floats(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.into_iter().map(floats).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, floats(v))).collect()),
        other => other,
    }
}

#[test]
fn x509_decode_matches_kyverno_test_vectors() {
    use base64::Engine as _;
    for (pem, expected) in [
        ("kyverno-svc.pem", "kyverno-svc.expected.json"),
        ("xx-ca.pem", "xx-ca.expected.json"),
        ("digicert.csr.pem", "digicert.csr.expected.json"),
    ] {
        let pem = x509_data(pem);
        let want: Value = serde_json::from_str(&x509_data(expected)).unwrap();
        let got = ev_on("x509_decode(pem)", json!({ "pem": pem }));
        let (got, want) = (floats(got), floats(want));
        if got != want {
            let (g, w) = (got.as_object().unwrap(), want.as_object().unwrap());
            for k in g.keys().chain(w.keys()) {
                assert_eq!(g.get(k), w.get(k), "{expected}: field {k}");
            }
        }
        assert_eq!(got, want, "{expected}");
        // Kyverno's test also decodes the base64 of the PEM text.
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
        let again = ev_on("x509_decode(base64_decode(b))", json!({ "b": b64 }));
        assert_eq!(floats(again), want, "{expected} (base64)");
    }
    // Fields usable in conditions, as Kyverno's documentation shows.
    let pem = x509_data("kyverno-svc.pem");
    assert_eq!(
        ev_on("x509_decode(pem).Subject.CommonName", json!({ "pem": pem })),
        json!("*.kyverno.svc")
    );
    assert_eq!(
        ev_on("x509_decode(pem).NotAfter", json!({ "pem": pem })),
        json!("2023-01-11T14:26:43Z")
    );
    assert_eq!(
        ev_on("x509_decode(pem).PublicKey.E", json!({ "pem": pem })),
        json!(65537.0)
    );
}

#[test]
fn x509_decode_errors() {
    assert!(err("x509_decode('xyz')").contains("failed to decode PEM block"));
    assert!(
        err("x509_decode('-----BEGIN PUBLIC KEY-----\nAAEC\n-----END PUBLIC KEY-----')")
            .contains("neither contains a CERTIFICATE or CERTIFICATE REQUEST")
    );
    // A well-formed ECDSA certificate: Kyverno decodes RSA only.
    let ec = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
    let e = eval_jmespath("x509_decode(pem)", &json!({"pem": ec.cert.pem()}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("certificate should use rsa algorithm"), "{e}");
    // Truncated DER.
    let pem = x509_data("xx-ca.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let cut = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----",
        &body[..body.len() / 2 / 4 * 4]
    );
    let e = eval_jmespath("x509_decode(pem)", &json!({ "pem": cut }))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x509"), "{e}");
    assert!(err("x509_decode(`1`)").to_lowercase().contains("type"));
}

#[test]
fn x509_decode_derives_go_fields_from_extensions() {
    use base64::Engine as _;
    let b64 = |hex: &str| {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
    };
    let decode = |file: &str| ev_on("x509_decode(p)", json!({ "p": x509_data(file) }));
    let leaf = decode("openssl-leaf.pem");
    let ca = decode("openssl-ca.pem");
    let csr = decode("openssl-leaf.csr.pem");

    assert_eq!(leaf["Version"], json!(3.0));
    assert_eq!(leaf["SerialNumber"], json!(12345678901234567890123.0));
    assert_eq!(leaf["SignatureAlgorithm"], json!(4.0));
    assert_eq!(leaf["PublicKeyAlgorithm"], json!(1.0));
    // The modulus in decimal (from `openssl x509 -modulus`).
    assert_eq!(
        leaf["PublicKey"]["N"],
        "19836659602743437240574099367073464667488134757493094588534246070322746004149295722098861125124214970943802071191880027771673103748520540997932254825975905156278048145380524900045704039682379933881683089652994052258848499029298432710400224827314354078133709773952172175067537756905719450209121307340298087646319265100382919519452670319438187140732782410232583492767460141097945337560149890448843093476072008809491030511154763179159447760256562670208852069640517680667536321910781043935970932578365885947955552177797525281402935091074128510963893769884791832471032012001728860419534328883951479696832946597567989386389"
    );
    assert_eq!(leaf["PublicKey"]["E"], json!(65537.0));
    let subject = &leaf["Subject"];
    assert_eq!(subject["Country"], json!(["US"]));
    assert_eq!(subject["Province"], json!(["California"]));
    assert_eq!(subject["Locality"], json!(["San Francisco"]));
    assert_eq!(subject["Organization"], json!(["Sigil"]));
    assert_eq!(
        subject["OrganizationalUnit"],
        json!(["Platform", "Security"])
    );
    assert_eq!(subject["CommonName"], "app.example.com");
    assert_eq!(subject["SerialNumber"], "42");
    assert_eq!(subject["StreetAddress"], Value::Null);
    assert_eq!(subject["Names"].as_array().unwrap().len(), 8);
    assert_eq!(
        subject["Names"][7],
        json!({"Type": [2.0, 5.0, 4.0, 5.0], "Value": "42"})
    );
    assert_eq!(leaf["Issuer"]["CommonName"], "Sigil Test CA");
    assert_eq!(leaf["RawIssuer"], ca["RawSubject"]);
    assert_eq!(leaf["NotBefore"], "2026-11-25T07:51:32Z");
    assert_eq!(leaf["NotAfter"], "2027-11-25T07:51:32Z");
    // digitalSignature | keyEncipherment; serverAuth, clientAuth and an unknown OID.
    assert_eq!(leaf["KeyUsage"], json!(5.0));
    assert_eq!(leaf["ExtKeyUsage"], json!([1.0, 2.0]));
    assert_eq!(leaf["UnknownExtKeyUsage"], json!([[1.0, 2.0, 3.0, 4.0]]));
    assert_eq!(leaf["BasicConstraintsValid"], true);
    assert_eq!(leaf["IsCA"], false);
    assert_eq!(leaf["MaxPathLen"], json!(-1.0));
    assert_eq!(leaf["MaxPathLenZero"], false);
    assert_eq!(
        leaf["SubjectKeyId"],
        b64("1EC19393FB716630C0D4295B08AC48A68A9FAE3D")
    );
    assert_eq!(leaf["AuthorityKeyId"], ca["SubjectKeyId"]);
    assert_eq!(
        leaf["DNSNames"],
        json!(["app.example.com", "www.example.com"])
    );
    assert_eq!(leaf["IPAddresses"], json!(["10.1.2.3", "2001:db8::1"]));
    assert_eq!(leaf["EmailAddresses"], json!(["ops@example.com"]));
    let uri = &leaf["URIs"][0];
    assert_eq!(
        (&uri["Scheme"], &uri["Host"], &uri["Path"], &uri["User"]),
        (
            &json!("spiffe"),
            &json!("example.com"),
            &json!("/ns/default/sa/app"),
            &Value::Null
        )
    );
    assert_eq!(leaf["OCSPServer"], json!(["http://ocsp.example.com"]));
    assert_eq!(
        leaf["IssuingCertificateURL"],
        json!(["http://ca.example.com/ca.crt"])
    );
    assert_eq!(
        leaf["CRLDistributionPoints"],
        json!(["http://crl.example.com/ca.crl"])
    );
    assert_eq!(
        leaf["PolicyIdentifiers"],
        floats(json!([[2, 23, 140, 1, 2, 1], [1, 3, 6, 1, 4, 1, 99999, 1]]))
    );
    assert_eq!(
        leaf["Policies"],
        json!(["2.23.140.1.2.1", "1.3.6.1.4.1.99999.1"])
    );
    // The unknown critical extension is reported, the handled ones are not.
    assert_eq!(
        leaf["UnhandledCriticalExtensions"],
        json!([[1.0, 2.0, 3.0, 5.0]])
    );
    assert_eq!(leaf["Extensions"].as_array().unwrap().len(), 10);
    assert_eq!(
        leaf["Extensions"][1],
        json!({"Id": [2.0, 5.0, 29.0, 15.0], "Critical": true, "Value": "AwIFoA=="})
    );
    assert_eq!(leaf["PermittedDNSDomainsCritical"], false);
    assert_eq!(leaf["PermittedDNSDomains"], Value::Null);

    // The CA: path length 0 and name constraints.
    assert_eq!(ca["SerialNumber"], json!(4328719365.0));
    assert_eq!(ca["IsCA"], true);
    assert_eq!(ca["MaxPathLen"], json!(0.0));
    assert_eq!(ca["MaxPathLenZero"], true);
    assert_eq!(ca["KeyUsage"], json!(96.0));
    assert_eq!(ca["PermittedDNSDomainsCritical"], true);
    assert_eq!(ca["PermittedDNSDomains"], json!([".example.com"]));
    assert_eq!(ca["ExcludedDNSDomains"], json!(["bad.example.com"]));
    assert_eq!(
        ca["PermittedIPRanges"],
        json!([{"IP": "10.0.0.0", "Mask": "/wAAAA=="}])
    );
    assert_eq!(ca["ExcludedIPRanges"], Value::Null);
    assert_eq!(ca["PermittedEmailAddresses"], json!(["example.com"]));
    assert_eq!(ca["PermittedURIDomains"], json!([".example.com"]));
    assert_eq!(ca["UnhandledCriticalExtensions"], Value::Null);
    assert_eq!(ca["Raw"], {
        let pem = x509_data("openssl-ca.pem");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        json!(body)
    });

    // The request: same key, SANs from its extensionRequest attribute.
    assert_eq!(csr["Version"], json!(0.0));
    assert_eq!(
        csr["RawSubjectPublicKeyInfo"],
        leaf["RawSubjectPublicKeyInfo"]
    );
    assert_eq!(csr["RawSubject"], leaf["RawSubject"]);
    assert_eq!(csr["Subject"], leaf["Subject"]);
    assert_eq!(csr["DNSNames"], json!(["app.example.com"]));
    assert_eq!(csr["IPAddresses"], json!(["10.1.2.3"]));
    let ext = &csr["Extensions"][0];
    assert_eq!(ext["Id"], floats(json!([2, 5, 29, 17])));
    assert_eq!(
        csr["Attributes"],
        json!([{
            "Type": floats(json!([1, 2, 840, 113549, 1, 9, 14])),
            "Value": [[{"Type": ext["Id"], "Value": ext["Value"]}]],
        }])
    );
    assert!(csr.get("IsCA").is_none());
}
