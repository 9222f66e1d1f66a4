//! The shared writer: a small pool of threads serving every open journal in the process, and
//! one timer thread for interval fsyncs. A journal is queued when it has work (a record
//! appended to an empty buffer, a writer waiting for an fsync, a close, an interval fsync
//! falling due) and served by one worker at a time, so its records keep their order; an
//! idle journal costs no thread and no CPU (workers and the timer sleep on condition
//! variables, never polling).
//!
//! A slow or failing disk must not hold up the journals on other disks: at most half the
//! workers serve the journals of one device (file system) at a time, and the others wait
//! in that device's backlog, so the rest of the workers are always free for other devices.
//! Fsyncs of different journals on one device run side by side on its workers, which lets
//! the file system fold them into shared commits (ext4 and XFS group concurrent fsyncs);
//! Strata never calls `syncfs`, which would also flush files that are not its own.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// Something the pool serves: one pass over its work, then when it wants another.
pub(super) trait Service: Send + Sync + 'static {
    /// The journal's scheduling state (see [`Slot`]).
    fn slot(&self) -> &Slot;
    /// The device (file system) its files are on.
    fn device(&self) -> u64;
    /// Does what is due; returns when the next pass is due without new work (an interval
    /// fsync), if ever.
    fn pass(self: Arc<Self>) -> Option<Instant>;
}

const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;
/// Running, and more work arrived meanwhile: queue again after the pass.
const AGAIN: u8 = 3;

/// Per-journal scheduling state: at most one queue entry and one pass at a time.
#[derive(Default)]
pub(super) struct Slot {
    state: AtomicU8,
    /// A timer is set for an interval fsync / for a delayed write of new records.
    fsync_armed: std::sync::atomic::AtomicBool,
    write_armed: std::sync::atomic::AtomicBool,
}

/// What a timer is for (each journal has at most one of each set).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    Fsync,
    Write,
}

impl Slot {
    fn armed(&self, due: Due) -> &std::sync::atomic::AtomicBool {
        match due {
            Due::Fsync => &self.fsync_armed,
            Due::Write => &self.write_armed,
        }
    }
}

struct Timer {
    at: Instant,
    seq: u64,
    due: Due,
    job: Weak<dyn Service>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Jobs to run, and the devices being served.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Arc<dyn Service>>,
    /// Passes running on each device.
    busy: HashMap<u64, usize>,
    /// Jobs of a device whose workers are all taken, in arrival order.
    backlog: HashMap<u64, VecDeque<Arc<dyn Service>>>,
}

impl Queue {
    /// The next job whose device has a worker free (others go to their backlog).
    fn next(&mut self) -> Option<Arc<dyn Service>> {
        while let Some(job) = self.jobs.pop_front() {
            let device = job.device();
            let busy = self.busy.entry(device).or_insert(0);
            if *busy < per_device() {
                *busy += 1;
                return Some(job);
            }
            self.backlog.entry(device).or_default().push_back(job);
        }
        None
    }

    /// A pass on `device` ended: its next waiting job, if any, is queued first.
    fn done(&mut self, device: u64) -> bool {
        if let Some(busy) = self.busy.get_mut(&device) {
            *busy -= 1;
            if *busy == 0 {
                self.busy.remove(&device);
            }
        }
        let Some(waiting) = self.backlog.get_mut(&device) else {
            return false;
        };
        let next = waiting.pop_front();
        if waiting.is_empty() {
            self.backlog.remove(&device);
        }
        match next {
            Some(job) => {
                self.jobs.push_front(job);
                true
            }
            None => false,
        }
    }
}

struct Pool {
    queue: Mutex<Queue>,
    ready: Condvar,
    timers: Mutex<(BinaryHeap<Reverse<Timer>>, u64)>,
    tick: Condvar,
}

/// Worker threads: enough that a few slow disks do not hold up the rest, few enough to stay
/// a small, fixed cost (4 to 8, by the machine's cores).
pub fn workers() -> usize {
    thread::available_parallelism().map_or(4, |n| n.get().clamp(4, 8))
}

