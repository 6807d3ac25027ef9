//! The SPSC ring and the pipe across real processes: bulk integrity, producers and consumers
//! killed at random points, role claims, disconnect detection, idle CPU.

mod common;

use std::time::{Duration, Instant};

use common::{assert_gone, cpu_ticks, role, spawn, unique, wait, wait_all_ok};
use shmq::{AttachError, Pipe, RecvTimeoutError, Ring, SendTimeoutError, WaitMode};

const LIMIT: Duration = Duration::from_secs(300);

/// A small deterministic generator (xorshift), so producer and consumer agree on sizes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Mostly small sizes, now and then up to `max`.
    fn size(&mut self, max: usize) -> usize {
        let r = self.next();
        if r % 64 == 0 {
            (r >> 8) as usize % (max + 1)
        } else {
            (r >> 8) as usize % 48
        }
    }
}

/// Fills `buf` for message `seq`: the sequence number first (as far as it fits), then a
/// pattern that depends on `seq` and the position, so a torn or misplaced message is caught.
fn fill(buf: &mut [u8], seq: u64) {
    let head = seq.to_le_bytes();
    for (i, b) in buf.iter_mut().enumerate() {
        *b = if i < 8 {
            head[i]
        } else {
            (seq as u8).wrapping_mul(31).wrapping_add(i as u8)
        };
    }
}

fn check(msg: &[u8], seq: u64, want_len: usize) {
    assert_eq!(msg.len(), want_len, "message {seq} has the wrong length");
    let mut expect = vec![0u8; want_len];
    fill(&mut expect, seq);
    assert!(
        msg == expect.as_slice(),
        "message {seq} has the wrong bytes"
    );
}

#[test]
fn ten_million_messages_of_random_sizes_arrive_whole_and_in_order() {
    const N: u64 = 10_000_000;
    if let Some(name) = role("ten_million_messages_of_random_sizes_arrive_whole_and_in_order") {
        let mut tx = Ring::open(name.as_str()).unwrap().producer().unwrap();
        let max = tx.max_message();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for seq in 0..N {
            let len = rng.size(max);
            let mut g = tx.reserve(len).unwrap();
            fill(&mut g, seq);
            g.commit();
        }
        return;
    }
    let name = unique("ring-10m");
    {
        let ring = Ring::create(name.as_str(), 64 * 1024).unwrap();
        let mut rx = ring.consumer().unwrap();
        let max = ring.max_message();
        let mut kid = spawn(
            "ten_million_messages_of_random_sizes_arrive_whole_and_in_order",
            &name,
        );
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut seq = 0;
        // Alternate single receives and batched drains, so both paths carry real traffic.
        while seq < N {
            if seq % 2 == 0 {
                let msg = rx.recv_timeout(Duration::from_secs(60)).unwrap();
                check(&msg, seq, rng.size(max));
                seq += 1;
            } else {
                let mut got = 0;
                rx.try_drain(|msg| {
                    check(msg, seq + got, rng.size(max));
                    got += 1;
                })
                .unwrap();
                seq += got;
            }
        }
        assert!(wait(&mut kid, LIMIT).success());
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).err(),
            Some(RecvTimeoutError::Disconnected)
        );
    }
    assert_gone(&name);
}

