//! Closed-loop load generator for manifest GETs.
//!
//! `concurrency` tasks share one keep-alive client (so the pool grows to `concurrency` connections) and
//! each sends requests back to back until the deadline. Requests that start during the warm-up are sent
//! but not measured. Every response is checked (status 200 and exact body length); anything else is an
//! error, counted whether it happened during the warm-up or not.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::header::ACCEPT;
use reqwest::{StatusCode, Url};

use crate::registry::{MANIFEST_ACCEPT, http_client};

/// Parameters of one load run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The manifest URL.
    pub url: Url,
    /// Expected body length.
    pub expected_len: usize,
    /// Number of concurrent clients (connections).
    pub concurrency: usize,
    /// Unmeasured warm-up.
    pub warmup: Duration,
    /// Measured duration.
    pub duration: Duration,
}

/// Result of one load run.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// Measured successful requests per second.
    pub rate: f64,
    /// Successful measured requests.
    pub requests: u64,
    /// Failed requests (wrong status, wrong length, transport errors), warm-up included.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency in milliseconds.
    pub p99_ms: f64,
    /// Length of the measured window in seconds.
    pub seconds: f64,
}

struct WorkerOut {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    last_done: Instant,
}

/// Runs the load described by `spec` and returns its figures.
pub async fn run(spec: &LoadSpec) -> Result<LoadResult> {
    let client = http_client(spec.concurrency)?;
    let t0 = Instant::now();
    let measure_from = t0 + spec.warmup;
    let end = measure_from + spec.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..spec.concurrency {
        let client = client.clone();
        let url = spec.url.clone();
        let expected_len = spec.expected_len;
        tasks.spawn(async move {
            let mut out = WorkerOut {
                latencies_us: Vec::with_capacity(16 * 1024),
                errors: 0,
                first_error: None,
                last_done: measure_from,
            };
            loop {
                let start = Instant::now();
                if start >= end {
                    break;
                }
                let outcome = match client
                    .get(url.clone())
                    .header(ACCEPT, MANIFEST_ACCEPT)
                    .send()
                    .await
                {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Ok(body) if status == StatusCode::OK && body.len() == expected_len => {
                                Ok(())
                            }
                            Ok(body) => Err(format!(
                                "status {status}, {} bytes (expected 200, {expected_len} bytes)",
                                body.len()
                            )),
                            Err(e) => Err(format!("reading the body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request: {e}")),
                };
                let done = Instant::now();
                match outcome {
                    Ok(()) if start >= measure_from => {
                        let us = done.duration_since(start).as_micros();
                        out.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                        out.last_done = out.last_done.max(done);
                    }
                    Ok(()) => {}
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert(e);
                        // Do not spin on a refused connection.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            out
        });
    }
    let mut latencies: Vec<u32> = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut last_done = end;
    while let Some(joined) = tasks.join_next().await {
        let out = joined.context("load worker panicked")?;
        latencies.extend_from_slice(&out.latencies_us);
        errors += out.errors;
        if first_error.is_none() {
            first_error = out.first_error;
        }
        last_done = last_done.max(out.last_done);
    }
    latencies.sort_unstable();
    let seconds = last_done.duration_since(measure_from).as_secs_f64();
    let requests = latencies.len() as u64;
    Ok(LoadResult {
        rate: if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        },
        requests,
        errors,
        first_error,
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        seconds,
    })
}

/// Nearest-rank percentile of sorted microsecond samples, in milliseconds (0 when empty).
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us.get(idx).map_or(0.0, |&us| f64::from(us) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::percentile_ms;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert!((percentile_ms(&v, 50.0) - 50.0).abs() < 1e-9);
        assert!((percentile_ms(&v, 99.0) - 99.0).abs() < 1e-9);
        assert!((percentile_ms(&[5000], 99.0) - 5.0).abs() < 1e-9);
        assert!(percentile_ms(&[], 50.0).abs() < 1e-9);
    }
}
