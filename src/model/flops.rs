//! The arithmetic a pass performs, counted as it runs, for `bench --profile`'s roofline:
//! every convolution and attention product adds its multiply-adds, two FLOPs each, as
//! Ultralytics' "GFLOPs" count them (element-wise work is not counted). The count is
//! process-wide, so it is on only while a [`FlopCount`] is open, and only one can be: a pass
//! running beside the counted one would add its own arithmetic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNTED: AtomicU64 = AtomicU64::new(0);

/// The count, on from [`FlopCount::start`] until it is dropped.
#[must_use = "the count stops when this is dropped"]
pub struct FlopCount(());

impl FlopCount {
    /// Start counting; `None` while another count is open.
    pub fn start() -> Option<Self> {
        COUNTING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        COUNTED.store(0, Ordering::Release);
        Some(Self(()))
    }

    /// The FLOPs counted since the count started or since the last `take`.
    pub fn take(&self) -> u64 {
        COUNTED.swap(0, Ordering::AcqRel)
    }
}

impl Drop for FlopCount {
    fn drop(&mut self) {
        COUNTING.store(false, Ordering::Release);
    }
}

/// `multiply_adds` more, if a count is open.
pub(super) fn add(multiply_adds: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        COUNTED.fetch_add(2 * multiply_adds as u64, Ordering::Relaxed);
    }
}
