//! A persistent worker pool: threads start once per executable and are
//! woken per parallel kernel (spin, then poll while yielding, then park), so a
//! spawns nothing.
//!
//! Work is split into chunks claimed from an atomic counter, so the calling
//! thread never waits for a worker that is slow to wake: it claims every
//! chunk itself and then closes the job to workers that have not joined.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

type Job = *const (dyn Fn(usize, usize) + Sync);

const OPEN: u8 = 0;
const JOINED: u8 = 1;
const CLOSED: u8 = 2;
const FINISHED: u8 = 3;

struct Shared {
    epoch: AtomicUsize,
    quit: AtomicBool,
    job: std::sync::Mutex<Option<JobPtr>>,
    chunks: AtomicUsize,
    next: AtomicUsize,
    state: Vec<AtomicU8>,
    sleeping: Vec<AtomicBool>,
}

#[derive(Clone, Copy)]
struct JobPtr(Job);
// The pointee is `Sync` and outlives every use (`run` waits for joined workers).
unsafe impl Send for JobPtr {}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<(JoinHandle<()>, Thread)>,
}

/// How long an idle worker spins before it starts yielding.
const SPIN: Duration = Duration::from_micros(40);
/// How long an idle worker keeps polling (yielding the core between polls)
/// before parking. A training step runs single-threaded kernels of up to a
/// few hundred microseconds between parallel ones; a parked worker takes
/// longer than that to wake (W5: a 12 us loop took 230 us on two threads),
/// so it must still be polling when the next parallel kernel starts.
/// Yielding keeps the polling cheap for other processes on the core.
const PARK_AFTER: Duration = Duration::from_millis(2);

impl Pool {
    /// A pool running jobs on `threads` threads in total (the caller's
    /// thread included).
    pub fn new(threads: usize) -> Pool {
        let extra = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            quit: AtomicBool::new(false),
            job: std::sync::Mutex::new(None),
            chunks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            state: (0..extra).map(|_| AtomicU8::new(FINISHED)).collect(),
            sleeping: (0..extra).map(|_| AtomicBool::new(false)).collect(),
        });
        let workers = (0..extra)
            .map(|w| {
                let s = shared.clone();
                let h = thread::Builder::new().name(format!("kiln-cpu-{w}")).spawn(move || worker(s, w)).expect("spawning a pool thread");
                let t = h.thread().clone();
                (h, t)
            })
            .collect();
        Pool { shared, workers }
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(chunk, thread)` for every chunk in `0..chunks` on the pool's
    /// threads (the caller's is thread 0; each thread index is used by one
    /// thread at a time, so it can pick per-thread scratch) and returns when
    /// all are done.
    pub fn run(&self, chunks: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        if self.workers.is_empty() || chunks <= 1 {
            for c in 0..chunks {
                f(c, 0);
            }
            return;
        }
        let s = &*self.shared;
        // SAFETY: erase the lifetime; joined workers are waited for below.
        let ptr: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), &'static (dyn Fn(usize, usize) + Sync)>(f) };
        *s.job.lock().expect("pool lock") = Some(JobPtr(ptr));
        s.chunks.store(chunks, Ordering::SeqCst);
        s.next.store(0, Ordering::SeqCst);
        for st in &s.state {
            st.store(OPEN, Ordering::SeqCst);
        }
        s.epoch.fetch_add(1, Ordering::SeqCst);
        for (w, (_, t)) in self.workers.iter().enumerate() {
            if s.sleeping[w].load(Ordering::SeqCst) {
                t.unpark();
            }
        }
        loop {
            let c = s.next.fetch_add(1, Ordering::AcqRel);
            if c >= chunks {
                break;
            }
            f(c, 0);
        }
        for st in &s.state {
            if st.compare_exchange(OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire).is_err() {
                while st.load(Ordering::Acquire) != FINISHED {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

fn worker(s: Arc<Shared>, w: usize) {
    let mut seen = 0usize;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.quit.load(Ordering::Acquire) {
                return;
            }
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            spins += 1;
            let idle = if spins.is_multiple_of(64) { start.elapsed() } else { Duration::ZERO };
            if idle > PARK_AFTER {
                s.sleeping[w].store(true, Ordering::SeqCst);
                if s.epoch.load(Ordering::SeqCst) == seen && !s.quit.load(Ordering::SeqCst) {
                    thread::park();
                }
                s.sleeping[w].store(false, Ordering::SeqCst);
                spins = 0;
            } else if spins > 64 && start.elapsed() > SPIN {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if s.state[w].compare_exchange(OPEN, JOINED, Ordering::AcqRel, Ordering::Acquire).is_err() {
            continue;
        }
        let job = s.job.lock().expect("pool lock").expect("a job is set before the epoch moves");
        let chunks = s.chunks.load(Ordering::Acquire);
        loop {
            let c = s.next.fetch_add(1, Ordering::AcqRel);
            if c >= chunks {
                break;
            }
            // SAFETY: `run` keeps the closure alive until we are FINISHED.
            unsafe { (*job.0)(c, w + 1) };
        }
        s.state[w].store(FINISHED, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::SeqCst);
        for (h, t) in self.workers.drain(..) {
            t.unpark();
            let _ = h.join();
        }
    }
}

/// Raw pointers shared by the chunks of one parallel kernel.
#[derive(Clone, Copy)]
pub(crate) struct Sp<T>(pub(crate) *mut T);
unsafe impl<T> Send for Sp<T> {}
unsafe impl<T> Sync for Sp<T> {}
impl<T> Sp<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
