//! Signing with every supported key type and envelope, and bad input: each malformed envelope,
//! chain, trust policy or trust store gives an error naming the field, never a pass.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coset::TaggedCborSerializable as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use serde_json::{Value, json};
use sigil_notary::crypto::{PrivateKey, SignatureAlgorithm};
use sigil_notary::envelope::{
    self, Envelope, EnvelopeFormat, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS, SignRequest, TargetArtifact,
};
use sigil_notary::trustpolicy::TrustPolicyDocument;
use sigil_notary::truststore::{StoreType, TrustStore};
use sigil_notary::x509::{Cert, validate_code_signing_chain};

fn dn(p: &mut CertificateParams, cn: &str) {
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "Sigil Test");
    p.distinguished_name.push(DnType::StateOrProvinceName, "WA");
    p.distinguished_name.push(DnType::CountryName, "US");
}

struct RsaPublic(Vec<u8>);

impl PublicKeyData for RsaPublic {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

enum LeafKey {
    Rcgen(&'static rcgen::SignatureAlgorithm),
    Rsa2048,
}

/// `(leaf key, [leaf, intermediate, root])` with the leaf's key usages and EKUs.
fn chain_with(
    leaf: LeafKey,
    ku: Vec<KeyUsagePurpose>,
    eku: Vec<ExtendedKeyUsagePurpose>,
) -> (PrivateKey, Vec<Cert>) {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut rp = CertificateParams::new(Vec::<String>::new()).unwrap();
    dn(&mut rp, "Root");
    rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    rp.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let root = rp.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(rp, &root_key);
    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ip = CertificateParams::new(Vec::<String>::new()).unwrap();
    dn(&mut ip, "Intermediate");
    ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ip.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let int = ip.signed_by(&int_key, &root_issuer).unwrap();
    let int_issuer = Issuer::new(ip, &int_key);
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    dn(&mut lp, "Leaf");
    lp.key_usages = ku;
    lp.extended_key_usages = eku;
    let (key, leaf) = match leaf {
        LeafKey::Rcgen(alg) => {
            let k = KeyPair::generate_for(alg).unwrap();
            let c = lp.signed_by(&k, &int_issuer).unwrap();
            (PrivateKey::from_pem(&k.serialize_pem()).unwrap(), c)
        }
        LeafKey::Rsa2048 => {
            use rsa::Generate as _;
            use rsa::pkcs1::EncodeRsaPublicKey as _;
            use rsa::pkcs8::EncodePrivateKey as _;
            let k = rsa::PrivateKey::generate();
            let pubder = k
                .to_public_key()
                .to_pkcs1_der()
                .unwrap()
                .as_bytes()
                .to_vec();
            let c = lp.signed_by(&RsaPublic(pubder), &int_issuer).unwrap();
            let pem = k.to_pkcs8_pem(Default::default()).unwrap();
            (PrivateKey::from_pem(&pem).unwrap(), c)
        }
    };
    let chain = [leaf.der(), int.der(), root.der()]
        .iter()
        .map(|d| Cert::from_der(d).unwrap())
        .collect();
    (key, chain)
}

fn chain(alg: &'static rcgen::SignatureAlgorithm) -> (PrivateKey, Vec<Cert>) {
    chain_with(
        LeafKey::Rcgen(alg),
        vec![KeyUsagePurpose::DigitalSignature],
        vec![ExtendedKeyUsagePurpose::CodeSigning],
    )
}

fn target() -> TargetArtifact {
    TargetArtifact {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: format!("sha256:{}", "ab".repeat(32)),
        size: 1234,
        annotations: None,
    }
}

fn signed(format: EnvelopeFormat, key: &PrivateKey, chain: &[Cert]) -> Vec<u8> {
    let req = SignRequest {
        target: target(),
        signing_time: sigil_notary::time::now(),
        expiry: Some(sigil_notary::time::now() + 3600),
        key,
        chain,
        signing_agent: "test".into(),
    };
    envelope::sign(format, &req).unwrap().finish(None).unwrap()
}

fn integrity_err(mt: &str, bytes: &[u8]) -> String {
    match Envelope::parse(mt, bytes) {
        Err(e) => e.to_string(),
        Ok(env) => env.verify_integrity().map(|_| ()).unwrap_err().to_string(),
    }
}

#[test]
fn sign_and_verify_every_key_type() {
    let mut cases = vec![
        (
            chain(&rcgen::PKCS_ECDSA_P256_SHA256),
            SignatureAlgorithm::Es256,
        ),
        (
            chain(&rcgen::PKCS_ECDSA_P384_SHA384),
            SignatureAlgorithm::Es384,
        ),
    ];
    cases.push((
        chain_with(
            LeafKey::Rsa2048,
            vec![KeyUsagePurpose::DigitalSignature],
            vec![ExtendedKeyUsagePurpose::CodeSigning],
        ),
        SignatureAlgorithm::Ps384, // rsa's default modulus: 3072 bits
    ));
    for ((key, chain), alg) in cases {
        for format in [EnvelopeFormat::Jws, EnvelopeFormat::Cose] {
            let env = signed(format, &key, &chain);
            let parsed = Envelope::parse(format.media_type(), &env).unwrap();
            assert_eq!(parsed.algorithm, alg);
            assert_eq!(parsed.chain.len(), 3);
            assert_eq!(parsed.verify_integrity().unwrap(), target());
            // One flipped bit in the signature value fails (for JWS inside the decoded `signature`
            // member: the member order of the JSON object is not fixed; COSE_Sign1 ends with it).
            let t = match format {
                EnvelopeFormat::Jws => {
                    let mut v: Value = serde_json::from_slice(&env).unwrap();
                    let mut sig = URL_SAFE_NO_PAD
                        .decode(v["signature"].as_str().unwrap())
                        .unwrap();
                    let at = sig.len() / 2;
                    sig[at] ^= 0x10;
                    v["signature"] = json!(URL_SAFE_NO_PAD.encode(&sig));
                    serde_json::to_vec(&v).unwrap()
                }
                EnvelopeFormat::Cose => {
                    let mut t = env.clone();
                    let n = t.len();
                    t[n - 5] ^= 0x10;
                    t
                }
            };
            let e = integrity_err(format.media_type(), &t);
            assert!(e.contains("signature"), "{alg:?} {format:?}: {e}");
        }
    }
    // P-521 (ES512) at the key level: sign and verify, raw r||s of 132 bytes.
    let mut raw = [0u8; 66];
    getrandom::fill(&mut raw).unwrap();
    raw[0] = 0;
    let sk = p521::ecdsa::SigningKey::from_slice(&raw).unwrap();
    use p521::pkcs8::EncodePrivateKey as _;
    let key = PrivateKey::from_pem(&sk.to_pkcs8_pem(Default::default()).unwrap()).unwrap();
    assert_eq!(
        key.public_key().notary_algorithm().unwrap(),
        SignatureAlgorithm::Es512
    );
    let sig = key.sign(SignatureAlgorithm::Es512, b"msg").unwrap();
    assert_eq!(sig.len(), 132);
    assert!(
        key.public_key()
            .verify_envelope(SignatureAlgorithm::Es512, b"msg", &sig)
    );
    assert!(
        !key.public_key()
            .verify_envelope(SignatureAlgorithm::Es512, b"msh", &sig)
    );
    assert!(
        key.sign(SignatureAlgorithm::Es256, b"msg")
            .unwrap_err()
            .to_string()
            .contains("does not match")
    );
}

/// A JWS with the given protected header, signed with `key` under `alg`.
fn jws(protected: &Value, key: &PrivateKey, alg: SignatureAlgorithm, chain: &[Cert]) -> Vec<u8> {
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(protected).unwrap());
    let payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({"targetArtifact": target()})).unwrap());
    let sig = key.sign(alg, format!("{p}.{payload}").as_bytes()).unwrap();
    serde_json::to_vec(&json!({
        "payload": payload, "protected": p,
        "header": {"x5c": chain.iter().map(|c| STANDARD.encode(&c.der)).collect::<Vec<_>>()},
        "signature": URL_SAFE_NO_PAD.encode(sig),
    }))
    .unwrap()
}

