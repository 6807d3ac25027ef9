//! Durations and sizes as a person reads and writes them: `humantime` and `bytesize`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytesize::ByteSize;

/// A duration as `humantime` writes it (`500ms`, `1.5s`, `2m`, `1h 30m`), or plain seconds
/// (`1.5`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration: {e} (try 500ms, 1.5s, 2m)"))
}

/// A size in bytes: plain, or with a unit: `KiB`, `MiB`, `GiB` are powers of 1024; `kB`, `MB`,
/// `GB` (and `k`, `M`, `G`) powers of 1000.
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    let n = s.parse::<ByteSize>()?.as_u64();
    usize::try_from(n).map_err(|_| format!("{s:?} is out of range"))
}

/// A duration, as `humantime` prints it (`200ms`, `1m 30s`).
pub(crate) fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A size in binary units: `512 B`, `64.0 KiB`, `8.0 MiB`.
pub(crate) fn size(n: u64) -> String {
    ByteSize(n).display().iec().to_string()
}

/// How long ago `unix_ms` was, in its largest whole unit: `42s`, `5m`, `3h`, `2days`.
pub(crate) fn age(unix_ms: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(unix_ms / 1000);
    let unit = [86_400, 3600, 60, 1]
        .into_iter()
        .find(|&u| secs >= u)
        .unwrap_or(1);
    duration(Duration::from_secs(secs / unit * unit))
}

/// A moment as an RFC 3339 UTC time, and how long ago it was:
/// `2025-01-31T12:00:00Z (5m ago)`.
pub(crate) fn when(unix_ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(unix_ms);
    format!(
        "{} ({} ago)",
        humantime::format_rfc3339_seconds(at),
        age(unix_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse_in_the_documented_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("64kB"), Ok(64_000));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert!(parse_size("lots").is_err());
        assert_eq!(duration(Duration::from_millis(200)), "200ms");
        assert_eq!(size(8 << 20), "8.0 MiB");
        assert_eq!(size(100), "100 B");
    }

    #[test]
    fn ages_keep_their_largest_unit() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert_eq!(age(now - 90_000 - 500), "1m");
        assert_eq!(age(now - 3 * 3_600_000 - 61_000), "3h");
        assert_eq!(age(now + 5_000), "0s"); // a creator's clock ahead of ours
    }
}
