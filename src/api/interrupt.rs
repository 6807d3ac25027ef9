//! Interrupting blocked calls: [`Interrupter`], [`interrupt_on_signals`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use crate::sys::interrupt;

/// Ends blocked shmq calls from another thread (or a signal handler): the blocked call
/// returns its `Interrupted` error at once.
///
/// There are two kinds:
/// - [`Interrupter::process`]: the one every blocking call of every thread in the process
///   watches, always. [`interrupt_on_signals`] makes SIGINT and SIGTERM fire it.
/// - [`Interrupter::new`]: one of your own, watched by the threads that call
///   [`Interrupter::watch`] — for stopping some workers and not others.
///
/// Firing is *sticky*: once [`interrupt`](Interrupter::interrupt)ed, every blocking call
/// that watches it returns `Interrupted` (without blocking) until
/// [`reset`](Interrupter::reset). Calls that do not block (`try_` forms) are never
/// interrupted. Every blocking call of every shmq type watches: `recv`/`send`/`reserve` on
/// rings and pipes, `get`/`put`/`loan`/`join` on queues, `lock`, `acquire`, `wait`, `open`
/// (while it waits for a creator), and their `_timeout`/`_deadline` forms.
///
/// A blocked call sleeps on its object's futex and on the interrupt words in one
/// `futex_waitv` (Linux 5.16 and later), so it wakes as soon as the interrupter fires. On
/// older kernels it sleeps in 10 ms slices and notices within a slice.
///
/// ```
/// use std::time::Duration;
/// use shmq::{GetError, Interrupter, Queue};
///
/// let name = format!("doc-interrupt-{}", std::process::id());
/// let q = Queue::<u64>::create(name.as_str(), 4)?;
/// let stop = Interrupter::new();
/// let worker = {
///     let stop = stop.clone();
///     let name = name.clone();
///     std::thread::spawn(move || {
///         let _watching = stop.watch(); // this thread's blocking calls watch `stop`
///         let q = Queue::<u64>::open(name.as_str()).unwrap();
///         q.get_timeout(Duration::from_secs(60)) // returns when `stop` fires
///     })
/// };
/// std::thread::sleep(Duration::from_millis(20));
/// stop.interrupt();
/// assert_eq!(worker.join().unwrap(), Err(GetError::Interrupted));
/// # drop(q);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Interrupter {
    word: Word,
}

#[derive(Clone)]
enum Word {
    Process,
    Own(Arc<AtomicU32>),
}

impl Interrupter {
    /// A new interrupter, not fired, watched by no thread yet.
    pub fn new() -> Interrupter {
        Interrupter {
            word: Word::Own(Arc::new(AtomicU32::new(0))),
        }
    }

    /// The process-wide interrupter: every blocking call in this process watches it.
    pub fn process() -> Interrupter {
        interrupt::ARMED.store(true, std::sync::atomic::Ordering::SeqCst);
        Interrupter {
            word: Word::Process,
        }
    }

    fn word(&self) -> &AtomicU32 {
        match &self.word {
            Word::Process => &interrupt::PROCESS,
            Word::Own(w) => w,
        }
    }

    /// Fires: every blocking call watching this interrupter returns `Interrupted` now, and
    /// every later one at once, until [`reset`](Interrupter::reset).
    pub fn interrupt(&self) {
        interrupt::fire(self.word());
    }

    /// Un-fires: blocking calls block again.
    pub fn reset(&self) {
        interrupt::reset(self.word());
    }

    /// Whether it has fired (and not been reset).
    pub fn is_interrupted(&self) -> bool {
        interrupt::is_set(self.word())
    }

    /// Makes the current thread's blocking calls watch this interrupter (besides the
    /// process-wide one) until the returned guard is dropped; the thread's previous watch,
    /// if any, is restored then. Watching [`Interrupter::process`] this way changes nothing.
    pub fn watch(&self) -> Watching {
        let previous = match &self.word {
            Word::Own(w) => interrupt::set_watched(Some(Arc::clone(w))),
            Word::Process => interrupt::watched(),
        };
        Watching {
            previous,
            _not_send: PhantomData,
        }
    }
}

impl Default for Interrupter {
    fn default() -> Interrupter {
        Interrupter::new()
    }
}

impl fmt::Debug for Interrupter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interrupter")
            .field("process", &matches!(self.word, Word::Process))
            .field("interrupted", &self.is_interrupted())
            .finish()
    }
}

/// The current thread watches an [`Interrupter`] while this guard lives
/// ([`Interrupter::watch`]). It belongs to the thread that made it.
#[must_use = "the thread stops watching when the guard is dropped"]
pub struct Watching {
    previous: Option<Arc<AtomicU32>>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        interrupt::set_watched(self.previous.take());
    }
}

impl fmt::Debug for Watching {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watching").finish_non_exhaustive()
    }
}

/// Makes SIGINT and SIGTERM fire [`Interrupter::process`] instead of ending the process:
/// every blocked shmq call returns `Interrupted`, and the program decides how to stop (the
/// `shmq` command removes its ring and exits with 130). Opt-in, for programs that want to
/// clean up on Ctrl-C; it replaces any handler installed for those signals before. The
/// handlers do not use `SA_RESTART`, so blocking system calls elsewhere see `EINTR`.
///
/// # Errors
/// The OS error from `sigaction`.
pub fn interrupt_on_signals() -> std::io::Result<()> {
    interrupt::fire_on_signals(&[libc::SIGINT, libc::SIGTERM])
}
