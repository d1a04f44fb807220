//! ByteTrack on hand-made scenes: crossing objects, an object lost and found within the
//! buffer and after it, frames skipped, and the sequence rules (seek, reprocess).

use super::*;
use crate::source::Frame;
use image::RgbImage;

const FRAME: (u32, u32) = (1280, 720);

/// A detection centred at (`cx`, `cy`).
fn detection(cx: f32, cy: f32, w: f32, h: f32, conf: f32) -> Detection {
    Detection {
        xyxy: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
        conf,
        ..Detection::default()
    }
}

/// The ID of the reported track whose box is nearest `(cx, cy)`, if one is within 20 px.
fn id_near(objects: &[TrackedObject], cx: f32, cy: f32) -> Option<u64> {
    objects
        .iter()
        .map(|o| {
            let [x1, y1, x2, y2] = o.detection.xyxy;
            let d = ((x1 + x2) / 2.0 - cx).hypot((y1 + y2) / 2.0 - cy);
            (d, o.id)
        })
        .filter(|(d, _)| *d < 20.0)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id)
}

#[test]
fn crossing_objects_keep_their_ids() {
    let mut tracker = ByteTracker::new(TrackerConfig::default());
    let (mut id_a, mut id_b) = (None, None);
    for t in 0..60 {
        // A walks right, B walks left, a little lower: they overlap for about 15 frames.
        let a = (200.0 + 15.0 * t as f32, 300.0);
        let b = (1100.0 - 15.0 * t as f32, 330.0);
        let objects = tracker
            .update(
                &[
                    detection(a.0, a.1, 80.0, 200.0, 0.9),
                    detection(b.0, b.1, 80.0, 200.0, 0.85),
                ],
                1,
                FRAME,
            )
            .unwrap();
        assert_eq!(objects.len(), 2, "frame {t}");
        let (now_a, now_b) = (id_near(&objects, a.0, a.1), id_near(&objects, b.0, b.1));
        assert!(now_a.is_some() && now_b.is_some(), "frame {t}: {objects:?}");
        assert_eq!(*id_a.get_or_insert(now_a), now_a, "A switched at frame {t}");
        assert_eq!(*id_b.get_or_insert(now_b), now_b, "B switched at frame {t}");
    }
    assert_ne!(id_a, id_b);
}

/// An object walking right, seen for 30 frames, unseen for `gap`, then seen again where
/// it walked to: its ID before and after.
fn ids_around_a_gap(gap: usize) -> (u64, u64) {
    let mut tracker = ByteTracker::new(TrackerConfig::default());
    let at = |t: usize| (100.0 + 4.0 * t as f32, 360.0);
    let mut before = None;
    let mut after = None;
    for t in 0..30 + gap + 5 {
        let seen = t < 30 || t >= 30 + gap;
        let (cx, cy) = at(t);
        let detections = if seen {
            vec![detection(cx, cy, 90.0, 220.0, 0.9)]
        } else {
            Vec::new()
        };
        let objects = tracker.update(&detections, 1, FRAME).unwrap();
        if t == 29 {
            before = id_near(&objects, cx, cy);
        }
        if !seen {
            assert!(objects.is_empty(), "a lost track is not reported");
        }
        if t == 30 + gap + 4 {
            after = id_near(&objects, cx, cy);
        }
    }
    (
        before.expect("tracked before"),
        after.expect("tracked after"),
    )
}

#[test]
fn an_object_lost_for_20_frames_is_found_again_with_its_id() {
    let (before, after) = ids_around_a_gap(20);
    assert_eq!(before, after);
}

#[test]
fn an_object_lost_for_40_frames_comes_back_with_a_new_id() {
    let (before, after) = ids_around_a_gap(40);
    assert_ne!(before, after, "the buffer is 30 frames");
}

/// A fast object seen on irregular frames (as the app's dropped frames give them): how many
/// IDs it got, when the tracker is told the true gaps or treats every update as one frame.
fn ids_of_a_fast_object(told_the_gaps: bool) -> usize {
    let mut tracker = ByteTracker::new(TrackerConfig::default());
    let mut ids = std::collections::BTreeSet::new();
    let mut frame = 0u64;
    let gaps = [1u64, 1, 1, 1, 1, 1, 1, 1, 5, 1, 5, 1, 5, 2, 5, 1, 5];
    for &gap in &gaps {
        frame += gap;
        let cx = 100.0 + 20.0 * frame as f32;
        let elapsed = if told_the_gaps { gap } else { 1 };
        let objects = tracker
            .update(&[detection(cx, 360.0, 100.0, 200.0, 0.9)], elapsed, FRAME)
            .unwrap();
        ids.extend(objects.iter().map(|o| o.id));
    }
    ids.len()
}

