//! Results: per-metric samples for both registries, the comparison table and the `BENCH_JSON` line.
//!
//! Every metric is a rate (requests/s or MB/s, where MB = 10^6 bytes), so for every row **higher is
//! better** and the ratio is `sigil / peer`. A metric with a target passes when the ratio reaches it and
//! neither side had errors; with errors it is reported as `ERROR`, never as a number alone.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// Which registry a figure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The registry under test.
    Sigil,
    /// The reference registry.
    Peer,
}

impl Side {
    /// Index into [`Metric::sides`].
    pub fn index(self) -> usize {
        match self {
            Side::Sigil => 0,
            Side::Peer => 1,
        }
    }
}

/// One measurement.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// The rate (in the metric's unit).
    pub value: f64,
    /// Wall time of the measured work, in seconds.
    pub seconds: f64,
    /// Median latency in milliseconds (load metrics only).
    pub p50_ms: Option<f64>,
    /// 99th-percentile latency in milliseconds (load metrics only).
    pub p99_ms: Option<f64>,
    /// Successful measured requests (load metrics only).
    pub requests: Option<u64>,
}

/// All measurements of one metric on one registry.
#[derive(Clone, Debug, Default)]
pub struct SideResult {
    /// Error-free samples.
    pub samples: Vec<Sample>,
    /// Failed requests or failed runs.
    pub errors: u64,
    /// The first error message.
    pub first_error: Option<String>,
}

impl SideResult {
    /// Records `n` errors, keeping the first message.
    pub fn error(&mut self, n: u64, message: String) {
        self.errors += n.max(1);
        self.first_error.get_or_insert(message);
    }

    /// The median sample by value (lower middle for an even count), if any.
    pub fn median(&self) -> Option<&Sample> {
        let mut v: Vec<&Sample> = self.samples.iter().collect();
        v.sort_by(|a, b| a.value.total_cmp(&b.value));
        v.get(v.len().saturating_sub(1) / 2).copied()
    }

    fn ok(&self) -> bool {
        self.errors == 0 && !self.samples.is_empty()
    }
}

/// Outcome of a metric against its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Ratio reached the target.
    Pass,
    /// Ratio below the target.
    Fail,
    /// A side had errors or no data.
    Error,
    /// No target (informational metric) and no errors.
    Info,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
            Verdict::Info => "-",
        }
    }
}

/// One row of the comparison.
#[derive(Clone, Debug)]
pub struct Metric {
    /// Stable identifier for the JSON summary.
    pub key: String,
    /// Human-readable name.
    pub label: String,
    /// Unit of the values.
    pub unit: &'static str,
    /// Required `sigil / peer` ratio, if any.
    pub target: Option<f64>,
    /// Results indexed by [`Side::index`].
    pub sides: [SideResult; 2],
}

impl Metric {
    /// A metric with no results yet.
    pub fn new(
        key: impl Into<String>,
        label: impl Into<String>,
        unit: &'static str,
        target: Option<f64>,
    ) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            unit,
            target,
            sides: [SideResult::default(), SideResult::default()],
        }
    }

    /// Results of `side`.
    pub fn side(&mut self, side: Side) -> &mut SideResult {
        &mut self.sides[side.index()]
    }

    /// `sigil / peer` of the medians, when both sides have error-free data.
    pub fn ratio(&self) -> Option<f64> {
        let [s, p] = &self.sides;
        if !s.ok() || !p.ok() {
            return None;
        }
        let (s, p) = (s.median()?, p.median()?);
        (p.value > 0.0).then(|| s.value / p.value)
    }

    /// The verdict against the target.
    pub fn verdict(&self) -> Verdict {
        if !self.sides.iter().all(SideResult::ok) {
            return Verdict::Error;
        }
        match (self.target, self.ratio()) {
            (None, _) => Verdict::Info,
            (Some(t), Some(r)) if r >= t => Verdict::Pass,
            (Some(_), Some(_)) => Verdict::Fail,
            (Some(_), None) => Verdict::Error,
        }
    }

    fn has_latency(&self) -> bool {
        self.sides
            .iter()
            .flat_map(|s| &s.samples)
            .any(|s| s.p50_ms.is_some())
    }
}

/// Context printed above the table and stored in the JSON line.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// Label and URL of the registry under test.
    pub sigil: (String, String),
    /// Label and URL of the reference registry.
    pub peer: (String, String),
    /// `--quick` run.
    pub quick: bool,
    /// Free-form settings (durations, sizes, rounds...).
    pub settings: Value,
    /// CPUs available to this process.
    pub cpus: usize,
    /// CPU use by other processes (percent) during one second before the run.
    pub cpu_busy_before: Option<f64>,
    /// `/proc/loadavg` before the run.
    pub loadavg_start: Option<String>,
    /// `/proc/loadavg` after the run.
    pub loadavg_end: Option<String>,
}

fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn cell(side: &SideResult, unit: &str) -> String {
    if side.errors > 0 {
        return format!("ERRORS: {}", side.errors);
    }
    match side.median() {
        None => "no data".to_owned(),
        Some(s) if unit == "MB/s" => format!("{} ({:.3} s)", fmt_rate(s.value), s.seconds),
        Some(s) => fmt_rate(s.value),
    }
}

fn latency_cell(side: &SideResult) -> String {
    match side.median() {
        Some(Sample {
            p50_ms: Some(p50),
            p99_ms: Some(p99),
            ..
        }) if side.errors == 0 => format!("{p50:.2} / {p99:.2}"),
        _ => "-".to_owned(),
    }
}

