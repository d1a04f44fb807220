use super::*;
use crate::inference::postprocess::Detection;

/// A tracked object `id` of `class` whose box is centred on `at`.
fn object(id: u64, class: usize, at: [f32; 2]) -> TrackedObject {
    let [x, y] = at;
    TrackedObject {
        id,
        detection: Detection {
            xyxy: [x - 10.0, y - 20.0, x + 10.0, y + 20.0],
            conf: 0.9,
            class,
            ..Detection::default()
        },
        trail: Vec::new(),
    }
}

fn vertical_line() -> Region {
    Region::line("line 1", [240.0, 150.0], [240.0, 360.0]).unwrap()
}

fn source_frame(index: u64) -> Frame {
    Frame {
        index,
        pts: index as f64 / 10.0,
        segment: 0,
        image: image::RgbImage::new(1, 1),
    }
}

fn frame(objects: Vec<TrackedObject>, continuity: Continuity, skipped: u64) -> TrackedFrame {
    TrackedFrame {
        objects,
        frames_skipped: skipped,
        continuity,
        ..TrackedFrame::default()
    }
}

/// One object's centres, a frame each, through `counter`; the crossings of every frame.
fn walk(counter: &mut Counter, id: u64, class: usize, path: &[[f32; 2]]) -> Vec<Vec<Crossing>> {
    path.iter()
        .map(|&at| counter.update(&[object(id, class, at)], 1))
        .collect()
}

#[test]
fn a_track_crossing_back_and_forth_is_counted_once() {
    let mut counter = Counter::new(vec![vertical_line()], 30);
    let crossings = walk(
        &mut counter,
        7,
        0,
        &[
            [200.0, 250.0],
            [230.0, 250.0],
            [250.0, 252.0],
            [220.0, 252.0],
            [260.0, 250.0],
        ],
    );
    // Its first frame has no previous centre; the crossing to the right is IN.
    assert!(crossings[0].is_empty() && crossings[1].is_empty());
    assert_eq!(
        crossings[2],
        vec![Crossing {
            region: "line 1".into(),
            track_id: 7,
            class: 0,
            direction: Direction::In,
        }]
    );
    assert!(crossings[3].is_empty() && crossings[4].is_empty());
    let counts = counter.counts();
    assert_eq!(
        counts[0].total,
        InOut {
            inward: 1,
            outward: 0
        }
    );
    assert_eq!(
        counts[0].classes[&0],
        InOut {
            inward: 1,
            outward: 0
        }
    );
}

#[test]
fn directions_follow_the_line_and_zone_shapes() {
    let horizontal = Region::line("line 2", [0.0, 100.0], [400.0, 100.0]).unwrap();
    let tall = Region::zone(
        "zone 1",
        vec![[300.0, 0.0], [340.0, 0.0], [340.0, 300.0], [300.0, 300.0]],
    )
    .unwrap();
    let wide = Region::zone(
        "zone 2",
        vec![[0.0, 400.0], [400.0, 400.0], [400.0, 440.0], [0.0, 440.0]],
    )
    .unwrap();
    let mut counter = Counter::new(vec![vertical_line(), horizontal, tall, wide], 30);
    // Up across the horizontal line: OUT. Leftwards across the vertical line: OUT.
    walk(&mut counter, 1, 2, &[[100.0, 120.0], [100.0, 90.0]]);
    walk(&mut counter, 2, 2, &[[250.0, 200.0], [235.0, 205.0]]);
    // Into the tall zone from the left (right is IN), into the wide zone from below
    // (moving up: OUT).
    walk(&mut counter, 3, 0, &[[290.0, 50.0], [310.0, 52.0]]);
    walk(&mut counter, 4, 0, &[[100.0, 460.0], [100.0, 430.0]]);
    let totals: Vec<(String, InOut)> = counter
        .counts()
        .into_iter()
        .map(|c| (c.region, c.total))
        .collect();
    assert_eq!(
        totals,
        vec![
            (
                "line 1".into(),
                InOut {
                    inward: 0,
                    outward: 1
                }
            ),
            (
                "line 2".into(),
                InOut {
                    inward: 0,
                    outward: 1
                }
            ),
            (
                "zone 1".into(),
                InOut {
                    inward: 1,
                    outward: 0
                }
            ),
            (
                "zone 2".into(),
                InOut {
                    inward: 0,
                    outward: 1
                }
            ),
        ]
    );
}

#[test]
fn a_zone_counts_a_track_already_inside_on_its_second_frame() {
    let zone = Region::zone(
        "zone 1",
        vec![
            [120.0, 200.0],
            [360.0, 200.0],
            [360.0, 330.0],
            [120.0, 330.0],
        ],
    )
    .unwrap();
    let mut counter = Counter::new(vec![zone], 30);
    let crossings = walk(
        &mut counter,
        5,
        0,
        &[[200.0, 250.0], [200.0, 249.0], [200.0, 260.0]],
    );
    assert!(crossings[0].is_empty());
    // It moved up by a pixel inside a wide zone: OUT, and never again.
    assert_eq!(crossings[1][0].direction, Direction::Out);
    assert!(crossings[2].is_empty());
}

