//! Where a model's host work runs, and how the kernels' threads wait between kernels.
//!
//! The CPU kernels split their work with rayon. Called from a thread outside rayon's pool (a
//! program's main thread), every parallel loop hands its work to the pool, wakes a worker and
//! puts the caller to sleep until the workers are done; and between two kernels (while burn's
//! own operations run on the caller) the workers fall asleep after a few microseconds of
//! looking for work. A training step makes a few hundred kernel calls, and on a VM each wake-up
//! of an idle CPU costs tens of microseconds, about what a kernel on a small map computes in.
//! [`on_kernel_threads`] runs the caller's work on a worker, so that a kernel's loop starts on
//! the caller at once, and keeps the other workers looking for work until that work is done, as
//! an OpenMP runtime's spinning threads serve PyTorch's kernels. Measured on MobileNetV2-RNNPool
//! at batch 2, 160x160, 2 threads: 56-70 ms a step from the main thread; 40-45 ms on a worker
//! (258 context switches a step), 34-39 ms with the other worker waiting (31).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use burn::prelude::Device;

/// Idle rounds of a waiting worker between two offers of its CPU to other threads (the
/// training's data loaders), so that a wait costs them little.
const ROUNDS_PER_YIELD: u32 = 16;

/// How long one waiting job looks for work before it hands over to the next one.
const WAIT_SLICE: Duration = Duration::from_micros(20);

/// Runs `f` on worker 0 of rayon's global pool, the other workers waiting for its kernels' work
/// without sleeping, when the CPU kernels run on `device` (and the caller is not on a worker
/// already); else here. Always the same worker: burn keeps BatchNorm's running statistics per
/// thread (`RunningState`) and averages the threads' values, so a model whose steps ran on
/// changing threads would train differently from run to run. `f` must not wait for other
/// threads that use the global pool: with one worker thread nothing would run them.
pub fn on_kernel_threads<R: Send>(device: &Device, f: impl FnOnce() -> R + Send) -> R {
    if !crate::runs_on(device) || rayon::current_thread_index().is_some() {
        return f();
    }
    let done = Arc::new(AtomicBool::new(false));
    let f = Mutex::new(Some(f));
    let results = rayon::broadcast(|ctx| {
        if ctx.index() != 0 {
            wait_for_work(Arc::clone(&done));
            return None;
        }
        // Set when `f` returns or panics, so that the waiting jobs end either way.
        let _done = Done(&done);
        let f = f.lock().unwrap_or_else(PoisonError::into_inner).take()?;
        Some(f())
    });
    results.into_iter().flatten().next().expect("worker 0 runs every broadcast")
}

/// Sets its flag when dropped.
struct Done<'a>(&'a AtomicBool);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs the pool's jobs as they come for a [`WAIT_SLICE`], then queues a job to go on until
/// `done`. A waiting job can start on a thread that is itself waiting inside `f` (rayon runs
/// other jobs while it waits), where looping until `done` would never end; a slice holds that
/// thread up by 20 us at most.
fn wait_for_work(done: Arc<AtomicBool>) {
    let start = Instant::now();
    let mut idle = 0u32;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle = 0;
            continue;
        }
        idle = idle.wrapping_add(1);
        if idle.is_multiple_of(ROUNDS_PER_YIELD) {
            if start.elapsed() >= WAIT_SLICE {
                rayon::spawn(move || wait_for_work(done));
                return;
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn runs_on_one_worker_every_time_and_nests() {
        let device = Device::flex();
        for _ in 0..50 {
            let index = on_kernel_threads(&device, || {
                let outer = rayon::current_thread_index();
                (outer, on_kernel_threads(&device, rayon::current_thread_index))
            });
            assert_eq!(index, (Some(0), Some(0)), "not on worker 0, or a nested call moved threads");
        }
    }

    #[test]
    fn a_panic_inside_reaches_the_caller_and_the_pool_goes_on() {
        let device = Device::flex();
        let caught = std::panic::catch_unwind(|| on_kernel_threads(&device, || panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(on_kernel_threads(&device, || 7), 7);
    }

    /// Rounds of small parallel loops with pauses between them, as a training step's kernels
    /// come, each round starting in another pool as a step's batch is loaded: a waiting job
    /// that starts inside the work it waits for (here: while its thread waits for the other
    /// pool) must not hold that work up for good; the watchdog fails the test instead of
    /// hanging.
    #[test]
    fn parallel_loops_inside_finish_and_waiting_workers_stop() {
        let (tx, rx) = std::sync::mpsc::channel();
        let loaders = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool");
        std::thread::spawn(move || {
            let device = Device::flex();
            let part = |round: u64, k: u64| {
                (0..2_000u32).into_par_iter().with_max_len(64).map(|i| u64::from(i) * round + k).sum::<u64>()
            };
            for round in 0..300u64 {
                let sum: u64 = on_kernel_threads(&device, || {
                    let loaded = loaders.install(|| part(round, 0));
                    loaded
                        + (1..4u64)
                            .map(|k| {
                                std::thread::sleep(Duration::from_micros(200));
                                part(round, k)
                            })
                            .sum::<u64>()
                });
                let expected = 4 * round * 2_000 * 1_999 / 2 + 2_000 * 6;
                if tx.send((sum, expected)).is_err() {
                    return;
                }
            }
        });
        for _ in 0..300 {
            let (sum, expected) = rx.recv_timeout(Duration::from_secs(60)).expect("a round did not finish in 60 s");
            assert_eq!(sum, expected);
        }
    }
}
