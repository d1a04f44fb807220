//! Threads between a frame source and whoever shows or writes the results.
//!
//! A capture thread reads the source and hands frames on through a [`HandOff`]; a worker
//! thread runs the model on them and hands results on through another. In the app both
//! hand-offs are [`Delivery::LatestWins`]: a stage that is busy when a new item arrives
//! finds only the newest one when it is free, so latency never builds up and every drop is
//! counted. Headless runs use [`Delivery::EveryFrame`]: the source waits instead.

mod capture;
mod handoff;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

pub use capture::{CaptureEvent, CaptureOptions, CaptureStats, PlaybackControl, spawn_capture};
use handoff::CloseOnDrop;
pub use handoff::{Delivery, HandOff};

/// Start a worker thread: it takes items from `input`, turns each into a result with
/// `work`, hands it to `output`, counts it in `done` and calls `notify` (the app asks for a
/// repaint there). It ends when either hand-off closes, and closes both when it ends.
pub fn spawn_worker<T, R>(
    input: Arc<HandOff<T>>,
    output: Arc<HandOff<R>>,
    done: Arc<AtomicU64>,
    mut work: impl FnMut(T) -> R + Send + 'static,
    notify: impl Fn() + Send + 'static,
) -> JoinHandle<()>
where
    T: Send + 'static,
    R: Send + 'static,
{
    std::thread::Builder::new()
        .name("inference".into())
        .spawn(move || {
            let _close = (CloseOnDrop(&input), CloseOnDrop(&output));
            while let Some(item) = input.take() {
                let result = work(item);
                done.fetch_add(1, Ordering::Relaxed);
                if !output.put(result) {
                    break;
                }
                notify();
            }
        })
        .expect("spawning the inference thread")
}

/// `work()`, or what it panicked with as an error message: the last guard of a worker
/// thread, so that a bug on one frame becomes a message on screen rather than a dead
/// thread. Errors that can be foreseen are returned as errors long before this.
pub fn catch_panic<R>(work: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

#[cfg(test)]
mod tests {
    use super::catch_panic;

    #[test]
    fn a_panic_becomes_its_message_and_a_result_passes_through() {
        assert_eq!(catch_panic(|| 7), Ok(7));
        assert_eq!(
            catch_panic(|| -> u8 { panic!("static text") }),
            Err("static text".into())
        );
        let index = 3;
        assert_eq!(
            catch_panic(|| -> u8 { panic!("formatted {index}") }),
            Err("formatted 3".into())
        );
    }
}
