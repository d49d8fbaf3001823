//! A persistent worker pool: threads are started once per executable and
//! woken per parallel kernel (spin briefly, then park), so a training step
//! spawns nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    epoch: AtomicUsize,
    done: AtomicUsize,
    quit: AtomicBool,
    job: std::sync::Mutex<Option<JobPtr>>,
    sleeping: Vec<AtomicBool>,
}

#[derive(Clone, Copy)]
struct JobPtr(Job);
// The pointee is `Sync` and outlives every use (`run` waits for completion).
unsafe impl Send for JobPtr {}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<(JoinHandle<()>, Thread)>,
}

/// How long an idle worker spins before parking.
const SPIN: Duration = Duration::from_micros(60);

impl Pool {
    /// A pool running jobs on `threads` threads in total (the caller's
    /// thread included).
    pub fn new(threads: usize) -> Pool {
        let extra = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            quit: AtomicBool::new(false),
            job: std::sync::Mutex::new(None),
            sleeping: (0..extra).map(|_| AtomicBool::new(false)).collect(),
        });
        let workers = (0..extra)
            .map(|w| {
                let s = shared.clone();
                let h = thread::Builder::new()
                    .name(format!("kiln-cpu-{w}"))
                    .spawn(move || worker(s, w))
                    .expect("spawning a pool thread");
                let t = h.thread().clone();
                (h, t)
            })
            .collect();
        Pool { shared, workers }
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(part)` for every part in `0..threads()`, part 0 on the
    /// calling thread, and returns when all are done.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() {
            f(0);
            return;
        }
        // SAFETY: erase the lifetime; we wait below until no worker uses it.
        let ptr: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f) };
        *self.shared.job.lock().expect("pool lock") = Some(JobPtr(ptr));
        self.shared.done.store(0, Ordering::SeqCst);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        for (w, (_, t)) in self.workers.iter().enumerate() {
            if self.shared.sleeping[w].load(Ordering::SeqCst) {
                t.unpark();
            }
        }
        f(0);
        while self.shared.done.load(Ordering::Acquire) < self.workers.len() {
            std::hint::spin_loop();
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
            if spins % 64 == 0 && start.elapsed() > SPIN {
                s.sleeping[w].store(true, Ordering::SeqCst);
                if s.epoch.load(Ordering::SeqCst) == seen && !s.quit.load(Ordering::SeqCst) {
                    thread::park();
                }
                s.sleeping[w].store(false, Ordering::SeqCst);
            } else {
                std::hint::spin_loop();
            }
        }
        let job = s.job.lock().expect("pool lock").expect("a job is set before the epoch moves");
        // SAFETY: `run` keeps the closure alive until `done` counts us.
        unsafe { (*job.0)(w + 1) };
        s.done.fetch_add(1, Ordering::Release);
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