fn header(alg: &str) -> Value {
    json!({
        "alg": alg, "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": "2024-01-01T00:00:00+01:00",
    })
}

#[test]
fn bad_envelopes_name_the_field() {
    let (key, ch) = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let ok = jws(&header("ES256"), &key, SignatureAlgorithm::Es256, &ch);
    Envelope::parse(MEDIA_TYPE_JWS, &ok)
        .unwrap()
        .verify_integrity()
        .unwrap();

    let mut h = header("ES256");
    h["crit"] = json!(["io.cncf.notary.signingScheme", "com.example.mustUnderstand"]);
    h["com.example.mustUnderstand"] = json!("x");
    let e = integrity_err(
        MEDIA_TYPE_JWS,
        &jws(&h, &key, SignatureAlgorithm::Es256, &ch),
    );
    assert!(
        e.contains("unknown critical header \"com.example.mustUnderstand\""),
        "{e}"
    );

    let mut h = header("ES256");
    h["crit"] = json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]);
    let e = integrity_err(
        MEDIA_TYPE_JWS,
        &jws(&h, &key, SignatureAlgorithm::Es256, &ch),
    );
    assert!(e.contains("io.cncf.notary.expiry"), "{e}");

    let mut h = header("ES256");
    h["crit"] = json!(["io.cncf.notary.signingScheme", "alg"]);
    let e = integrity_err(
        MEDIA_TYPE_JWS,
        &jws(&h, &key, SignatureAlgorithm::Es256, &ch),
    );
    assert!(e.contains("`crit`") && e.contains("alg"), "{e}");

    let mut h = header("ES256");
    h["cty"] = json!("application/json");
    let e = integrity_err(
        MEDIA_TYPE_JWS,
        &jws(&h, &key, SignatureAlgorithm::Es256, &ch),
    );
    assert!(e.contains("`cty`"), "{e}");

    // alg names ES384 but the leaf is P-256 (signature made with the P-256 key over the same input).
    let mut v: Value = serde_json::from_slice(&ok).unwrap();
    let h384 = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header("ES384")).unwrap());
    let sig = key
        .sign(
            SignatureAlgorithm::Es256,
            format!("{h384}.{}", v["payload"].as_str().unwrap()).as_bytes(),
        )
        .unwrap();
    v["protected"] = json!(h384);
    v["signature"] = json!(URL_SAFE_NO_PAD.encode(sig));
    let e = integrity_err(MEDIA_TYPE_JWS, &serde_json::to_vec(&v).unwrap());
    assert!(
        e.contains("ES384 does not match the signing certificate's key"),
        "{e}"
    );
    let e = integrity_err(
        MEDIA_TYPE_JWS,
        &jws(&header("RS256"), &key, SignatureAlgorithm::Es256, &ch),
    );
    assert!(e.contains("`alg` \"RS256\" is not supported"), "{e}");

    // Padded or truncated base64url.
    let mut v: Value = serde_json::from_slice(&ok).unwrap();
    v["payload"] = json!(format!("{}=", v["payload"].as_str().unwrap()));
    let e = integrity_err(MEDIA_TYPE_JWS, &serde_json::to_vec(&v).unwrap());
    assert!(
        e.contains("JWS `payload`: invalid unpadded base64url"),
        "{e}"
    );
    let mut v: Value = serde_json::from_slice(&ok).unwrap();
    let s = v["signature"].as_str().unwrap().to_owned();
    v["signature"] = json!(&s[..s.len() - 1]);
    let e = integrity_err(MEDIA_TYPE_JWS, &serde_json::to_vec(&v).unwrap());
    assert!(
        e.contains("JWS `signature`: invalid unpadded base64url"),
        "{e}"
    );
    // Two characters fewer keeps the base64url well-formed (a multiple of 4 for an 86-character
    // ES256 signature) whatever the signature's bits: the shorter signature must not verify.
    assert_eq!(s.len() % 4, 2, "ES256 signature of unexpected length: {s}");
    v["signature"] = json!(&s[..s.len() - 2]);
    let e = integrity_err(MEDIA_TYPE_JWS, &serde_json::to_vec(&v).unwrap());
    assert!(e.contains("signature does not verify"), "{e}");
    let mut v: Value = serde_json::from_slice(&ok).unwrap();
    let c = v["header"]["x5c"][0].as_str().unwrap().to_owned();
    v["header"]["x5c"][0] = json!(&c[..c.len() - 5]);
    let e = integrity_err(MEDIA_TYPE_JWS, &serde_json::to_vec(&v).unwrap());
    assert!(e.contains("x5c[0]"), "{e}");
    let mut v: Value = serde_json::from_slice(&ok).unwrap();
    v["header"].as_object_mut().unwrap().remove("x5c");
    let e = integrity_err(MEDIA_TYPE_JWS, &serde_json::to_vec(&v).unwrap());
    assert!(e.contains("certificate chain is not present"), "{e}");
    assert!(integrity_err(MEDIA_TYPE_JWS, b"not json").contains("JWS is not a JSON object"));

    // COSE: untagged, and without label 33.
    let cose = signed(EnvelopeFormat::Cose, &key, &ch);
    Envelope::parse(MEDIA_TYPE_COSE, &cose)
        .unwrap()
        .verify_integrity()
        .unwrap();
    assert!(integrity_err(MEDIA_TYPE_COSE, &cose[1..]).contains("tag 18"));
    let mut s = coset::CoseSign1::from_tagged_slice(&cose).unwrap();
    s.unprotected
        .rest
        .retain(|(l, _)| *l != coset::Label::Int(33));
    let e = integrity_err(MEDIA_TYPE_COSE, &s.to_tagged_vec().unwrap());
    assert!(e.contains("x5chain (label 33)"), "{e}");
    // x5chain as a single bstr (RFC 9360 allows it; notation does not).
    let mut s = coset::CoseSign1::from_tagged_slice(&cose).unwrap();
    for (l, v) in s.unprotected.rest.iter_mut() {
        if *l == coset::Label::Int(33) {
            *v = coset::cbor::Value::Bytes(ch[0].der.clone());
        }
    }
    let e = integrity_err(MEDIA_TYPE_COSE, &s.to_tagged_vec().unwrap());
    assert!(e.contains("label 33") && e.contains("array"), "{e}");
    assert!(integrity_err("application/json", &ok).contains("unsupported envelope media type"));
}

