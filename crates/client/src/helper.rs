//! Docker credential helpers: runs `docker-credential-<name> get` the way docker does.
//!
//! The helper reads the server URL (see [`crate::auth::helper_server_url`]) on stdin and prints
//! `{"ServerURL","Username","Secret"}` on stdout. A user name of `<token>` means the secret is an
//! identity (OAuth2 refresh) token. A non-zero exit whose output says `credentials not found` means the
//! helper holds nothing for that registry (anonymous access); any other failure, malformed output or a
//! helper that does not answer within the timeout is a [`HelperError`] naming the helper. Secrets are
//! never part of an error message: only the helper's stderr (or stdout on a failure) is quoted, cut
//! to one short line.
//!
//! The helper runs as a `tokio` child process (the async runtime is not blocked) and is killed when it
//! times out.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tokio::io::AsyncWriteExt as _;

use crate::auth::{Credential, RegistryCredential};

/// The user name a helper returns when the secret is an identity token.
pub const TOKEN_USERNAME: &str = "<token>";

/// Why a credential helper could not give an answer.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("credential helper docker-credential-{helper} (for {server_url}) {message}")]
pub struct HelperError {
    /// The helper name (`ecr-login`, `pass`, ...).
    pub helper: String,
    /// The server URL it was asked about.
    pub server_url: String,
    /// What went wrong (never contains the secret).
    pub message: String,
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> get` for `server_url`. `Ok(None)`: the helper has no credentials
/// for it.
pub async fn get_credentials(
    helper: &str,
    server_url: &str,
    timeout: Duration,
) -> Result<Option<RegistryCredential>, HelperError> {
    let program = format!("docker-credential-{helper}");
    run_program(std::path::Path::new(&program), helper, server_url, timeout).await
}

/// Runs the helper program at `program` (a name looked up on `PATH`, or a path).
async fn run_program(
    program: &std::path::Path,
    helper: &str,
    server_url: &str,
    timeout: Duration,
) -> Result<Option<RegistryCredential>, HelperError> {
    let fail = |message: String| HelperError {
        helper: helper.to_owned(),
        server_url: server_url.to_owned(),
        message,
    };
    let mut child = tokio::process::Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                fail(format!(
                    "is not installed ({} not found on PATH)",
                    program.display()
                ))
            } else {
                fail(format!("cannot be started: {e}"))
            }
        })?;
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A helper may exit without reading stdin; a broken pipe is then not our problem.
            let _ = stdin.write_all(server_url.as_bytes()).await;
            drop(stdin);
        }
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(fail(format!("failed: {e}"))),
        // Dropping the future drops the child, which kill_on_drop kills.
        Err(_) => {
            return Err(fail(format!(
                "did not answer within {}s",
                timeout.as_secs_f64()
            )));
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let not_found = |s: &str| s.to_ascii_lowercase().contains("credentials not found");
        if not_found(&stdout) || not_found(&stderr) {
            tracing::debug!(helper, server_url, "credential helper has no credentials");
            return Ok(None);
        }
        let said = first_line(&stderr).or_else(|| first_line(&stdout));
        let status = match output.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_owned(),
        };
        return Err(fail(match said {
            Some(line) => format!("failed ({status}): {line}"),
            None => format!("failed ({status})"),
        }));
    }
    let answer: HelperAnswer = serde_json::from_str(stdout.trim()).map_err(|e| {
        // serde's message may quote input; give only the position.
        fail(format!(
            "printed invalid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if answer.secret.is_empty() {
        return Err(fail("answered without a Secret".to_owned()));
    }
    if answer.username == TOKEN_USERNAME {
        Ok(Some(RegistryCredential::IdentityToken(answer.secret)))
    } else {
        Ok(Some(RegistryCredential::Basic(Credential::new(
            answer.username,
            answer.secret,
        ))))
    }
}

/// The first non-empty line of `s`, at most 200 characters.
fn first_line(s: &str) -> Option<String> {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// Writes `script` as an executable shell script and runs it as helper `t`.
    async fn run(
        script: &str,
        timeout: Duration,
    ) -> Result<Option<RegistryCredential>, HelperError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker-credential-t");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        run_program(&path, "t", "reg.example:5000", timeout).await
    }

    const T: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn reads_server_url_on_stdin_and_parses_answer() {
        // The helper echoes back what it read on stdin as the user name.
        let got = run(
            r#"[ "$1" = get ] || exit 3; read -r url; printf '{"ServerURL":"%s","Username":"u-%s","Secret":"s3cret"}' "$url" "$url""#,
            T,
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            Some(RegistryCredential::Basic(Credential::new(
                "u-reg.example:5000",
                "s3cret"
            )))
        );
        let got = run(
            r#"echo '{"ServerURL":"x","Username":"<token>","Secret":"rt"}'"#,
            T,
        )
        .await
        .unwrap();
        assert_eq!(got, Some(RegistryCredential::IdentityToken("rt".into())));
    }

    #[tokio::test]
    async fn not_found_is_anonymous_and_failures_are_errors() {
        let got = run("echo 'credentials not found in native keychain'; exit 1", T).await;
        assert_eq!(got, Ok(None));
        let got = run("echo 'credentials not found' >&2; exit 1", T).await;
        assert_eq!(got, Ok(None));
        let e = run("echo 'keychain locked' >&2; exit 2", T)
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("docker-credential-t"), "{msg}");
        assert!(
            msg.contains("exit status 2") && msg.contains("keychain locked"),
            "{msg}"
        );
        // Invalid JSON: the message must not quote the output (it may hold a secret).
        let e = run("echo 'Secret: hunter2'", T)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid JSON") && !e.contains("hunter2"), "{e}");
        let e = run(r#"echo '{"Username":"u"}'"#, T)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("without a Secret"), "{e}");
        // A zero exit with "credentials not found" is not a success either.
        assert!(run("echo 'credentials not found'", T).await.is_err());
    }

    #[tokio::test]
    async fn hanging_helper_times_out_and_missing_helper_is_named() {
        let start = std::time::Instant::now();
        let e = run("sleep 30", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(e.to_string().contains("did not answer within 0.3s"), "{e}");
        let e = get_credentials("sigil-no-such-helper", "x", T)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("docker-credential-sigil-no-such-helper")
                && e.to_string().contains("not installed"),
            "{e}"
        );
    }
}