/// Workers that may serve the journals of one device at once: half of them.
fn per_device() -> usize {
    (workers() / 2).max(1)
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            timers: Mutex::new((BinaryHeap::new(), 0)),
            tick: Condvar::new(),
        }));
        for i in 0..workers() {
            let _ = thread::Builder::new()
                .name(format!("strata-writer-{i}"))
                .spawn(move || work(pool));
        }
        let _ = thread::Builder::new()
            .name("strata-timer".into())
            .spawn(move || time(pool));
        pool
    })
}

/// Asks for a pass of `job`: queues it unless it is queued already, or marks a running pass
/// to go again.
pub(super) fn schedule(job: Arc<dyn Service>) {
    let slot = job.slot();
    let mut state = slot.state.load(Ordering::Acquire);
    loop {
        let (to, enqueue) = match state {
            IDLE => (QUEUED, true),
            RUNNING => (AGAIN, false),
            _ => return, // queued, or already due to run again
        };
        match slot
            .state
            .compare_exchange(state, to, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                if enqueue {
                    let p = pool();
                    p.queue.lock().jobs.push_back(job);
                    p.ready.notify_one();
                }
                return;
            }
            Err(now) => state = now,
        }
    }
}

/// How long a worker that just served a journal looks for more work before it sleeps:
/// writers that append again within it find it awake, and do not pay for waking it.
const LINGER: std::time::Duration = std::time::Duration::from_micros(200);

fn work(pool: &'static Pool) {
    let mut busy_until: Option<Instant> = None;
    loop {
        let job = loop {
            if let Some(job) = pool.queue.lock().next() {
                break job;
            }
            match busy_until {
                Some(until) if Instant::now() < until => thread::yield_now(),
                _ => {
                    let mut queue = pool.queue.lock();
                    let job = loop {
                        if let Some(job) = queue.next() {
                            break job;
                        }
                        pool.ready.wait(&mut queue);
                    };
                    break job;
                }
            }
        };
        busy_until = Some(Instant::now() + LINGER);
        let device = job.device();
        job.slot().state.store(RUNNING, Ordering::Release);
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.clone().pass()))
            .unwrap_or(None);
        if let Some(at) = next {
            arm(&job, at, Due::Fsync);
        }
        let slot = job.slot();
        let again = slot
            .state
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_err();
        let mut queue = pool.queue.lock();
        let mut woken = queue.done(device);
        if again {
            // More work arrived during the pass.
            slot.state.store(QUEUED, Ordering::Release);
            queue.jobs.push_back(job);
            woken = true;
        }
        drop(queue);
        if woken {
            pool.ready.notify_one();
        }
    }
}

/// Schedules a pass of `job` at `at`, for `due` (at most one timer of each kind is set for
/// a journal at a time).
pub(super) fn arm(job: &Arc<dyn Service>, at: Instant, due: Due) {
    if job.slot().armed(due).swap(true, Ordering::AcqRel) {
        return;
    }
    let p = pool();
    let mut timers = p.timers.lock();
    timers.1 += 1;
    let seq = timers.1;
    let earliest = timers.0.peek().is_none_or(|Reverse(t)| at < t.at);
    timers.0.push(Reverse(Timer {
        at,
        seq,
        due,
        job: Arc::downgrade(job),
    }));
    if earliest {
        p.tick.notify_one();
    }
}

fn time(pool: &'static Pool) {
    let mut timers = pool.timers.lock();
    loop {
        let now = Instant::now();
        match timers.0.peek() {
            None => {
                pool.tick.wait(&mut timers);
            }
            Some(Reverse(t)) if t.at > now => {
                let at = t.at;
                pool.tick.wait_until(&mut timers, at);
            }
            Some(_) => {
                if let Some(Reverse(t)) = timers.0.pop() {
                    if let Some(job) = t.job.upgrade() {
                        job.slot().armed(t.due).store(false, Ordering::Release);
                        drop(timers);
                        schedule(job);
                        timers = pool.timers.lock();
                    }
                }
            }
        }
    }
}
