//! Cost of the foundation primitives, each beside a std baseline measured in the same run.
//!
//! `cargo bench --bench sync`. Uncontended operations run on one thread; the contended
//! counter runs two threads (`iter_custom` + `Barrier`) over the same shared-memory mutex,
//! against `std::sync::Mutex`. Cross-process benchmarks live with the ring.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn name(tag: &str) -> String {
    format!("shmq-bench-{tag}-{}", std::process::id())
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended");
    g.throughput(Throughput::Elements(1));

    let m = shmq::Mutex::<u64>::create(name("mutex").as_str(), 0).expect("create mutex");
    g.bench_function("shmq Mutex lock+unlock", |b| {
        b.iter(|| {
            *m.lock().map_err(|_| "owner died").expect("lock") += 1;
        })
    });
    let std_m = std::sync::Mutex::new(0u64);
    g.bench_function("std Mutex lock+unlock", |b| {
        b.iter(|| {
            *std_m.lock().expect("lock") += 1;
        })
    });

    let v = shmq::Value::<u64>::create(name("value").as_str(), 0).expect("create value");
    g.bench_function("shmq Value fetch_add", |b| {
        b.iter(|| black_box(v.fetch_add(1)))
    });
    g.bench_function("shmq Value load", |b| b.iter(|| black_box(v.load())));

    let s = shmq::Semaphore::create(name("sem").as_str(), 1).expect("create semaphore");
    g.bench_function("shmq Semaphore acquire+release", |b| {
        b.iter(|| {
            s.acquire().expect("acquire");
            s.release().expect("release");
        })
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended_2_threads");
    g.throughput(Throughput::Elements(1));
    let m = Arc::new(shmq::Mutex::<u64>::create(name("cmutex").as_str(), 0).expect("create mutex"));
    g.bench_function("shmq Mutex", |b| {
        b.iter_custom(|iters| {
            let m2 = Arc::clone(&m);
            let barrier = Arc::new(Barrier::new(2));
            let b2 = Arc::clone(&barrier);
            let t = std::thread::spawn(move || {
                b2.wait();
                for _ in 0..iters {
                    *m2.lock().map_err(|_| "owner died").expect("lock") += 1;
                }
            });
            barrier.wait();
            let start = Instant::now();
            for _ in 0..iters {
                *m.lock().map_err(|_| "owner died").expect("lock") += 1;
            }
            t.join().expect("join");
            start.elapsed()
        })
    });
    let sm = Arc::new(std::sync::Mutex::new(0u64));
    g.bench_function("std Mutex", |b| {
        b.iter_custom(|iters| {
            let m2 = Arc::clone(&sm);
            let barrier = Arc::new(Barrier::new(2));
            let b2 = Arc::clone(&barrier);
            let t = std::thread::spawn(move || {
                b2.wait();
                for _ in 0..iters {
                    *m2.lock().expect("lock") += 1;
                }
            });
            barrier.wait();
            let start = Instant::now();
            for _ in 0..iters {
                *sm.lock().expect("lock") += 1;
            }
            t.join().expect("join");
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = uncontended, contended
}
criterion_main!(benches);
