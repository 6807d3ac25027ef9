//! L0: the only code that talks to the operating system.
//!
//! Named segments ([`shm`]), futex wait/wake on shared words ([`futex`]), process liveness
//! ([`process`]), directory change notification ([`watch`]) and eventfds ([`eventfd`]).
//! Everything above this layer is written against these safe functions, and errno values are
//! mapped to error variants here and nowhere else.

#[cfg(not(target_os = "linux"))]
compile_error!("shmq supports Linux only: it relies on /dev/shm, futex(2) and /proc");

pub(crate) mod clock;
pub(crate) mod eventfd;
pub(crate) mod fence;
pub(crate) mod futex;
pub(crate) mod interrupt;
pub(crate) mod process;
pub(crate) mod shm;
pub(crate) mod watch;
