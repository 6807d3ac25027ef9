//! Regression tests for defects found in review of the foundation (issue 2): each test names
//! the failure it guards against.

mod common;

use std::time::{Duration, Instant};

use common::{assert_gone, unique};
use shmq::{Array, Event, Lock, Mutex, Options, Segment, Semaphore, Value};

#[derive(shmq::Pod, Clone, Copy, Debug, PartialEq)]
#[repr(C, align(512))]
struct Aligned512 {
    bytes: [u8; 512],
}

#[derive(shmq::Pod, Clone, Copy, Debug, PartialEq)]
#[repr(C, align(128))]
struct Aligned128 {
    words: [u64; 16],
}

#[test]
fn guards_of_over_aligned_types_are_aligned() {
    let name = unique("align");
    {
        let m = Mutex::create(format!("{name}-m"), Aligned512 { bytes: [7; 512] }).unwrap();
        let g = m.lock().unwrap();
        assert_eq!(&*g as *const Aligned512 as usize % 512, 0);
        assert_eq!(g.bytes[511], 7);
        drop(g);
        let opened = Mutex::<Aligned512>::open(format!("{name}-m")).unwrap();
        assert_eq!(opened.lock().unwrap().bytes[0], 7);
        let a = Array::create(format!("{name}-a"), &[Aligned128 { words: [1; 16] }; 3]).unwrap();
        let all = a.lock().unwrap();
        assert_eq!(all.as_ptr() as usize % 128, 0);
        assert_eq!(all[2].words[15], 1);
    }
    assert_gone(&name);
}

#[test]
fn panicking_update_does_not_leave_the_value_locked() {
    let name = unique("panic");
    {
        let v = Value::create(name.as_str(), [1u64; 4]).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            v.update(|_| panic!("closure fails"));
        }));
        assert!(r.is_err());
        // Would block forever if the writer lock had stayed held.
        v.store([2; 4]);
        assert_eq!(v.load(), [2; 4]);
    }
    assert_gone(&name);
}

#[test]
fn fifo_planted_in_dev_shm_does_not_block_open_or_inspect() {
    let name = unique("fifo");
    let path = format!("/dev/shm/{name}");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    assert!(Segment::inspect(name.as_str()).is_err());
    assert!(Value::<u32>::open(name.as_str()).is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "open blocked on a FIFO"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn duration_max_timeouts_mean_forever_not_overflow() {
    let name = unique("max");
    {
        let l = Lock::create(format!("{name}-l"), ()).unwrap();
        assert!(l.lock_timeout(Duration::MAX).is_ok());
        let e = Event::create(format!("{name}-e")).unwrap();
        e.set();
        assert!(e.wait_timeout(Duration::MAX).unwrap());
        let s = Semaphore::create(format!("{name}-s"), 1).unwrap();
        assert!(s.acquire_timeout(Duration::MAX).unwrap());
        let opened =
            Event::open(Options::new(format!("{name}-e")).open_timeout(Duration::MAX)).unwrap();
        assert!(opened.is_set());
        let a = Array::<u8>::create_zeroed(format!("{name}-a"), 1).unwrap();
        assert!(a.lock_timeout(Duration::MAX).is_ok());
    }
    assert_gone(&name);
}