#[test]
fn bad_chains_are_refused() {
    let (key, ch) = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    validate_code_signing_chain(&ch, None).unwrap();
    let e = validate_code_signing_chain(&[ch[2].clone(), ch[1].clone(), ch[0].clone()], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("self-signed"), "{e}");
    let e = validate_code_signing_chain(&[ch[0].clone(), ch[2].clone(), ch[1].clone()], None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("leaf first, root last") || e.contains("self-signed"),
        "{e}"
    );
    let e = validate_code_signing_chain(&ch[..2], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not end in a self-signed root"), "{e}");
    let e = validate_code_signing_chain(&ch[..1], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("must be self-signed"), "{e}");
    // The same envelope signed with a chain out of order is refused at integrity.
    let bad = jws(
        &header("ES256"),
        &key,
        SignatureAlgorithm::Es256,
        &[ch[0].clone(), ch[2].clone(), ch[1].clone()],
    );
    assert!(integrity_err(MEDIA_TYPE_JWS, &bad).contains("certificate chain"));

    let (k2, no_ds) = chain_with(
        LeafKey::Rcgen(&rcgen::PKCS_ECDSA_P256_SHA256),
        vec![KeyUsagePurpose::KeyEncipherment],
        vec![ExtendedKeyUsagePurpose::CodeSigning],
    );
    let e = validate_code_signing_chain(&no_ds, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lacks digitalSignature"), "{e}");
    let env = jws(&header("ES256"), &k2, SignatureAlgorithm::Es256, &no_ds);
    assert!(integrity_err(MEDIA_TYPE_JWS, &env).contains("digitalSignature"));
    let (_, extra) = chain_with(
        LeafKey::Rcgen(&rcgen::PKCS_ECDSA_P256_SHA256),
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ],
        vec![],
    );
    assert!(
        validate_code_signing_chain(&extra, None)
            .unwrap_err()
            .to_string()
            .contains("keyCertSign")
    );
    for (eku, name) in [
        (ExtendedKeyUsagePurpose::ServerAuth, "serverAuth"),
        (ExtendedKeyUsagePurpose::ClientAuth, "clientAuth"),
        (ExtendedKeyUsagePurpose::EmailProtection, "emailProtection"),
        (ExtendedKeyUsagePurpose::TimeStamping, "timeStamping"),
        (ExtendedKeyUsagePurpose::OcspSigning, "OCSPSigning"),
    ] {
        let (_, c) = chain_with(
            LeafKey::Rcgen(&rcgen::PKCS_ECDSA_P256_SHA256),
            vec![KeyUsagePurpose::DigitalSignature],
            vec![ExtendedKeyUsagePurpose::CodeSigning, eku],
        );
        let e = validate_code_signing_chain(&c, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("extendedKeyUsage {name} is not allowed")),
            "{e}"
        );
    }
    // Signing refuses a key that is not the leaf's.
    let (other, _) = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let req = SignRequest {
        target: target(),
        signing_time: sigil_notary::time::now(),
        expiry: None,
        key: &other,
        chain: &ch,
        signing_agent: "t".into(),
    };
    assert!(
        envelope::sign(EnvelopeFormat::Jws, &req)
            .unwrap_err()
            .to_string()
            .contains("does not match the leaf")
    );
}

