//! A one-way hand-off between two threads, newest-wins or lossless.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// What a hand-off does when its consumer is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Hold one item; a new one replaces it, and the replaced one counts as dropped.
    LatestWins,
    /// Hold up to `capacity` items; the producer waits for room. Nothing is dropped.
    EveryFrame { capacity: usize },
}

struct Slot<T> {
    items: VecDeque<T>,
    closed: bool,
    delivery: Delivery,
}

/// A one-way hand-off between two threads.
pub struct HandOff<T> {
    slot: Mutex<Slot<T>>,
    changed: Condvar,
    dropped: AtomicU64,
    peak: AtomicUsize,
}

impl<T> HandOff<T> {
    pub fn new(delivery: Delivery) -> Self {
        Self {
            slot: Mutex::new(Slot {
                items: VecDeque::new(),
                closed: false,
                delivery,
            }),
            changed: Condvar::new(),
            dropped: AtomicU64::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // A panicking peer must not take the other thread down with a poisoned lock.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on, deliver this way (a source found to be live is read newest-wins).
    pub fn set_delivery(&self, delivery: Delivery) {
        self.lock().delivery = delivery;
        self.changed.notify_all();
    }

    /// Hand `item` on. False when the hand-off is closed (the consumer has gone).
    pub fn put(&self, item: T) -> bool {
        let mut slot = self.lock();
        match slot.delivery {
            Delivery::LatestWins => {
                // More than one waits only after a switch from `EveryFrame`.
                let replaced = slot.items.len() as u64;
                slot.items.clear();
                self.dropped.fetch_add(replaced, Ordering::Relaxed);
            }
            Delivery::EveryFrame { capacity } => {
                while slot.items.len() >= capacity.max(1) && !slot.closed {
                    slot = self.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
        if slot.closed {
            return false;
        }
        slot.items.push_back(item);
        self.peak.fetch_max(slot.items.len(), Ordering::Relaxed);
        self.changed.notify_all();
        true
    }

    /// The next item, waiting for one; `None` once closed and empty.
    pub fn take(&self) -> Option<T> {
        let mut slot = self.lock();
        loop {
            if let Some(item) = slot.items.pop_front() {
                self.changed.notify_all();
                return Some(item);
            }
            if slot.closed {
                return None;
            }
            slot = self.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The next item if one is waiting.
    pub fn try_take(&self) -> Option<T> {
        let item = self.lock().items.pop_front();
        if item.is_some() {
            self.changed.notify_all();
        }
        item
    }

    /// No more items will be put; waiting takers see the end once the queue is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Items replaced before anyone took them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The most items ever held at once.
    pub fn peak_len(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

/// Closes a hand-off when its thread ends, a panic included, so the other side is never
/// left waiting.
pub(super) struct CloseOnDrop<'a, T>(pub(super) &'a HandOff<T>);

impl<T> Drop for CloseOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn latest_wins_keeps_one_and_counts_drops() {
        let handoff = HandOff::new(Delivery::LatestWins);
        for i in 0..5 {
            assert!(handoff.put(i));
        }
        assert_eq!(handoff.take(), Some(4));
        assert_eq!(handoff.dropped(), 4);
        assert_eq!(handoff.peak_len(), 1);
        handoff.close();
        assert_eq!(handoff.take(), None);
        assert!(!handoff.put(9));
    }

    #[test]
    fn every_frame_waits_for_room_and_drops_nothing() {
        let handoff = Arc::new(HandOff::new(Delivery::EveryFrame { capacity: 2 }));
        let producer = {
            let handoff = handoff.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    assert!(handoff.put(i));
                }
                handoff.close();
            })
        };
        let received: Vec<i32> = std::iter::from_fn(|| handoff.take()).collect();
        producer.join().unwrap();
        assert_eq!(received, (0..100).collect::<Vec<_>>());
        assert_eq!(handoff.dropped(), 0);
        assert!(handoff.peak_len() <= 2);
    }
}
