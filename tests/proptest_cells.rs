//! Property tests: `Value` and `Array` give back exactly what was put in, for arbitrary data
//! and operation sequences, checked against a plain in-memory model.

mod common;

use proptest::prelude::*;
use shmq::{Array, Value};

#[derive(Debug, Clone)]
enum Op {
    Set(usize, u32),
    Write(usize, Vec<u32>),
    Read(usize, usize),
    Reverse,
}

fn op(len: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..len + 2, any::<u32>()).prop_map(|(i, v)| Op::Set(i, v)),
        (0..len + 2, prop::collection::vec(any::<u32>(), 0..8)).prop_map(|(i, v)| Op::Write(i, v)),
        (0..len + 2, 0..8usize).prop_map(|(i, n)| Op::Read(i, n)),
        Just(Op::Reverse),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn array_matches_a_vec(init in prop::collection::vec(any::<u32>(), 0..24), ops in prop::collection::vec(op(24), 0..40)) {
        let name = common::unique("prop-array");
        let a = Array::<u32>::create(name.as_str(), &init).unwrap();
        let b = Array::<u32>::open(name.as_str()).unwrap();
        let mut model = init.clone();
        for op in ops {
            match op {
                Op::Set(i, v) => {
                    let r = a.set(i, v);
                    prop_assert_eq!(r.is_ok(), i < model.len());
                    if i < model.len() { model[i] = v; }
                }
                Op::Write(i, vs) => {
                    let fits = i + vs.len() <= model.len();
                    prop_assert_eq!(b.write_from(i, &vs).is_ok(), fits);
                    if fits { model[i..i + vs.len()].copy_from_slice(&vs); }
                }
                Op::Read(i, n) => {
                    let mut out = vec![0; n];
                    let fits = i + n <= model.len();
                    prop_assert_eq!(a.read_into(i, &mut out).is_ok(), fits);
                    if fits { prop_assert_eq!(&out[..], &model[i..i + n]); }
                    prop_assert_eq!(b.get(i), model.get(i).copied());
                }
                Op::Reverse => {
                    b.lock().map_err(|e| TestCaseError::fail(e.to_string()))?.reverse();
                    model.reverse();
                }
            }
        }
        prop_assert_eq!(a.to_vec(), model);
        drop((a, b));
        prop_assert!(common::leftovers(&name).is_empty());
    }

    #[test]
    fn value_round_trips(words in prop::array::uniform32(any::<u64>()), small in any::<i16>(), f in any::<f64>()) {
        let name = common::unique("prop-value");
        let big = Value::<[u64; 32]>::create(format!("{name}-big"), [0; 32]).unwrap();
        big.store(words);
        prop_assert_eq!(Value::<[u64; 32]>::open(format!("{name}-big")).unwrap().load(), words);
        let s = Value::<i16>::create(format!("{name}-small"), small).unwrap();
        prop_assert_eq!(s.fetch_add(1), small);
        prop_assert_eq!(s.load(), small.wrapping_add(1));
        let fv = Value::<f64>::create(format!("{name}-f"), f).unwrap();
        prop_assert_eq!(fv.load().to_bits(), f.to_bits());
        drop((big, s, fv));
        prop_assert!(common::leftovers(&name).is_empty());
    }
}