fn policy_err(v: Value) -> String {
    TrustPolicyDocument::from_json(&serde_json::to_vec(&v).unwrap())
        .unwrap_err()
        .to_string()
}

fn stmt(name: &str, scopes: &[&str]) -> Value {
    json!({"name": name, "registryScopes": scopes, "signatureVerification": {"level": "strict"},
           "trustStores": ["ca:s"], "trustedIdentities": ["*"]})
}

#[test]
fn bad_trust_policies_name_the_field() {
    let doc = |s: Vec<Value>| json!({"version": "1.0", "trustPolicies": s});
    assert!(
        policy_err(doc(vec![stmt("a", &["*"]), stmt("a", &["r.io/x"])]))
            .contains("`name` \"a\" is used by more than one statement")
    );
    for bad in ["r.io", "r.io/x:v1", "r.io/x@sha256:aa", "r.io/*", "r.io/X"] {
        let e = policy_err(doc(vec![stmt("a", &[bad])]));
        assert!(
            e.contains("`registryScopes`") && e.contains(bad),
            "{bad}: {e}"
        );
    }
    assert!(policy_err(doc(vec![stmt("a", &["*", "r.io/x"])])).contains("must be the only scope"));
    assert!(
        policy_err(doc(vec![stmt("a", &["r.io/x"]), stmt("b", &["r.io/x"])]))
            .contains("appears in more than one statement")
    );
    assert!(
        policy_err(doc(vec![stmt("a", &["*"]), stmt("b", &["*"])]))
            .contains("only one statement may use the wildcard")
    );
    assert!(
        policy_err(json!({"version": "2.0", "trustPolicies": [stmt("a", &["*"])]}))
            .contains("`version`")
    );
    let mut s = stmt("a", &["*"]);
    s["signatureVerification"]["level"] = json!("lenient");
    assert!(policy_err(doc(vec![s])).contains("`signatureVerification.level` \"lenient\""));
    let mut s = stmt("a", &["*"]);
    s["signatureVerification"] = json!({"level": "skip"});
    assert!(policy_err(doc(vec![s])).contains("must not have `trustStores`"));
    let mut s = stmt("a", &["*"]);
    s["signatureVerification"]["override"] = json!({"expiry": "skip"});
    assert!(policy_err(doc(vec![s])).contains("expiry cannot be skipped"));
    let mut s = stmt("a", &["*"]);
    s["trustStores"] = json!(["ca"]);
    assert!(policy_err(doc(vec![s])).contains("missing the separator"));
    let mut s = stmt("a", &["*"]);
    s["trustStores"] = json!(["x509:s"]);
    assert!(policy_err(doc(vec![s])).contains("unknown type"));
    let mut s = stmt("a", &["*"]);
    s["trustedIdentities"] = json!(["*", "x509.subject:C=US,ST=WA,O=x"]);
    assert!(policy_err(doc(vec![s])).contains("\"*\" must be the only identity"));
    let mut s = stmt("a", &["*"]);
    s["trustedIdentities"] = json!([
        "x509.subject:C=US,ST=WA,O=x",
        "x509.subject:C=US,ST=WA,O=x,CN=y"
    ]);
    assert!(policy_err(doc(vec![s])).contains("overlap"));
    let mut s = stmt("a", &["*"]);
    s["trustedIdentities"] = json!(["x509.subject:C=US,ST=WA,O=x+CN=y"]);
    assert!(policy_err(doc(vec![s])).contains("multi-valued"));
    // Selection: exact scope over the wildcard; a digest is required.
    let d = TrustPolicyDocument::from_json(
        &serde_json::to_vec(&doc(vec![stmt("any", &["*"]), stmt("x", &["r.io/x"])])).unwrap(),
    )
    .unwrap();
    assert_eq!(d.statement_for("r.io/x@sha256:aa").unwrap().name, "x");
    assert_eq!(d.statement_for("r.io/y@sha256:aa").unwrap().name, "any");
    assert!(
        d.statement_for("r.io/x:v1")
            .unwrap_err()
            .to_string()
            .contains("must contain a digest")
    );
    let only = TrustPolicyDocument::from_json(
        &serde_json::to_vec(&doc(vec![stmt("x", &["r.io/x"])])).unwrap(),
    )
    .unwrap();
    assert!(
        only.statement_for("r.io/y@sha256:aa")
            .unwrap_err()
            .to_string()
            .contains("no trust policy statement applies")
    );
}

