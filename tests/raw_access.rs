//! Issue 10, items 3 and 4: access without the lock across processes — `RawArray` (Python's
//! `RawArray` / `Array(lock=False)`) and the slice views of a raw `Segment` (Python's
//! `SharedMemory.buf`).

mod common;

use std::time::Duration;

use common::{assert_gone, role, spawn, unique, wait};
use shmq::{Array, ArrayError, Event, Lock, OpenError, OutOfBounds, RawArray, Segment};

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn raw_array_reads_and_writes_while_another_process_holds_the_lock() {
    let test = "raw_array_reads_and_writes_while_another_process_holds_the_lock";
    if let Some(arg) = role(test) {
        let (what, name) = arg.split_once(',').unwrap();
        match what {
            "holder" => {
                let done = Event::open(format!("{name}-done")).unwrap();
                let a = Array::<u64>::open(name).unwrap();
                let _g = a.lock().unwrap(); // never touches the elements
                Event::open(format!("{name}-held")).unwrap().set();
                assert!(done.wait_timeout(LIMIT).unwrap(), "never told to let go");
            }
            "writer" => {
                let raw = RawArray::<u64>::open(name).unwrap();
                raw.write_from(4, &[40, 50, 60, 70]).unwrap();
                raw.set(0, 1).unwrap();
                // Release: the writes above are visible to whoever waits.
                Event::open(format!("{name}-wrote")).unwrap().set();
            }
            _ => unreachable!(),
        }
        return;
    }
    let name = unique("raw-a");
    {
        let a = Array::<u64>::create(name.as_str(), &[0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
        let held = Event::create(format!("{name}-held")).unwrap();
        let done = Event::create(format!("{name}-done")).unwrap();
        let wrote = Event::create(format!("{name}-wrote")).unwrap();
        let mut holder = spawn(test, &format!("holder,{name}"));
        assert!(held.wait_timeout(LIMIT).unwrap(), "holder never locked");

        // The lock is held by a live process: the locked calls wait...
        assert_eq!(
            a.get_timeout(0, Duration::from_millis(20)),
            Err(ArrayError::Timeout(()))
        );
        // ...the unlocked ones do not.
        let raw = RawArray::<u64>::open(name.as_str()).unwrap();
        assert_eq!(raw.len(), 8);
        assert_eq!(raw.get(3), Some(3));
        raw.set(3, 30).unwrap();
        assert_eq!(raw.get(3), Some(30));
        let mut two = [0; 2];
        raw.read_into(2, &mut two).unwrap();
        assert_eq!(two, [2, 30]);
        assert_eq!(raw.to_vec(), [0, 1, 2, 30, 4, 5, 6, 7]);
        // Same bounds as the locked calls.
        assert_eq!(raw.get(8), None);
        assert_eq!(
            raw.set(8, 0),
            Err(OutOfBounds {
                start: 8,
                end: 9,
                len: 8
            })
        );
        assert!(raw.read_into(7, &mut two).is_err());
        assert_eq!(two, [2, 30], "a failed read wrote its output");
        assert!(raw.write_from(usize::MAX, &[1]).is_err());
        // And the same type check.
        assert!(matches!(
            RawArray::<u32>::open(name.as_str()),
            Err(OpenError::TypeMismatch { .. })
        ));

        done.set();
        assert!(wait(&mut holder, LIMIT).success(), "holder failed");
        let mut writer = spawn(test, &format!("writer,{name}"));
        assert!(wrote.wait_timeout(LIMIT).unwrap(), "writer never finished");
        assert!(wait(&mut writer, LIMIT).success(), "writer failed");
        // What one process wrote unlocked, another reads locked.
        assert_eq!(a.to_vec(), [1, 1, 2, 30, 40, 50, 60, 70]);
    }
    assert_gone(&name);
}

#[test]
fn raw_array_elements_of_up_to_a_word_are_never_torn() {
    // Element 1 of a `u32` array is 4 bytes at an offset that is not a multiple of 8; the
    // writer flips it between all-zeros and all-ones, locked and unlocked; every read, locked
    // or not, must see one of the two, never a mix of bytes.
    let test = "raw_array_elements_of_up_to_a_word_are_never_torn";
    const FLIPS: u32 = 200_000;
    if let Some(name) = role(test) {
        let raw = RawArray::<u32>::open(name.as_str()).unwrap();
        let locked = Array::<u32>::open(name.as_str()).unwrap();
        for i in 0..FLIPS {
            let v = if i % 2 == 0 { u32::MAX } else { 0 };
            if i % 4 < 2 {
                raw.set(1, v).unwrap();
            } else {
                locked.set(1, v).unwrap();
            }
        }
        raw.set(0, 1).unwrap(); // done
        return;
    }
    let name = unique("raw-tear");
    {
        let a = Array::<u32>::create(name.as_str(), &[0, 0, 0]).unwrap();
        let raw = RawArray::<u32>::open(name.as_str()).unwrap();
        let mut kid = spawn(test, &name);
        let mut reads = 0u64;
        while raw.get(0) == Some(0) {
            for v in [raw.get(1).unwrap(), a.get(1).unwrap()] {
                assert!(v == 0 || v == u32::MAX, "torn element: {v:#x}");
            }
            reads += 1;
            if kid.try_wait().unwrap().is_some() {
                break;
            }
        }
        assert!(wait(&mut kid, LIMIT).success(), "writer failed");
        assert_eq!(raw.get(0), Some(1), "writer did not finish");
        assert_eq!(raw.get(1), Some(0), "the last flip is to zero");
        eprintln!("{reads} rounds of reads while the writer flipped");
    }
    assert_gone(&name);
}

#[test]
fn segment_slices_see_what_another_process_wrote_under_a_lock() {
    let test = "segment_slices_see_what_another_process_wrote_under_a_lock";
    if let Some(name) = role(test) {
        let mut seg = Segment::open(name.as_str()).unwrap();
        let lock = Lock::open(format!("{name}-lock")).unwrap();
        {
            let _held = lock.lock().unwrap();
            // SAFETY: every process here touches `seg` only while holding `lock`.
            let bytes = unsafe { seg.as_mut_slice() };
            assert_eq!(&bytes[..6], b"parent");
            bytes[..5].copy_from_slice(b"child");
            bytes[100..].fill(0xab);
        }
        return;
    }
    let name = unique("raw-seg");
    {
        let mut seg = Segment::create(name.as_str(), 128).unwrap();
        let lock = Lock::create(format!("{name}-lock"), ()).unwrap();
        {
            let _held = lock.lock().unwrap();
            // SAFETY: as in the child; nothing else runs yet.
            let bytes = unsafe { seg.as_mut_slice() };
            assert_eq!(bytes.len(), 128);
            assert!(
                bytes.iter().all(|&b| b == 0),
                "a new segment is zero-filled"
            );
            bytes[..6].copy_from_slice(b"parent");
        }
        let mut kid = spawn(test, &name);
        assert!(wait(&mut kid, LIMIT).success(), "child failed");
        let _held = lock.lock().unwrap();
        // SAFETY: every process touches `seg` only while holding `lock`, which we hold.
        let bytes = unsafe { seg.as_slice() };
        assert_eq!(bytes.len(), seg.len());
        assert_eq!(&bytes[..6], b"childt");
        assert!(bytes[100..].iter().all(|&b| b == 0xab));
        assert!(bytes[6..100].iter().all(|&b| b == 0));
        // The safe copies agree.
        let mut copy = [0; 6];
        seg.read(0, &mut copy).unwrap();
        assert_eq!(&copy, b"childt");
    }
    assert_gone(&name);
}
