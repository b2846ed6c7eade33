//! A fixed set of threads for upload work (writing, hashing, fsync), shared by every upload.
//! An upload holds no thread while it waits for its client: only data that has arrived becomes
//! a job, so ten thousand slow uploads cost no more threads than one fast one, and metadata
//! queries on tokio's blocking pool never wait behind them.
//!
//! Each upload's jobs run in order on a [`Strand`] (one for its writes, one for its hash), so a
//! single upload still writes and hashes at the same time on two threads.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

type Job = Box<dyn FnOnce() + Send>;

/// Body bytes every upload together may hold, from the moment a writer takes a chunk until it
/// is written and hashed. Without it each upload held up to its own 5 MiB, and 50 concurrent
/// 20 MiB uploads peaked at 184 MiB of RSS (../shared/bench/concurrent-uploads.sh); one upload
/// needs about 5 MiB to keep the disk and the hash busy, so 8 MiB costs a lone upload nothing.
pub const HELD_BYTES: usize = 8 << 20;

pub struct Pool {
    tx: mpsc::Sender<Job>,
    /// [`HELD_BYTES`], one permit per byte.
    held: Arc<Semaphore>,
    held_max: usize,
}

impl Pool {
    /// `threads` workers, named `sfx-io`.
    pub fn new(threads: usize) -> std::io::Result<Arc<Pool>> {
        Pool::with_budget(threads, HELD_BYTES)
    }

    /// The same with a budget of `held` bytes instead of [`HELD_BYTES`].
    pub fn with_budget(threads: usize, held: usize) -> std::io::Result<Arc<Pool>> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name("sfx-io".into())
                .spawn(move || {
                    loop {
                        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match next {
                            Ok(job) => job(),
                            // The pool was dropped.
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Arc::new(Pool {
            tx,
            held: Arc::new(Semaphore::new(held)),
            held_max: held,
        }))
    }

    /// The budget shared by every upload's writer, and its size.
    pub fn held(&self) -> (&Arc<Semaphore>, usize) {
        (&self.held, self.held_max)
    }

    /// Enough threads to hash and write on every core, and to keep the disk busy meanwhile.
    pub fn default_size() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get()) * 2 + 2
    }

    fn spawn(&self, job: Job) {
        // Only fails when every worker is gone (the pool is being dropped): nothing to run then.
        let _ = self.tx.send(job);
    }
}

/// Jobs that must run one after another, in the order they were pushed, on the pool.
pub struct Strand {
    inner: Arc<StrandInner>,
}

struct StrandInner {
    pool: Arc<Pool>,
    queue: Mutex<(VecDeque<Job>, bool)>,
}

impl Strand {
    pub fn new(pool: &Arc<Pool>) -> Strand {
        Strand {
            inner: Arc::new(StrandInner {
                pool: Arc::clone(pool),
                queue: Mutex::new((VecDeque::new(), false)),
            }),
        }
    }

    pub fn push(&self, job: impl FnOnce() + Send + 'static) {
        let mut q = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.0.push_back(Box::new(job));
        if !q.1 {
            q.1 = true;
            let inner = Arc::clone(&self.inner);
            self.inner.pool.spawn(Box::new(move || drain(&inner)));
        }
    }
}

/// Runs the strand's jobs until its queue is empty; one drain at a time per strand.
fn drain(inner: &StrandInner) {
    loop {
        let job = {
            let mut q = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            match q.0.pop_front() {
                Some(job) => job,
                None => {
                    q.1 = false;
                    return;
                }
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strands_keep_order_and_run_concurrently() {
        let pool = Pool::new(3).unwrap();
        let (a, b) = (Strand::new(&pool), Strand::new(&pool));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = mpsc::channel();
        for i in 0..100 {
            let seen = Arc::clone(&seen);
            a.push(move || seen.lock().unwrap().push(i));
        }
        // b runs while a is blocked: strands do not wait for each other.
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        a.push(move || gate_rx.recv().unwrap());
        let d = done_tx.clone();
        b.push(move || d.send("b").unwrap());
        assert_eq!(done_rx.recv().unwrap(), "b");
        gate_tx.send(()).unwrap();
        a.push(move || done_tx.send("a").unwrap());
        assert_eq!(done_rx.recv().unwrap(), "a");
        assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
    }
}