/// The human-readable table (several lines, ending with a newline).
pub fn table(info: &RunInfo, metrics: &[Metric]) -> String {
    let (sl, pl) = (info.sigil.0.as_str(), info.peer.0.as_str());
    let mut rows: Vec<[String; 6]> = vec![[
        "metric".into(),
        "unit".into(),
        sl.into(),
        pl.into(),
        format!("ratio {sl}/{pl}"),
        "target -> result".into(),
    ]];
    for m in metrics {
        let ratio = m
            .ratio()
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
        let target = match m.target {
            Some(t) => format!(">= {t:.0}x -> {}", m.verdict().as_str()),
            None => m.verdict().as_str().to_owned(),
        };
        rows.push([
            m.label.clone(),
            m.unit.to_owned(),
            cell(&m.sides[0], m.unit),
            cell(&m.sides[1], m.unit),
            ratio,
            target,
        ]);
        if m.has_latency() {
            rows.push([
                "  latency p50 / p99 (lower is better)".into(),
                "ms".into(),
                latency_cell(&m.sides[0]),
                latency_cell(&m.sides[1]),
                String::new(),
                String::new(),
            ]);
        }
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sigil-bench: {sl} = {}   vs   {pl} = {}",
        info.sigil.1, info.peer.1
    );
    let _ = writeln!(
        out,
        "  {} CPUs, CPU busy before the run: {}, loadavg before: {}, after: {}{}",
        info.cpus,
        info.cpu_busy_before
            .map_or_else(|| "?".to_owned(), |b| format!("{b:.0}%")),
        info.loadavg_start.as_deref().unwrap_or("?"),
        info.loadavg_end.as_deref().unwrap_or("?"),
        if info.quick {
            "   (--quick smoke run: figures are indicative only)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  every row is a rate: HIGHER IS BETTER; ratio = {sl} / {pl} (of medians); MB = 10^6 bytes;"
    );
    let _ = writeln!(
        out,
        "  targets: manifest GET/s >= 3x {pl}, blob push/pull throughput >= 1x {pl}"
    );
    let _ = writeln!(out);
    let sep: String = widths
        .iter()
        .map(|w| "-".repeat(w + 2))
        .collect::<Vec<_>>()
        .join("+");
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(j, (c, w))| {
                if (2..=4).contains(&j) {
                    format!(" {c:>w$} ")
                } else {
                    format!(" {c:<w$} ")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("|").trim_end());
        if i == 0 {
            let _ = writeln!(out, "{sep}");
        }
    }
    let _ = writeln!(out);
    let (pass, fail, error) = counts(metrics);
    let _ = writeln!(out, "targets: {pass} PASS, {fail} FAIL, {error} ERROR");
    for m in metrics {
        for (side, label) in m.sides.iter().zip([sl, pl]) {
            if let Some(e) = &side.first_error {
                let _ = writeln!(
                    out,
                    "error: {} on {label} ({} errors), first: {e}",
                    m.label, side.errors
                );
            }
        }
    }
    out
}

fn counts(metrics: &[Metric]) -> (usize, usize, usize) {
    let count = |v: Verdict| metrics.iter().filter(|m| m.verdict() == v).count();
    (
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Error),
    )
}

fn side_json(side: &SideResult) -> Value {
    let median = side.median();
    json!({
        "value": median.map(|s| s.value),
        "seconds": median.map(|s| s.seconds),
        "p50_ms": median.and_then(|s| s.p50_ms),
        "p99_ms": median.and_then(|s| s.p99_ms),
        "requests": median.and_then(|s| s.requests),
        "samples": side.samples.iter().map(|s| s.value).collect::<Vec<_>>(),
        "errors": side.errors,
        "first_error": side.first_error,
    })
}

/// The one-line JSON summary (without the `BENCH_JSON ` prefix).
pub fn json_line(info: &RunInfo, metrics: &[Metric]) -> String {
    let (pass, fail, error) = counts(metrics);
    let rows: Vec<Value> = metrics
        .iter()
        .map(|m| {
            json!({
                "key": m.key,
                "label": m.label,
                "unit": m.unit,
                "higher_is_better": true,
                "target_ratio": m.target,
                "sigil": side_json(&m.sides[0]),
                "peer": side_json(&m.sides[1]),
                "ratio": m.ratio(),
                "result": m.verdict().as_str(),
            })
        })
        .collect();
    json!({
        "schema": 1,
        "quick": info.quick,
        "sigil": { "label": info.sigil.0, "url": info.sigil.1 },
        "peer": { "label": info.peer.0, "url": info.peer.1 },
        "cpus": info.cpus,
        "cpu_busy_before_pct": info.cpu_busy_before,
        "loadavg_start": info.loadavg_start,
        "loadavg_end": info.loadavg_end,
        "settings": info.settings,
        "metrics": rows,
        "summary": { "pass": pass, "fail": fail, "error": error },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(v: f64) -> Sample {
        Sample {
            value: v,
            seconds: 1.0,
            ..Sample::default()
        }
    }

    #[test]
    fn verdicts() {
        let mut m = Metric::new("k", "k", "req/s", Some(3.0));
        m.side(Side::Sigil).samples.push(sample(300.0));
        m.side(Side::Peer).samples.push(sample(100.0));
        assert_eq!(m.verdict(), Verdict::Pass);
        m.side(Side::Peer).samples = vec![sample(101.0)];
        assert_eq!(m.verdict(), Verdict::Fail);
        m.side(Side::Sigil).error(2, "boom".into());
        assert_eq!(m.verdict(), Verdict::Error);
        assert_eq!(m.ratio(), None);
    }

    #[test]
    fn median_is_lower_middle() {
        let mut s = SideResult::default();
        for v in [5.0, 1.0, 3.0, 2.0] {
            s.samples.push(sample(v));
        }
        assert_eq!(s.median().map(|m| m.value), Some(2.0));
    }
}