#[test]
fn producer_killed_at_random_points_fifty_times() {
    if let Some(arg) = role("producer_killed_at_random_points_fifty_times") {
        let (name, round) = arg.split_once(',').unwrap();
        let round: u64 = round.parse().unwrap();
        // Reclaims the role from the previous, killed producer.
        let mut tx = Ring::open(name).unwrap().producer().unwrap();
        let max = tx.max_message();
        let mut rng = Rng(round + 1);
        for seq in 0.. {
            let len = 8 + rng.size(max - 8);
            let mut g = tx.reserve(len).unwrap();
            fill(&mut g, (round << 40) | seq);
            g.commit();
        }
        unreachable!();
    }
    let name = unique("ring-kill");
    {
        let ring = Ring::create(name.as_str(), 16 * 1024).unwrap();
        let mut rx = ring.consumer().unwrap();
        let max = ring.max_message();
        let mut chaos = Rng(42);
        let mut slowest = Duration::ZERO;
        for round in 0..50u64 {
            if round % 2 == 1 {
                rx.set_wait_mode(WaitMode::BusyPoll);
            } else {
                rx.set_wait_mode(WaitMode::Hybrid);
            }
            let mut kid = spawn(
                "producer_killed_at_random_points_fifty_times",
                &format!("{name},{round}"),
            );
            // Until the new producer claims the role, the ring still names the one killed in the
            // previous round, and the consumer (rightly) reports Disconnected.
            let started = Instant::now();
            while rx.is_abandoned() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "round {round}: producer never attached"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut rng = Rng(round + 1);
            let kill_after = chaos.next() % 3000;
            let mut seq = 0u64;
            let mut killed_at = None;
            loop {
                if seq == kill_after && killed_at.is_none() {
                    kid.kill().unwrap(); // SIGKILL, wherever the producer is
                    killed_at = Some(Instant::now());
                }
                match rx.recv_timeout(Duration::from_secs(30)) {
                    Ok(msg) => {
                        check(&msg, (round << 40) | seq, 8 + rng.size(max - 8));
                        seq += 1;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("round {round}: {e}"),
                }
            }
            let killed_at = killed_at.expect("producer stopped before it was killed");
            slowest = slowest.max(killed_at.elapsed());
            kid.wait().unwrap();
        }
        eprintln!("slowest kill-to-Disconnected (including draining): {slowest:?}");
    }
    assert_gone(&name);
}

#[test]
fn consumer_death_unblocks_a_producer_waiting_on_a_full_ring() {
    if let Some(name) = role("consumer_death_unblocks_a_producer_waiting_on_a_full_ring") {
        let _rx = Ring::open(name.as_str()).unwrap().consumer().unwrap();
        std::thread::sleep(Duration::from_secs(600)); // never reads
        return;
    }
    let name = unique("ring-full");
    {
        let ring = Ring::create(name.as_str(), 1024).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut kid = spawn(
            "consumer_death_unblocks_a_producer_waiting_on_a_full_ring",
            &name,
        );
        let started = Instant::now();
        while ring.consumer().is_ok() {
            // The child has not claimed the consumer role yet; our probe released it again.
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "child never attached"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        while tx.try_send(&[1; 100]).is_ok() {}
        let pid = kid.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        assert_eq!(
            tx.send_timeout(&[1; 100], Duration::from_secs(60)),
            Err(SendTimeoutError::Disconnected)
        );
        killer.join().unwrap();
        kid.wait().unwrap();
        assert!(tx.is_abandoned());
    }
    assert_gone(&name);
}

#[test]
fn roles_are_exclusive_and_reclaimed_from_dead_holders() {
    if let Some(name) = role("roles_are_exclusive_and_reclaimed_from_dead_holders") {
        let ring = Ring::open(name.as_str()).unwrap();
        let _tx = ring.producer().unwrap();
        // Dies holding the role: exit without dropping.
        std::process::exit(0);
    }
    let name = unique("ring-roles");
    {
        let ring = Ring::create(name.as_str(), 1024).unwrap();
        let rx = ring.consumer().unwrap();
        assert!(matches!(
            ring.consumer(),
            Err(AttachError::RoleTaken {
                role: "consumer",
                ..
            })
        ));
        let mut kid = spawn("roles_are_exclusive_and_reclaimed_from_dead_holders", &name);
        assert!(wait(&mut kid, LIMIT).success());
        // The dead child's role is reclaimed.
        let mut tx = ring.producer().unwrap();
        tx.send(b"after").unwrap();
        drop(rx);
        let mut rx = ring.consumer().unwrap();
        assert_eq!(&*rx.recv().unwrap(), b"after");
    }
    assert_gone(&name);
}

#[test]
fn pipe_echo_between_processes() {
    const N: u32 = 20_000;
    if let Some(name) = role("pipe_echo_between_processes") {
        let mut end = Pipe::open(name.as_str()).unwrap();
        let mut buf = Vec::new();
        loop {
            match end.recv_into(&mut buf) {
                Ok(_) => {
                    buf.reverse();
                    end.send(&buf).unwrap();
                }
                Err(shmq::RecvError::Disconnected) => return,
                Err(e) => panic!("{e}"),
            }
        }
    }
    let name = unique("pipe-echo");
    {
        let mut end = Pipe::create(name.as_str(), 4096).unwrap();
        let mut kid = spawn("pipe_echo_between_processes", &name);
        for i in 0..N {
            let msg: Vec<u8> = (0..(i % 200)).map(|j| (i + j) as u8).collect();
            end.send(&msg).unwrap();
            let back = end.recv_timeout(Duration::from_secs(60)).unwrap();
            let mut want = msg.clone();
            want.reverse();
            assert_eq!(&*back, want.as_slice());
        }
        drop(end); // the child sees Disconnected and exits
        assert!(wait(&mut kid, LIMIT).success());
    }
    assert_gone(&name);
}

#[test]
fn idle_hybrid_and_blocking_consumers_use_no_cpu() {
    if let Some(arg) = role("idle_hybrid_and_blocking_consumers_use_no_cpu") {
        let (name, mode) = arg.split_once(',').unwrap();
        let mut rx = Ring::open(name).unwrap().consumer().unwrap();
        rx.set_wait_mode(if mode == "hybrid" {
            WaitMode::Hybrid
        } else {
            WaitMode::Blocking
        });
        assert_eq!(
            &*rx.recv_timeout(Duration::from_secs(60)).unwrap(),
            b"wake up"
        );
        return;
    }
    for mode in ["hybrid", "blocking"] {
        let name = unique("ring-idle");
        {
            let ring = Ring::create(name.as_str(), 1024).unwrap();
            let mut tx = ring.producer().unwrap();
            let mut kid = spawn(
                "idle_hybrid_and_blocking_consumers_use_no_cpu",
                &format!("{name},{mode}"),
            );
            std::thread::sleep(Duration::from_millis(200));
            let before = cpu_ticks(kid.id());
            std::thread::sleep(Duration::from_millis(500));
            let used = cpu_ticks(kid.id()) - before;
            tx.send(b"wake up").unwrap();
            assert!(wait(&mut kid, LIMIT).success());
            // Spinning would cost ~50 ticks (100 Hz) in 500 ms; a parked waiter ~0.
            assert!(used <= 5, "{mode} consumer used {used} ticks while idle");
        }
        assert_gone(&name);
    }
}

#[test]
fn either_side_may_start_first() {
    if let Some(name) = role("either_side_may_start_first") {
        let mut tx = Ring::open(name.as_str()).unwrap().producer().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        tx.send(b"late producer").unwrap();
        return;
    }
    let name = unique("ring-order");
    {
        let ring = Ring::create(name.as_str(), 1024).unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut kids = [spawn("either_side_may_start_first", &name)];
        // The consumer waits for a producer that has not attached yet, not Disconnected.
        assert_eq!(
            &*rx.recv_timeout(Duration::from_secs(60)).unwrap(),
            b"late producer"
        );
        wait_all_ok(&mut kids, LIMIT);
    }
    assert_gone(&name);
}

#[test]
fn unpublished_batch_hides_nothing_sent_later() {
    let name = unique("ring-forget");
    {
        let ring = Ring::create(name.as_str(), 4096).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut batch = tx.batch();
        batch.try_push(b"never published").unwrap();
        drop(batch); // WriteBatch has no Drop: forgetting it is the same as dropping it
        tx.send(b"after").unwrap();
        assert_eq!(
            &*rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            b"after"
        );
    }
    assert_gone(&name);
}

#[test]
fn non_waiting_calls_notice_a_dead_producer() {
    if let Some(name) = role("non_waiting_calls_notice_a_dead_producer") {
        let _tx = Ring::open(name.as_str()).unwrap().producer().unwrap();
        std::process::exit(0); // dies holding the role
    }
    let name = unique("ring-trydead");
    {
        let ring = Ring::create(name.as_str(), 4096).unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut kid = spawn("non_waiting_calls_notice_a_dead_producer", &name);
        assert!(wait(&mut kid, LIMIT).success());
        // Only non-waiting and short-timeout calls: they must see Disconnected, not Empty forever.
        let started = Instant::now();
        loop {
            match rx.try_recv() {
                Err(shmq::TryRecvError::Disconnected) => break,
                Err(shmq::TryRecvError::Empty) => {}
                other => panic!("{other:?}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "dead producer never noticed"
            );
            assert!(matches!(
                rx.recv_timeout(Duration::from_millis(5)),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected)
            ));
        }
    }
    assert_gone(&name);
}