#[test]
fn bad_trust_stores_are_refused() {
    let (_, ch) = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("x509");
    std::fs::create_dir_all(base.join("ca/good")).unwrap();
    std::fs::write(base.join("ca/good/root.pem"), ch[2].to_pem()).unwrap();
    std::fs::create_dir_all(base.join("ca/sub/inner")).unwrap();
    std::fs::write(base.join("ca/sub/root.pem"), ch[2].to_pem()).unwrap();
    std::fs::create_dir_all(base.join("ca/empty")).unwrap();
    std::fs::create_dir_all(base.join("ca/leaf")).unwrap();
    std::fs::write(base.join("ca/leaf/leaf.pem"), ch[0].to_pem()).unwrap();
    std::fs::create_dir_all(base.join("tsa/notroot")).unwrap();
    std::fs::write(base.join("tsa/notroot/int.pem"), ch[1].to_pem()).unwrap();
    std::fs::create_dir_all(base.join("ca/junk")).unwrap();
    std::fs::write(
        base.join("ca/junk/x.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(base.join("ca/good"), base.join("ca/link")).unwrap();
    let st = TrustStore::from_dir(dir.path()).unwrap();
    assert_eq!(
        st.certificates(StoreType::Ca, "good").unwrap(),
        vec![ch[2].clone()]
    );
    let err = |t, n| st.certificates(t, n).unwrap_err().to_string();
    assert!(err(StoreType::Ca, "sub").contains("subdirectories are not allowed"));
    assert!(err(StoreType::Ca, "empty").contains("no certificates"));
    assert!(err(StoreType::Ca, "leaf").contains("neither a CA nor self-signed"));
    assert!(err(StoreType::Tsa, "notroot").contains("not a self-signed root"));
    assert!(err(StoreType::Ca, "link").contains("symlink"));
    assert!(err(StoreType::Ca, "missing").contains("ca:missing"));
    assert!(err(StoreType::Ca, "junk").contains("x.pem"));
    assert!(err(StoreType::Ca, "../etc").contains("invalid"));
}
