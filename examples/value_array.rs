//! Seed scenario "共享内存的使用及其类型" (基本类型 and 数组类型): a shared
//! [`Value<i32>`](shmq::Value) that one child process sets to 1 and another prints, then a
//! shared [`Array<i32>`](shmq::Array) made from `0..10` whose first element one child sets to
//! 1 and which another child prints whole.
//!
//! ```text
//! cargo run --example value_array
//! # 1
//! # [1, 1, 2, 3, 4, 5, 6, 7, 8, 9]
//! ```
//!
//! The parent creates both objects (named after its pid) and re-executes itself as
//! `child-value-sender NAME`, `child-value-receiver NAME`, and so on. Unlike the seed, which
//! starts both processes at once (so the receiver may print the old value), the parent waits
//! for each sender before starting its receiver, so the output is always the one above.

use std::error::Error;
use std::process::Command;

use shmq::{Array, Value};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] => child(role, name),
        [] => parent(),
        _ => Err("usage: value_array (no arguments)".into()),
    }
}

/// The seed's `sender` and `receiver` functions, for the value and for the array.
fn child(role: &str, name: &str) -> Result<(), Box<dyn Error>> {
    match role {
        "child-value-sender" => Value::<i32>::open(name)?.store(1),
        "child-value-receiver" => println!("{}", Value::<i32>::open(name)?.load()),
        "child-array-sender" => Array::<i32>::open(name)?.set(0, 1)?,
        "child-array-receiver" => println!("{:?}", Array::<i32>::open(name)?.to_vec()),
        _ => return Err(format!("unknown role {role:?}").into()),
    }
    Ok(())
}

fn parent() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();

    // 基本类型: multiprocessing.Value('i', 0)
    let value_name = format!("shmq-ex-value-{pid}");
    let _value = Value::<i32>::create(value_name.as_str(), 0)?;
    run_child("child-value-sender", &value_name)?;
    run_child("child-value-receiver", &value_name)?;

    // 数组类型: multiprocessing.Array('i', range(10))
    let array_name = format!("shmq-ex-array-{pid}");
    let init: Vec<i32> = (0..10).collect();
    let _array = Array::<i32>::create(array_name.as_str(), &init)?;
    run_child("child-array-sender", &array_name)?;
    run_child("child-array-receiver", &array_name)?;
    Ok(())
    // `_array` and `_value` drop here, removing both names from /dev/shm.
}

/// Runs this program as `ROLE NAME` and waits for it to succeed.
fn run_child(role: &str, name: &str) -> Result<(), Box<dyn Error>> {
    let status = Command::new(std::env::current_exe()?)
        .args([role, name])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{role} failed: {status}").into())
    }
}
