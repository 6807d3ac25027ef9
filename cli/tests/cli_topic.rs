//! `shmq ls` and `shmq inspect` on a topic: every subscriber with its process, liveness, lag
//! and losses, and the publishers, with subscribers and publishers in real processes.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{assert_gone, role, unique};
use serde_json::{Value as Json, json};
use shmq::{Policy, Topic, TopicConfig, TopicRecvError};

/// Runs the binary with its output going to pipes.
fn shmq(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(args)
        .output()
        .expect("run shmq");
    assert!(
        out.status.success(),
        "shmq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(args: &[&str]) -> String {
    String::from_utf8(shmq(args).stdout).expect("UTF-8 output")
}

fn json_of(args: &[&str]) -> Json {
    let out = shmq(args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shmq {args:?} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A child process playing a role of this test binary, killed if the test ends first.
struct Kid {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Kid {
    /// Spawns this test binary as role `test` with `arg`, its standard output read by a
    /// thread of its own.
    fn spawn(test: &str, arg: &str) -> Kid {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(common::ROLE, test)
            .env(common::ARG, arg)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Kid { child, lines }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (30 s at most) for the child to print `want` on a line of its own.
    fn wait_for(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) if l == want => return,
                Ok(_) => {}
                Err(e) => panic!("child {} never said {want:?} ({e})", self.pid()),
            }
        }
    }

    /// Kills the child with SIGKILL (no destructor runs: its entries stay in the topic) and
    /// reaps it, so its pid is gone.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Says `what` on a line of its own (after a newline: the test harness may have begun one)
/// and sleeps until killed.
fn say_and_sleep(what: &str) -> ! {
    println!("\n{what}");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn ls_and_inspect_show_each_subscriber_process_with_liveness_lag_and_losses() {
    const TEST: &str = "ls_and_inspect_show_each_subscriber_process_with_liveness_lag_and_losses";
    if let Some(arg) = role(TEST) {
        let (what, name) = arg.split_once(':').unwrap();
        let topic = Topic::open(name).unwrap();
        match what {
            // Joins, then (once ten are published into four slots) is told it lost six and
            // reads one: position 7, lag 3, lost 6.
            "reader" => {
                let mut sub = topic.subscriber().unwrap();
                println!("\njoined");
                let deadline = Instant::now() + Duration::from_secs(30);
                while topic.published() < 10 {
                    assert!(Instant::now() < deadline, "nothing was published");
                    std::thread::sleep(Duration::from_millis(2));
                }
                assert_eq!(sub.try_recv().unwrap_err(), TopicRecvError::Lagged(6));
                assert_eq!(sub.try_recv().unwrap().seq(), 6);
                say_and_sleep("ready");
            }
            // Joins at position 0 and never reads (the test kills it).
            "idle" => {
                let _sub = topic.subscriber().unwrap();
                say_and_sleep("joined");
            }
            "publisher" => {
                let mut p = topic.publisher().unwrap();
                for i in 0..10u8 {
                    p.publish(&[i; 3]).unwrap();
                }
                say_and_sleep("published");
            }
            other => panic!("no role {other}"),
        }
    }

    let name = unique("cli-topic");
    let topic = Topic::create_with(
        name.as_str(),
        &TopicConfig::new(4, 32).policy(Policy::Overwrite),
    )
    .unwrap();
    let reader = Kid::spawn(TEST, &format!("reader:{name}"));
    reader.wait_for("joined");
    let idle = Kid::spawn(TEST, &format!("idle:{name}"));
    idle.wait_for("joined");
    let publisher = Kid::spawn(TEST, &format!("publisher:{name}"));
    publisher.wait_for("published");
    reader.wait_for("ready");
    let (r, d, p) = (reader.pid(), idle.pid(), publisher.pid());
    idle.kill();
    publisher.kill();

    // inspect --json: both subscribers, by entry, with their numbers; the dead publisher.
    let j = json_of(&["inspect", "--json", &name]);
    assert_eq!(j["kind"], "topic");
    assert_eq!(
        j["subscribers"],
        json!([
            {"index": 0, "pid": r, "alive": true, "position": 7, "lag": 3, "lost": 6,
             "start_time": j["subscribers"][0]["start_time"]},
            {"index": 1, "pid": d, "alive": false, "position": 0, "lag": 10, "lost": 0,
             "start_time": j["subscribers"][1]["start_time"]},
        ]),
        "{j:#}"
    );
    assert!(j["subscribers"][0]["start_time"].as_u64().unwrap() > 0);
    let procs = j["processes"].as_array().unwrap();
    assert!(
        procs
            .iter()
            .any(|x| x["role"] == "publisher" && x["pid"] == p && x["alive"] == false),
        "{j:#}"
    );
    let detail = |what: &str| {
        j["details"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == what)
            .unwrap_or_else(|| panic!("no {what}: {j:#}"))["value"]
            .clone()
    };
    assert_eq!(detail("policy"), "overwrite");
    assert_eq!(detail("published"), "10");
    assert_eq!(detail("subscribers"), "2 of 64");
    // The last messages, oldest first: the log holds 6..=9, --peek 2 shows 8 and 9.
    let j = json_of(&["inspect", "--json", "--peek", "2", &name]);
    assert_eq!(
        j["contents"],
        json!([{"len": 3, "hex": "080808"}, {"len": 3, "hex": "090909"}])
    );

    // inspect: a table of subscribers; the processes table keeps the publisher.
    let out = text(&["inspect", &name]);
    let cells = |first: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no row {first}:\n{out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        cells("SUBSCRIBER"),
        ["SUBSCRIBER", "PROCESS", "STATE", "POSITION", "LAG", "LOST"]
    );
    let (rs, ds) = (r.to_string(), d.to_string());
    let at = out
        .lines()
        .position(|l| l.starts_with("SUBSCRIBER"))
        .unwrap();
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(at + 1)
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["0", rs.as_str(), "alive", "7", "3", "6"], "{out}");
    // Ten published into four slots: the idle one was lapped (it has not been told yet).
    assert_eq!(
        rows[1],
        ["1", ds.as_str(), "dead", "0", "10", "(lapped)", "0"],
        "{out}"
    );
    let publisher_row = cells(&p.to_string());
    assert_eq!(publisher_row[1], "publisher", "{out}");
    assert_eq!(publisher_row.last().unwrap(), "dead", "{out}");
    assert!(
        !out.lines().any(|l| l.contains("subscriber 0")),
        "subscribers are listed once, in their own table:\n{out}"
    );
    assert!(
        out.contains("last 4 messages (up to 4), oldest first:"),
        "{out}"
    );

    // ls --json: the same subscribers; the slowest one's lag (at most the capacity) is the fill.
    let ls = json_of(&["ls", "--json", "--prefix", &name, "--kind", "topic"]);
    let seg = &ls["segments"][0];
    assert_eq!(seg["name"], name.as_str(), "{ls:#}");
    assert_eq!(seg["subscribers"], j["subscribers"], "{ls:#}");
    assert_eq!(seg["fill"], 4);
    // ls: one line per topic naming its subscribers.
    let out = text(&["ls", "--prefix", &name]);
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no subscriber line:\n{out}"));
    assert_eq!(
        line,
        format!("{name}: 2 subscribers: {r} lag 3 lost 6; {d} (dead) lag 10"),
        "{out}"
    );
    // Other kinds have no subscribers to show.
    let q = unique("cli-topic-q");
    let _queue = shmq::Queue::<u8>::create(q.as_str(), 2).unwrap();
    let j = json_of(&["inspect", "--json", &q]);
    assert_eq!(j["subscribers"], Json::Null);

    drop(reader);
    drop(topic);
    assert_gone(&name);
}

#[test]
fn inspect_and_ls_on_a_topic_with_no_subscriber_one_and_many() {
    let name = unique("cli-topic-empty");
    let topic = Topic::create(name.as_str(), 8, 16).unwrap();
    let j = json_of(&["inspect", "--json", &name]);
    assert_eq!(j["subscribers"], json!([]));
    assert_eq!(j["fill"], 0);
    assert_eq!(j["contents"], json!([]));
    let out = text(&["inspect", &name]);
    assert!(out.contains("no subscribers"), "{out}");
    assert!(out.contains("no messages in the log"), "{out}");
    let out = text(&["ls", "--prefix", &name]);
    assert!(out.contains(&format!("{name}: no subscribers")), "{out}");

    // A subscriber in this process that has read everything: lag 0, alive.
    let mut sub = topic.subscriber().unwrap();
    let mut p = topic.publisher().unwrap();
    p.publish(b"hello").unwrap();
    drop(sub.recv().unwrap());
    let j = json_of(&["inspect", "--json", &name]);
    let me = std::process::id();
    assert_eq!(j["subscribers"][0]["pid"], me);
    assert_eq!(j["subscribers"][0]["alive"], true);
    assert_eq!(j["subscribers"][0]["position"], 1);
    assert_eq!(j["subscribers"][0]["lag"], 0);
    assert_eq!(j["contents"], json!([{"len": 5, "hex": "68656c6c6f"}]));

    // Past six subscribers the ls line names the first six and counts the rest.
    let more: Vec<_> = (0..7).map(|_| topic.subscriber().unwrap()).collect();
    let out = text(&["ls", "--prefix", &name]);
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no subscriber line:\n{out}"));
    let shown = format!("{me} lag 0; ").repeat(6);
    assert_eq!(
        line,
        format!("{name}: 8 subscribers: {shown}+2 more (shmq inspect {name})"),
        "{out}"
    );
    drop((sub, more, p, topic));
    assert_gone(&name);
}
