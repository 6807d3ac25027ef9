//! The `shmq` binary, run as a user would.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::{assert_gone, unique};

fn shmq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(args)
        .output()
        .expect("run shmq")
}

#[test]
fn rm_removes_shmq_segments_and_leaves_foreign_files_alone() {
    let name = unique("cli-rm");
    {
        let _v = shmq::Value::<u32>::create(shmq::Options::new(name.as_str()).persistent(true), 1)
            .unwrap();
    }
    let out = shmq(&["rm", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("removed {name}")
    );
    assert_gone(&name);

    let foreign = unique("cli-foreign");
    std::fs::write(format!("/dev/shm/{foreign}"), b"not ours, hands off").unwrap();
    let out = shmq(&["rm", &foreign]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("shmq: ") && err.contains("not a shmq segment"),
        "{err}"
    );
    assert!(
        std::path::Path::new(&format!("/dev/shm/{foreign}")).exists(),
        "foreign file was removed"
    );
    std::fs::remove_file(format!("/dev/shm/{foreign}")).unwrap();

    let out = shmq(&["rm", "bad name"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid segment name"));
}

/// Runs `shmq bench --quick ARGS` with its output going to pipes; returns stdout and stderr.
fn bench(args: &[&str]) -> (String, String) {
    // One at a time: two runs would share CPUs 0 and 1 and measure each other.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let child = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["bench", "--quick"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "bench {args:?}: {stderr}");
    let left: Vec<String> = common::leftovers("shmq-bench-")
        .into_iter()
        .filter(|n| n.ends_with(&format!("-{pid}")))
        .collect();
    assert!(left.is_empty(), "bench left segments behind: {left:?}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

const TRANSPORTS: [&str; 12] = [
    "raw",
    "shmq-busy",
    "shmq-hybrid",
    "shmq-blocking",
    "shmq-select-64",
    "shmq-async-blocking",
    "shmq-async-hybrid",
    "shmq-queue",
    "shmq-queue-blocking",
    "pipe",
    "unix",
    "tcp",
];

#[test]
fn bench_measures_every_transport_and_reports_progress() {
    let (json, progress) = bench(&["--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("bench --json is JSON");
    let rows = json["rows"].as_array().expect("rows");
    let count = |metric: &str| rows.iter().filter(|r| r["metric"] == metric).count();
    // One row per (metric, size, pairs, transport): 8 transports x 3 latency sizes x p50/p99,
    // plus shmq-select-64, shmq-async-blocking and shmq-async-hybrid at 8 B and
    // shmq-topic-busy at 8 B and 64 B; the parked p50/p99 of shmq-blocking and shmq-select-64;
    // 6 transports x 5 stream sizes plus the raw ring's 8-byte stream and shmq-queue's 8 B,
    // 64 B and 1 KiB streams; the MPMC section, 3 transports x 2P2C/4P4C; and the Topic
    // section's publish cost (1 and 64 subscribers) and delivery (topic and rings).
    assert_eq!(count("latency_p50_ns"), 29, "{json:#}");
    assert_eq!(count("latency_p99_ns"), 29);
    assert_eq!(count("parked_latency_p50_ns"), 2);
    assert_eq!(count("parked_latency_p99_ns"), 2);
    assert_eq!(count("throughput_msgs_per_s"), 34);
    assert_eq!(count("mpmc_throughput_msgs_per_s"), 6);
    assert_eq!(count("topic_publish_ns"), 2);
    assert_eq!(count("topic_delivery_msgs_per_s"), 2);
    for transport in TRANSPORTS
        .into_iter()
        .chain(["shmq-topic", "shmq-rings", "shmq-topic-busy"])
    {
        assert!(
            rows.iter().any(|r| r["transport"] == transport),
            "{transport} missing"
        );
    }
    // Every figure is a positive number; every non-pipe figure that the pipe was measured
    // for has its ratio to the pipe; the select rows, and only they, their ratio to the
    // blocking recv of the same row.
    for r in rows {
        assert!(r["value"].as_f64().is_some_and(|v| v > 0.0), "{r}");
        let metric = r["metric"].as_str().unwrap();
        if r["transport"] != "pipe"
            && metric != "mpmc_throughput_msgs_per_s"
            && !metric.starts_with("parked_")
            && !metric.starts_with("topic_")
        {
            assert!(r["vs_pipe"].as_f64().is_some_and(|v| v > 0.0), "{r}");
        }
        let blocking = rows.iter().find(|b| {
            b["transport"] == "shmq-blocking" && b["metric"] == r["metric"] && b["size"] == 8
        });
        if r["transport"] == "shmq-select-64" {
            let ratio = r["select_over_blocking"].as_f64().expect("a ratio");
            let b = blocking.expect("the blocking row")["value"]
                .as_f64()
                .unwrap();
            assert!(
                (ratio - r["value"].as_f64().unwrap() / b).abs() < 1e-9,
                "{r}"
            );
        } else {
            assert!(r["select_over_blocking"].is_null(), "{r}");
        }
    }
    // The Topic section's rows with a baseline, and only they, carry their figure over the
    // baseline's: publish with 64 subscribers over 1, the topic's delivery over the rings',
    // the topic's busy-poll latency over shmq-busy's of the same metric and size.
    let with_ratio: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| !r["topic_ratio"].is_null())
        .collect();
    assert_eq!(with_ratio.len(), 6, "{json:#}");
    for r in with_ratio {
        let (transport, pairs) = match (r["metric"].as_str().unwrap(), &r["transport"]) {
            ("topic_publish_ns", _) => ("shmq-topic", 1),
            ("topic_delivery_msgs_per_s", t) if t == "shmq-topic" => ("shmq-rings", 16),
            ("latency_p50_ns" | "latency_p99_ns", t) if t == "shmq-topic-busy" => ("shmq-busy", 1),
            _ => panic!("a ratio on {r}"),
        };
        let base = rows
            .iter()
            .find(|b| {
                b["metric"] == r["metric"]
                    && b["size"] == r["size"]
                    && b["pairs"] == pairs
                    && b["transport"] == transport
            })
            .expect("the baseline row");
        let want = r["value"].as_f64().unwrap() / base["value"].as_f64().unwrap();
        let ratio = r["topic_ratio"].as_f64().unwrap();
        assert!((ratio - want).abs() < 1e-9, "{r}");
    }
    assert!(json["cpus"].as_u64().is_some_and(|n| n >= 1));
    // stderr is not a terminal: one progress line per measurement (31 latency, 34
    // throughput, 6 MPMC and 3 Topic ones: the publish cost with 1 and 64 subscribers is
    // one), then the total; the select runs right after the blocking one, the topic's
    // latency right after shmq-busy's.
    let lines: Vec<&str> = progress.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("shmq bench: [") && l.contains("/74] "))
            .count(),
        74,
        "{progress}"
    );
    for first in [
        "[1/74] latency raw 8 B: p50 ",
        "[3/74] latency shmq-topic-busy 8 B: p50 ",
        "[6/74] latency shmq-select-64 8 B: p50 ",
        "[72/74] topic-publish 1 vs 64 subs shmq-topic 64 B: ",
        "[73/74] topic-delivery 16 subs shmq-topic 64 B: ",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(first)),
            "{first}: {progress}"
        );
    }
    assert!(
        lines.last().unwrap().starts_with("shmq bench: done in "),
        "{progress}"
    );
    assert!(
        !progress.contains('\x1b'),
        "escape codes on a pipe: {progress:?}"
    );
}

#[test]
fn bench_table_fits_100_columns_unless_wide() {
    let width = |line: &str| line.chars().count();
    let (table, _) = bench(&[]);
    assert!(
        table.lines().all(|l| width(l) <= 100),
        "a line is wider than 100 columns:\n{table}"
    );
    // Every transport still has its column, in some block of the table.
    for transport in TRANSPORTS {
        assert!(
            table
                .lines()
                .any(|l| l.split_whitespace().any(|w| w == transport)),
            "{transport} missing:\n{table}"
        );
    }
    assert!(table.contains("throughput 1.0 MiB"), "{table}");
    assert!(table.contains("throughput 4P4C 8 B"), "{table}");
    // The async section, its header naming both async transports (checked above).
    assert!(table.contains("Async: the 8-byte ping-pong"), "{table}");
    // The Select section: both rows and the ratio column.
    assert!(table.contains("select / recv"), "{table}");
    assert!(table.contains("parked p99 8 B"), "{table}");
    // The Topic section: its rows, each with a figure, and its ratio column.
    assert!(table.contains("Topic: one publisher"), "{table}");
    for label in [
        "publish 64 B, 64 subscribers",
        "delivery to 16, 64 B",
        "latency p50 64 B",
    ] {
        let line = table
            .lines()
            .rfind(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label} missing:\n{table}"));
        assert!(line.contains('×') && !line.contains('—'), "{line}");
    }

    let (wide, _) = bench(&["--wide"]);
    // One heading names every transport of the main table, so it is wider than 100 columns.
    let heading = wide
        .lines()
        .find(|l| l.contains("shmq-busy"))
        .expect("a heading");
    for transport in [
        "raw",
        "shmq-busy",
        "shmq-blocking",
        "shmq-queue",
        "pipe",
        "unix",
        "tcp",
    ] {
        assert!(
            heading.split_whitespace().any(|w| w == transport),
            "{heading}"
        );
    }
    assert!(wide.lines().any(|l| width(l) > 100), "{wide}");
}
