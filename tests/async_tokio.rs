//! The async methods (feature `async`) under tokio, across processes: many rings and a TCP
//! socket in one `tokio::select!`, futures dropped at random points, nothing lost or doubled.

mod common;

use std::time::Duration;

use common::{assert_gone, rand, role, spawn, unique, wait};
use shmq::{Event, Queue, RecvError, Ring};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(120);
const RINGS: usize = 8;
const PER_RING: u64 = 12_500; // 8 × 12,500 = 100,000 messages

#[test]
fn one_task_serves_eight_rings_and_a_socket_dropping_futures_at_random() {
    const TEST: &str = "one_task_serves_eight_rings_and_a_socket_dropping_futures_at_random";
    if let Some(arg) = role(TEST) {
        let (name, k) = arg.split_once(',').unwrap();
        let k: u64 = k.parse().unwrap();
        let mut tx = Ring::open(format!("{name}-{k}").as_str())
            .unwrap()
            .producer()
            .unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1d ^ (k + 1);
        for i in 0..PER_RING {
            if rand(&mut seed) % 512 == 0 {
                std::thread::sleep(Duration::from_micros(rand(&mut seed) % 500));
            }
            tx.send_timeout(&i.to_le_bytes(), LIMIT).unwrap();
        }
        return;
    }
    let name = unique("async-rings");
    {
        let rings: Vec<Ring> = (0..RINGS)
            .map(|k| Ring::create(format!("{name}-{k}").as_str(), 4096).unwrap())
            .collect();
        let mut rxs: Vec<_> = rings.iter().map(|r| r.consumer().unwrap()).collect();
        let mut kids: Vec<_> = (0..RINGS)
            .map(|k| spawn(TEST, &format!("{name},{k}")))
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (next, bytes) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // A TCP client that writes 1,000 bytes one at a time, at random moments.
            let client = tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let mut seed = 7u64;
                for i in 0..1000u32 {
                    if rand(&mut seed) % 8 == 0 {
                        tokio::time::sleep(Duration::from_micros(rand(&mut seed) % 300)).await;
                    }
                    s.write_all(&[(i % 251) as u8]).await.unwrap();
                }
            });
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut next = [0u64; RINGS];
            let mut done = [false; RINGS];
            let mut bytes = 0u32;
            let mut sock_done = false;
            let mut seed = 99u64;
            let mut buf = [0u8; 1];
            // Turns won by the timer: every ring future polled in them was pending, registered
            // with the readiness thread, and dropped unfinished.
            let mut timer_won = 0u32;
            while !(done.iter().all(|&d| d) && sock_done) {
                // Branches in random order (tokio's default), and now and then a timer that
                // wins and drops every other branch mid-wait.
                let pick = (rand(&mut seed) % RINGS as u64) as usize;
                let [a, b, c, d, e, f, g, h] = &mut rxs[..] else {
                    unreachable!()
                };
                let jitter = Duration::from_micros(rand(&mut seed) % 50);
                tokio::select! {
                    r = a.recv_async(), if !done[0] => take(0, r, &mut next, &mut done),
                    r = b.recv_async(), if !done[1] => take(1, r, &mut next, &mut done),
                    r = c.recv_async(), if !done[2] => take(2, r, &mut next, &mut done),
                    r = d.recv_async(), if !done[3] => take(3, r, &mut next, &mut done),
                    r = e.recv_async(), if !done[4] => take(4, r, &mut next, &mut done),
                    r = f.recv_async(), if !done[5] => take(5, r, &mut next, &mut done),
                    r = g.recv_async(), if !done[6] => take(6, r, &mut next, &mut done),
                    r = h.recv_async(), if !done[7] => take(7, r, &mut next, &mut done),
                    n = sock.read(&mut buf), if !sock_done => {
                        match n.unwrap() {
                            0 => sock_done = true,
                            _ => {
                                assert_eq!(buf[0], (bytes % 251) as u8);
                                bytes += 1;
                            }
                        }
                    }
                    _ = tokio::time::sleep(jitter), if pick == 0 => timer_won += 1,
                }
            }
            client.await.unwrap();
            eprintln!("the timer won {timer_won} turns");
            assert!(timer_won > 0, "no future was ever dropped while it waited");
            (next, bytes)
        });
        assert_eq!(
            next, [PER_RING; RINGS],
            "every message exactly once, in order"
        );
        assert_eq!(bytes, 1000);
        for kid in &mut kids {
            assert!(wait(kid, LIMIT).success());
        }
    }
    for k in 0..RINGS {
        assert_gone(&format!("{name}-{k}"));
    }
}

fn take(
    k: usize,
    r: Result<shmq::ReadGuard<'_>, RecvError>,
    next: &mut [u64; RINGS],
    done: &mut [bool; RINGS],
) {
    match r {
        Ok(msg) => {
            let v = u64::from_le_bytes((&*msg).try_into().unwrap());
            assert_eq!(v, next[k], "ring {k} out of order");
            next[k] += 1;
        }
        Err(RecvError::Disconnected) => done[k] = true,
        Err(e) => panic!("ring {k}: {e}"),
    }
}

#[test]
fn queues_events_semaphores_and_mutexes_await() {
    let name = unique("async-kinds");
    {
        let q = Queue::<u64>::create(format!("{name}-q").as_str(), 2).unwrap();
        let e = Event::create(format!("{name}-e").as_str()).unwrap();
        let s = shmq::Semaphore::create(format!("{name}-s").as_str(), 0).unwrap();
        let m = shmq::Mutex::<u64>::create(format!("{name}-m").as_str(), 0).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let q2 = q.try_clone().unwrap();
            let getter = tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..1000 {
                    got.push(q2.get_async().await.unwrap());
                }
                got
            });
            for i in 0..1000u64 {
                q.put_async(i).await.unwrap();
            }
            assert_eq!(getter.await.unwrap(), (0..1000).collect::<Vec<_>>());

            let waiter = {
                let e = Event::open(format!("{name}-e").as_str()).unwrap();
                tokio::spawn(async move { e.wait_async().await })
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiter.is_finished());
            e.set();
            waiter.await.unwrap();

            let acquirer = {
                let s = shmq::Semaphore::open(format!("{name}-s").as_str()).unwrap();
                tokio::spawn(async move { s.acquire_async().await })
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!acquirer.is_finished());
            s.release().unwrap();
            acquirer.await.unwrap();
            assert_eq!(s.value(), 0);

            let held = m.lock().unwrap();
            let locker = {
                let m = shmq::Mutex::<u64>::open(format!("{name}-m").as_str()).unwrap();
                tokio::spawn(async move {
                    let mut g = m.lock_async().await.unwrap();
                    *g += 1;
                })
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!locker.is_finished());
            drop(held);
            locker.await.unwrap();
            assert_eq!(*m.lock().unwrap(), 1);

            // A future dropped while it waits takes nothing: the item stays for the next get.
            let q3 = q.try_clone().unwrap();
            let pending = tokio::time::timeout(Duration::from_millis(20), q3.get_async()).await;
            assert!(pending.is_err(), "nothing was there");
            q.put(42).unwrap();
            assert_eq!(q.get_async().await, Ok(42));
        });
    }
    assert_gone(&format!("{name}-q"));
}
