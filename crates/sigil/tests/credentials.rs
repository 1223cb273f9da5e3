//! Docker credential helpers (`credHelpers`, `credsStore`) in sigil's registry client, end to end.
//!
//! Each test writes fake `docker-credential-sigiltest*` helpers (shell scripts) into a temp dir put first
//! on the `PATH` of the `sigil` child process only, and runs `sigil digest --authfile` against
//! `sigil registry serve --htpasswd`. The helpers log the server URL they read on stdin, so the tests pin
//! which helper ran, with what, and how often.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::*;

const USER: &str = "helper-user";
const PASS: &str = "helper-secret-pass";

/// A registry with Basic auth holding one image, and a directory of fake helpers.
struct Setup {
    reg: SigilRegistry,
    image: String,
    digest: String,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Option<Self> {
        let line = htpasswd_line(USER, PASS)?;
        let reg = SigilRegistry::start(ServeOpts {
            htpasswd: Some((line, "sigil-cred-test".into())),
            ..Default::default()
        });
        let http = reg.http().with_basic_auth(USER, PASS);
        let img = push_small_image(&http, "cred/app", "v1", fresh_seed()).await;
        let image = format!("{}/cred/app:v1", reg.addr());
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        let s = Setup {
            reg,
            image,
            digest: img.digest().to_owned(),
            dir,
        };
        let log = s.log_path();
        // The right credentials, only for the server URL docker would pass (the registry host).
        s.helper(
            "sigiltest",
            &format!(
                r#"[ "$1" = get ] || {{ echo "unexpected command $1" >&2; exit 9; }}
read -r url
echo "sigiltest $url" >> '{log}'
if [ "$url" = '{addr}' ]; then
  printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASS}"}}\n' "$url"
else
  echo "credentials not found in native keychain"; exit 1
fi"#,
                log = log.display(),
                addr = s.reg.addr()
            ),
        );
        s.helper(
            "sigiltest-wrong",
            &format!(
                r#"read -r url; echo "sigiltest-wrong $url" >> '{}'
printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"not-the-password"}}\n' "$url""#,
                log.display()
            ),
        );
        s.helper(
            "sigiltest-notfound",
            &format!(
                r#"read -r url; echo "sigiltest-notfound $url" >> '{}'
echo "credentials not found in native keychain"; exit 1"#,
                log.display()
            ),
        );
        s.helper(
            "sigiltest-crash",
            r#"echo "panic: keyring daemon unreachable (dbus)" >&2; exit 2"#,
        );
        s.helper("sigiltest-hang", "sleep 60");
        Some(s)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("helper.log")
    }

    /// The helper invocations so far (`name server-url` lines).
    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn helper(&self, name: &str, body: &str) {
        let p = self
            .dir
            .path()
            .join("bin")
            .join(format!("docker-credential-{name}"));
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// `sigil digest --authfile CONFIG IMAGE` with the helpers first on PATH.
    fn digest(&self, config: serde_json::Value, timeout: Option<&str>) -> Output {
        let authfile = self.dir.path().join("config.json");
        fs::write(&authfile, config.to_string()).unwrap();
        let mut cmd = sigil_command(&[
            "digest",
            "--authfile",
            authfile.to_str().unwrap(),
            &self.image,
        ]);
        cmd.env("PATH", path_with(&self.dir.path().join("bin")));
        match timeout {
            Some(t) => cmd.env("SIGIL_CREDENTIAL_HELPER_TIMEOUT", t),
            None => cmd.env_remove("SIGIL_CREDENTIAL_HELPER_TIMEOUT"),
        };
        run_command(cmd)
    }

    fn expect_digest(&self, what: &str, out: &Output) {
        let stdout = expect_success(what, out);
        assert_eq!(
            String::from_utf8_lossy(&stdout).trim(),
            self.digest,
            "{what}"
        );
    }
}

