//! A real segment of each kind, overwritten word by word with fuzzer-chosen values, then
//! surveyed: `Survey::of` must return `Ok` or `Err`, never panic, hang or read outside the
//! segment, and what it reports must respect the limits it was given.
#![no_main]

use std::cell::RefCell;
use std::os::unix::fs::FileExt;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shmq::Survey;

#[derive(Debug, Arbitrary)]
struct Input {
    kind: u8,
    /// `(offset / 8, value)`: words written over the segment before the survey.
    writes: Vec<(u16, u64)>,
    peek: u8,
    bytes: u16,
}

struct Target {
    name: String,
    pristine: Vec<u8>,
    file: std::fs::File,
}

/// Makes one segment of every kind (named per fuzzing process), keeps the handles for as
/// long as the fuzzer runs, and remembers each file's pristine bytes.
fn targets() -> Vec<Target> {
    let id = std::process::id();
    let n = |k: &str| format!("shmq-fuzz-survey-{id}-{k}");
    let mut names = Vec::new();
    let mut keep = |name: String, handle: Box<dyn std::any::Any + Send>| {
        // Kept in a static, so LeakSanitizer sees them reachable at exit.
        HANDLES.lock().unwrap().push(handle);
        names.push(name);
    };
    let seg = shmq::Segment::create(n("raw").as_str(), 64).unwrap();
    seg.write(0, b"raw").unwrap();
    keep(n("raw"), Box::new(seg));
    keep(
        n("value"),
        Box::new(shmq::Value::<u64>::create(n("value").as_str(), 7).unwrap()),
    );
    keep(
        n("array"),
        Box::new(shmq::Array::<u32>::create(n("array").as_str(), &[1; 8]).unwrap()),
    );
    keep(
        n("mutex"),
        Box::new(shmq::Mutex::create(n("mutex").as_str(), 1u64).unwrap()),
    );
    keep(
        n("sem"),
        Box::new(shmq::Semaphore::create(n("sem").as_str(), 2).unwrap()),
    );
    keep(
        n("event"),
        Box::new(shmq::Event::create(n("event").as_str()).unwrap()),
    );
    let ring = shmq::Ring::create(n("ring").as_str(), 256).unwrap();
    let mut tx = ring.producer().unwrap();
    for i in 0..6u8 {
        tx.send(&vec![i; usize::from(i) * 5]).unwrap();
    }
    keep(n("ring"), Box::new((tx, ring)));
    keep(
        n("pipe"),
        Box::new(shmq::Pipe::create(n("pipe").as_str(), 256).unwrap()),
    );
    let q = shmq::Queue::<u32>::create(n("queue").as_str(), 4).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    keep(n("queue"), Box::new(q));
    let jq = shmq::JoinableQueue::<u32>::create(n("jqueue").as_str(), 4).unwrap();
    jq.put(3).unwrap();
    keep(n("jqueue"), Box::new(jq));
    let bq = shmq::ByteQueue::create(n("bqueue").as_str(), 4, 32).unwrap();
    bq.put(b"hello").unwrap();
    keep(n("bqueue"), Box::new(bq));
    let pq = shmq::PriorityQueue::<u64>::create(n("pqueue").as_str(), 4).unwrap();
    pq.put(9).unwrap();
    pq.put(4).unwrap();
    keep(n("pqueue"), Box::new(pq));
    NAMES.lock().unwrap().extend(names.iter().cloned());
    // SAFETY: `unlink_all` is a plain `extern "C" fn` that takes no arguments; atexit only
    // records it, and it runs at exit, after fuzzing stopped.
    unsafe { libc::atexit(unlink_all) };
    names
        .into_iter()
        .map(|name| {
            let path = format!("/dev/shm/{name}");
            Target {
                pristine: std::fs::read(&path).unwrap(),
                file: std::fs::OpenOptions::new().write(true).open(&path).unwrap(),
                name,
            }
        })
        .collect()
}

/// The handles of the segments under test.
static HANDLES: std::sync::Mutex<Vec<Box<dyn std::any::Any + Send>>> =
    std::sync::Mutex::new(Vec::new());

/// The segments to remove when the fuzzer exits (it exits without dropping the handles).
static NAMES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

extern "C" fn unlink_all() {
    if let Ok(names) = NAMES.lock() {
        for n in names.iter() {
            let _ = shmq::Segment::unlink(n.as_str());
        }
    }
}

thread_local! {
    static TARGETS: RefCell<Option<Vec<Target>>> = const { RefCell::new(None) };
}

fuzz_target!(|input: Input| {
    TARGETS.with(|t| {
        let mut t = t.borrow_mut();
        let all = t.get_or_insert_with(targets);
        let target = &all[usize::from(input.kind) % all.len()];
        target.file.write_all_at(&target.pristine, 0).unwrap();
        let words = target.pristine.len() / 8;
        for &(at, value) in input.writes.iter().take(64) {
            let at = (usize::from(at) % words) * 8;
            target
                .file
                .write_all_at(&value.to_ne_bytes(), at as u64)
                .unwrap();
        }
        let (peek, bytes) = (usize::from(input.peek % 32), usize::from(input.bytes));
        if let Ok(s) = Survey::of(target.name.as_str(), peek, bytes) {
            // A pipe peeks both of its rings; everything else shows at most `peek` messages
            // (or one stretch of data).
            assert!(
                s.contents.len() <= peek.max(1) * 2,
                "{} contents",
                s.contents.len()
            );
            for m in &s.contents {
                assert!(
                    m.bytes.len() <= m.len.min(bytes),
                    "{} of {}",
                    m.bytes.len(),
                    m.len
                );
            }
            assert!(s.info.total_size as usize == target.pristine.len());
        }
    });
});