#[test]
fn a_crossing_between_reported_frames_is_counted() {
    // The model skipped the frames where the object was on the line: the segment from its
    // last reported centre still crosses it.
    let mut sequence = SequenceCounter::new(vec![vertical_line()], 30);
    let first = sequence.count(
        &source_frame(0),
        &frame(vec![object(3, 0, [100.0, 200.0])], Continuity::Restarted, 0),
    );
    assert!(first.crossings.is_empty());
    let after_gap = sequence.count(
        &source_frame(0),
        &frame(vec![object(3, 0, [380.0, 220.0])], Continuity::Continued, 6),
    );
    assert_eq!(after_gap.crossings.len(), 1);
    assert_eq!(after_gap.counts[0].total.inward, 1);
}

#[test]
fn a_lost_track_found_again_counts_from_where_it_was_last_seen() {
    let mut counter = Counter::new(vec![vertical_line()], 30);
    counter.update(&[object(9, 0, [200.0, 200.0])], 1);
    for _ in 0..10 {
        counter.update(&[], 1);
    }
    let crossings = counter.update(&[object(9, 0, [300.0, 200.0])], 1);
    assert_eq!(crossings.len(), 1);
    // Past the tracker's buffer the track is gone for good and forgotten.
    let mut counter = Counter::new(vec![vertical_line()], 30);
    counter.update(&[object(9, 0, [200.0, 200.0])], 1);
    counter.update(&[], 31);
    assert!(
        counter
            .update(&[object(9, 0, [300.0, 200.0])], 1)
            .is_empty()
    );
}

#[test]
fn a_redone_frame_is_not_counted_twice_and_a_restart_starts_over() {
    let mut sequence = SequenceCounter::new(vec![vertical_line()], 30);
    let start = frame(vec![object(1, 0, [200.0, 200.0])], Continuity::Restarted, 0);
    sequence.count(&source_frame(0), &start);
    let crossed = frame(vec![object(1, 0, [260.0, 200.0])], Continuity::Continued, 0);
    assert_eq!(
        sequence.count(&source_frame(1), &crossed).counts[0]
            .total
            .inward,
        1
    );
    // The same frame again (new settings while paused): still one, logged once.
    let redone = TrackedFrame {
        continuity: Continuity::Redone,
        ..crossed.clone()
    };
    let again = sequence.count(&source_frame(1), &redone);
    assert_eq!(again.counts[0].total.inward, 1);
    assert_eq!(
        again.crossings.len(),
        1,
        "the redone frame reports its crossing again"
    );
    assert_eq!(sequence.log().len(), 1);
    assert_eq!((sequence.log()[0].frame, sequence.log()[0].time), (1, 0.1));
    // A seek: the tracker starts over, so do the counts and the log.
    let after_seek = frame(vec![object(1, 0, [300.0, 200.0])], Continuity::Restarted, 0);
    let restarted = sequence.count(&source_frame(40), &after_seek);
    assert_eq!(restarted.counts[0].total, InOut::default());
    assert!(restarted.crossings.is_empty());
    assert!(sequence.log().is_empty());
}

#[test]
fn a_moved_region_keeps_its_counts_and_a_new_one_starts_at_zero() {
    let mut sequence = SequenceCounter::new(vec![vertical_line()], 30);
    sequence.count(
        &source_frame(0),
        &frame(vec![object(1, 4, [200.0, 200.0])], Continuity::Restarted, 0),
    );
    sequence.count(
        &source_frame(0),
        &frame(vec![object(1, 4, [260.0, 200.0])], Continuity::Continued, 0),
    );
    let moved = Region::line("line 1", [250.0, 100.0], [250.0, 300.0]).unwrap();
    let added = Region::line("line 2", [300.0, 100.0], [300.0, 300.0]).unwrap();
    sequence.set_regions(&[moved, added], 30);
    let counts = sequence
        .count(
            &source_frame(0),
            &frame(vec![object(1, 4, [280.0, 200.0])], Continuity::Continued, 0),
        )
        .counts;
    assert_eq!(counts[0].classes[&4].inward, 1);
    assert_eq!(counts[1].total, InOut::default());
    sequence.reset();
    let counts = sequence
        .count(
            &source_frame(0),
            &frame(vec![object(1, 4, [320.0, 200.0])], Continuity::Continued, 0),
        )
        .counts;
    assert_eq!(
        counts[0].total,
        InOut::default(),
        "reset forgets the counts"
    );
    assert_eq!(
        counts[1].total,
        InOut::default(),
        "and the track's last centre"
    );
}