#[test]
fn skipped_frames_are_predicted_across() {
    assert_eq!(ids_of_a_fast_object(true), 1);
    assert!(
        ids_of_a_fast_object(false) > 1,
        "without the gaps the prediction falls behind and the ID is lost"
    );
}

#[test]
fn faint_detections_keep_a_track_alive_but_never_start_one() {
    let mut tracker = ByteTracker::new(TrackerConfig::default());
    let first = tracker
        .update(&[detection(400.0, 300.0, 80.0, 160.0, 0.8)], 1, FRAME)
        .unwrap();
    let id = first[0].id;
    // The object fades to 0.15: only the second association (low threshold 0.1) finds it.
    for _ in 0..5 {
        let objects = tracker
            .update(&[detection(400.0, 300.0, 80.0, 160.0, 0.15)], 1, FRAME)
            .unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].id, id);
        assert_eq!(objects[0].detection.conf, 0.15);
    }
    // A faint detection elsewhere never becomes a track.
    for _ in 0..5 {
        let objects = tracker
            .update(&[detection(900.0, 300.0, 80.0, 160.0, 0.2)], 1, FRAME)
            .unwrap();
        assert!(objects.is_empty());
    }
}

#[test]
fn a_new_track_is_reported_from_its_second_frame_except_on_the_first_frame() {
    let mut tracker = ByteTracker::new(TrackerConfig::default());
    let a = detection(300.0, 300.0, 80.0, 160.0, 0.9);
    let b = detection(800.0, 300.0, 80.0, 160.0, 0.9);
    let first = tracker.update(std::slice::from_ref(&a), 1, FRAME).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        tracker
            .update(&[a.clone(), b.clone()], 1, FRAME)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(tracker.update(&[a, b], 1, FRAME).unwrap().len(), 2);
    assert_eq!(tracker.since_start().get(&0), Some(&2));
}

fn frame(segment: u64, index: u64) -> Frame {
    Frame {
        index,
        pts: index as f64 / 30.0,
        segment,
        image: RgbImage::new(FRAME.0, FRAME.1),
    }
}

#[test]
fn a_sequence_starts_over_at_a_seek_and_redoes_a_frame_shown_again() {
    let mut sequence = SequenceTracker::new(TrackerConfig::default());
    let walker = |i: u64| [detection(200.0 + 5.0 * i as f32, 300.0, 80.0, 160.0, 0.9)];
    for i in 0..10 {
        sequence.track(&frame(0, i), &walker(i)).unwrap();
    }
    let last = sequence.track(&frame(0, 10), &walker(10)).unwrap();
    // The same frame again (settings changed while paused): the same answer.
    let again = sequence.track(&frame(0, 10), &walker(10)).unwrap();
    assert_eq!(last.continuity, Continuity::Continued);
    assert_eq!(again.continuity, Continuity::Redone);
    assert_eq!(
        last,
        TrackedFrame {
            continuity: Continuity::Continued,
            ..again
        }
    );
    // Frames 11 to 13 dropped by the pipeline.
    let after_drop = sequence.track(&frame(0, 14), &walker(14)).unwrap();
    assert_eq!(after_drop.frames_skipped, 3);
    assert_eq!(after_drop.objects[0].id, last.objects[0].id);
    // A seek: a new segment starts the tracker over, IDs from 1.
    let a = detection(900.0, 500.0, 80.0, 160.0, 0.9);
    let b = detection(300.0, 500.0, 80.0, 160.0, 0.9);
    let sought = sequence.track(&frame(1, 3), &[a, b]).unwrap();
    let ids: Vec<u64> = sought.objects.iter().map(|o| o.id).collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(sought.continuity, Continuity::Restarted);
    assert_eq!(sought.skipped_total, 0);
    assert_eq!(sought.since_start.get(&0), Some(&2));
}