fn path_with(dir: &Path) -> std::ffi::OsString {
    let old = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![dir.to_owned()];
    paths.extend(std::env::split_paths(&old));
    std::env::join_paths(paths).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn cred_helpers_entry_is_used_once_with_the_registry_host() {
    let Some(s) = Setup::start().await else {
        return;
    };
    let addr = s.reg.addr();
    let out = s.digest(json!({"credHelpers": {addr.clone(): "sigiltest"}}), None);
    s.expect_digest("sigil digest with credHelpers", &out);
    // One run per registry per client, with the host on stdin.
    assert_eq!(s.calls(), vec![format!("sigiltest {addr}")]);
}

#[tokio::test]
async fn creds_store_is_used_for_every_registry() {
    let Some(s) = Setup::start().await else {
        return;
    };
    let out = s.digest(json!({"credsStore": "sigiltest"}), None);
    s.expect_digest("sigil digest with credsStore", &out);
    assert_eq!(s.calls(), vec![format!("sigiltest {}", s.reg.addr())]);
}

#[tokio::test]
async fn cred_helpers_win_over_creds_store_which_wins_over_auths() {
    use base64::Engine as _;
    let Some(s) = Setup::start().await else {
        return;
    };
    let addr = s.reg.addr();
    // credHelpers (right) beats credsStore (wrong): works, and the store helper never runs.
    let out = s.digest(
        json!({"credsStore": "sigiltest-wrong", "credHelpers": {addr.clone(): "sigiltest"}}),
        None,
    );
    s.expect_digest("credHelpers over credsStore", &out);
    assert_eq!(s.calls(), vec![format!("sigiltest {addr}")]);
    // The other way round it fails: the per-registry helper is the one used.
    let out = s.digest(
        json!({"credsStore": "sigiltest", "credHelpers": {addr.clone(): "sigiltest-wrong"}}),
        None,
    );
    assert!(
        !out.status.success(),
        "wrong credHelpers entry was not used"
    );
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    assert_eq!(
        s.calls().last().unwrap(),
        &format!("sigiltest-wrong {addr}")
    );
    // As in docker, a credsStore replaces the auths entry: its "not found" means anonymous even
    // though auths holds the right password.
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    let out = s.digest(
        json!({"credsStore": "sigiltest-notfound", "auths": {addr.clone(): {"auth": auth}}}),
        None,
    );
    assert!(!out.status.success(), "auths was used despite credsStore");
    assert_eq!(
        s.calls().last().unwrap(),
        &format!("sigiltest-notfound {addr}")
    );
    // And explicit auths still work when no helper is configured.
    let out = s.digest(json!({"auths": {addr: {"auth": auth}}}), None);
    s.expect_digest("auths without helpers", &out);
}

#[tokio::test]
async fn helper_without_credentials_means_anonymous_and_the_registry_refuses() {
    let Some(s) = Setup::start().await else {
        return;
    };
    let addr = s.reg.addr();
    let out = s.digest(
        json!({"credHelpers": {addr.clone(): "sigiltest-notfound"}}),
        None,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("denied by {addr}")) && err.contains("(401)"),
        "{err}"
    );
    assert!(
        !err.contains("docker-credential"),
        "not-found is not a helper error: {err}"
    );
    assert_eq!(s.calls(), vec![format!("sigiltest-notfound {addr}")]);
}

#[tokio::test]
async fn crashing_helper_is_one_clear_error_naming_it() {
    let Some(s) = Setup::start().await else {
        return;
    };
    let addr = s.reg.addr();
    let out = s.digest(
        json!({"credHelpers": {addr.clone(): "sigiltest-crash"}}),
        None,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("docker-credential-sigiltest-crash")
            && lines[0].contains(&addr)
            && lines[0].contains("exit status 2")
            && lines[0].contains("keyring daemon unreachable"),
        "{err}"
    );
    // A helper that is not installed is named too.
    let out = s.digest(json!({"credsStore": "sigiltest-absent"}), None);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("docker-credential-sigiltest-absent") && err.contains("not installed"),
        "{err}"
    );
}

#[tokio::test]
async fn hanging_helper_times_out() {
    let Some(s) = Setup::start().await else {
        return;
    };
    let addr = s.reg.addr();
    let start = Instant::now();
    let out = s.digest(json!({"credHelpers": {addr: "sigiltest-hang"}}), Some("1"));
    let took = start.elapsed();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("docker-credential-sigiltest-hang")
            && err.contains("did not answer within 1s"),
        "{err}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}
