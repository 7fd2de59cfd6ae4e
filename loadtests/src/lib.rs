//! Load tool for the Learning Hub LRS (binary `lrs-load`):
//!
//! - [`generator`]: deterministic Learning Hub xAPI traffic (organisations,
//!   learners, e-LfH, MOOC and Magpie sessions) and the directory CSVs;
//! - [`driver`]: the HTTP load driver (closed- or open-loop, HDR latency
//!   histograms per request kind, CPU and RSS of the server process);
//! - [`report`]: the report, as a table and as JSON (shape documented there);
//! - [`trivial`]: a do-nothing HTTP server for measuring the tool's own ceiling.

pub mod driver;
pub mod generator;
mod names;
pub mod procstat;
pub mod report;
pub mod rng;
pub mod trivial;

pub use generator::{Generator, GeneratorConfig};

/// Parses a duration such as `60s`, `500ms`, `2m`, `1h` or `10` (seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 60s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(super::parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(super::parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(super::parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(super::parse_duration("fast").is_err());
        assert!(super::parse_duration("3 weeks").is_err());
    }
}
