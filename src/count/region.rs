//! Counting regions: a line (two points) or a zone (three or more, a polygon), in source
//! pixels, and the geometry counting asks of them. The predicates are shapely's, which
//! Ultralytics' `ObjectCounter` uses: a segment *intersects* a line when they share any
//! point (end points and collinear overlaps included); a zone *contains* a point strictly
//! inside it (a point on its boundary is not contained).

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum RegionError {
    #[error("{region}: {text:?} is not a list of numbers ({why})")]
    Parse {
        region: String,
        text: String,
        why: String,
    },
    #[error("{region}: {got} coordinates; {wanted}")]
    Coordinates {
        region: String,
        got: usize,
        wanted: &'static str,
    },
    #[error("{region}: coordinates must be finite numbers")]
    NotFinite { region: String },
    #[error("{region}: {why}")]
    Degenerate { region: String, why: &'static str },
    #[error(
        "{region}: point ({x}, {y}) is outside the {width}×{height} frame \
         (coordinates are source pixels, 0..={width} across and 0..={height} down)"
    )]
    OutsideFrame {
        region: String,
        x: f32,
        y: f32,
        width: u32,
        height: u32,
    },
}

/// Which axis of motion decides IN and OUT in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Moving right is IN, left OUT.
    Horizontal,
    /// Moving down is IN, up OUT.
    Vertical,
}

/// A named counting line or zone, its points in source pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub name: String,
    pub points: Vec<[f32; 2]>,
}

impl Region {
    /// A line from `a` to `b`.
    pub fn line(name: impl Into<String>, a: [f32; 2], b: [f32; 2]) -> Result<Self, RegionError> {
        Self::new(name, vec![a, b])
    }

    /// A zone with these corners, in order around it.
    pub fn zone(name: impl Into<String>, corners: Vec<[f32; 2]>) -> Result<Self, RegionError> {
        if corners.len() < 3 {
            return Err(RegionError::Coordinates {
                region: name.into(),
                got: corners.len() * 2,
                wanted: "a zone needs at least 3 points (6 numbers)",
            });
        }
        Self::new(name, corners)
    }

    /// Two points make a line, three or more a zone; refused when its points are not
    /// finite, or it has no length (a line) or no area (a zone).
    pub fn new(name: impl Into<String>, points: Vec<[f32; 2]>) -> Result<Self, RegionError> {
        let region = Self {
            name: name.into(),
            points,
        };
        let degenerate = |why| RegionError::Degenerate {
            region: region.name.clone(),
            why,
        };
        if region.points.len() < 2 {
            return Err(RegionError::Coordinates {
                region: region.name.clone(),
                got: region.points.len() * 2,
                wanted: "a line needs 2 points, a zone 3 or more",
            });
        }
        if region.points.iter().flatten().any(|v| !v.is_finite()) {
            return Err(RegionError::NotFinite {
                region: region.name.clone(),
            });
        }
        if region.is_line() {
            if region.points[0] == region.points[1] {
                return Err(degenerate("the line's two points are the same"));
            }
        } else if region.area() == 0.0 {
            return Err(degenerate(
                "the zone's points are all on one line: it has no area",
            ));
        }
        Ok(region)
    }

    /// `X1,Y1,X2,Y2[,…]` as the CLI takes it: a line when `line`, else a zone.
    pub fn parse(name: impl Into<String>, text: &str, line: bool) -> Result<Self, RegionError> {
        let name = name.into();
        let numbers = text
            .split(',')
            .map(|part| part.trim().parse::<f32>())
            .collect::<Result<Vec<f32>, _>>()
            .map_err(|err| RegionError::Parse {
                region: name.clone(),
                text: text.to_string(),
                why: err.to_string(),
            })?;
        let wrong = |wanted| RegionError::Coordinates {
            region: name.clone(),
            got: numbers.len(),
            wanted,
        };
        if numbers.len() % 2 != 0 {
            return Err(wrong("x and y come in pairs"));
        }
        if line && numbers.len() != 4 {
            return Err(wrong("a line is X1,Y1,X2,Y2"));
        }
        let points: Vec<[f32; 2]> = numbers.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        if line {
            Self::new(name, points)
        } else {
            Self::zone(name, points)
        }
    }

    pub fn is_line(&self) -> bool {
        self.points.len() == 2
    }

    /// Refused when a point lies outside a `width`×`height` frame.
    pub fn check_inside(&self, width: u32, height: u32) -> Result<(), RegionError> {
        let (w, h) = (width as f32, height as f32);
        match self
            .points
            .iter()
            .find(|[x, y]| !(0.0..=w).contains(x) || !(0.0..=h).contains(y))
        {
            Some(&[x, y]) => Err(RegionError::OutsideFrame {
                region: self.name.clone(),
                x,
                y,
                width,
                height,
            }),
            None => Ok(()),
        }
    }

    /// The motion that decides IN and OUT: across a line more vertical than horizontal,
    /// or in a zone taller than wide, horizontal motion; otherwise vertical.
    pub fn axis(&self) -> Axis {
        let extent = |axis: usize| {
            let (lo, hi) = self
                .points
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), p| {
                    (lo.min(p[axis]), hi.max(p[axis]))
                });
            hi - lo
        };
        let (width, height) = (extent(0), extent(1));
        if width < height {
            Axis::Horizontal
        } else {
            Axis::Vertical
        }
    }

    /// Whether a track moving from `from` to `to` is counted here: for a line, the
    /// segment touches it; for a zone, `to` is inside it.
    pub fn reached(&self, from: [f32; 2], to: [f32; 2]) -> bool {
        if self.is_line() {
            segments_intersect(from, to, self.points[0], self.points[1])
        } else {
            polygon_contains(&self.points, to)
        }
    }

    /// Twice the signed area is the shoelace sum; its magnitude is what matters here.
    fn area(&self) -> f64 {
        let n = self.points.len();
        let twice: f64 = (0..n)
            .map(|i| {
                let [x1, y1] = as_f64(self.points[i]);
                let [x2, y2] = as_f64(self.points[(i + 1) % n]);
                x1 * y2 - x2 * y1
            })
            .sum();
        twice.abs() / 2.0
    }
}

fn as_f64(p: [f32; 2]) -> [f64; 2] {
    p.map(f64::from)
}

/// The sign of the turn a → b → c: positive counter-clockwise, zero when collinear. In
/// f64, where the products of f32 coordinates are exact enough for pixel geometry.
fn orientation(a: [f32; 2], b: [f32; 2], c: [f32; 2]) -> f64 {
    let ([ax, ay], [bx, by], [cx, cy]) = (as_f64(a), as_f64(b), as_f64(c));
    (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
}

/// `p`, collinear with `a`–`b`, lies within the segment's bounding box (so on it).
fn within(a: [f32; 2], b: [f32; 2], p: [f32; 2]) -> bool {
    p[0] >= a[0].min(b[0])
        && p[0] <= a[0].max(b[0])
        && p[1] >= a[1].min(b[1])
        && p[1] <= a[1].max(b[1])
}

/// Segments `p1`–`p2` and `q1`–`q2` share at least one point (a segment may be a single
/// point).
pub fn segments_intersect(p1: [f32; 2], p2: [f32; 2], q1: [f32; 2], q2: [f32; 2]) -> bool {
    let d1 = orientation(q1, q2, p1);
    let d2 = orientation(q1, q2, p2);
    let d3 = orientation(p1, p2, q1);
    let d4 = orientation(p1, p2, q2);
    let opposite = |a: f64, b: f64| (a > 0.0 && b < 0.0) || (a < 0.0 && b > 0.0);
    if opposite(d1, d2) && opposite(d3, d4) {
        return true;
    }
    (d1 == 0.0 && within(q1, q2, p1))
        || (d2 == 0.0 && within(q1, q2, p2))
        || (d3 == 0.0 && within(p1, p2, q1))
        || (d4 == 0.0 && within(p1, p2, q2))
}

/// `p` lies strictly inside the polygon `corners` (even-odd rule); a point on an edge is
/// outside.
pub fn polygon_contains(corners: &[[f32; 2]], p: [f32; 2]) -> bool {
    let n = corners.len();
    let mut inside = false;
    for i in 0..n {
        let (a, b) = (corners[i], corners[(i + 1) % n]);
        if orientation(a, b, p) == 0.0 && within(a, b, p) {
            return false;
        }
        let ([ax, ay], [bx, by], [px, py]) = (as_f64(a), as_f64(b), as_f64(p));
        if (ay > py) != (by > py) && px < ax + (py - ay) * (bx - ax) / (by - ay) {
            inside = !inside;
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_meet_at_end_points_and_along_collinear_overlaps() {
        let (a, b) = ([0.0, 0.0], [10.0, 0.0]);
        // A clean crossing, and one that misses.
        assert!(segments_intersect([5.0, -1.0], [5.0, 1.0], a, b));
        assert!(!segments_intersect([5.0, 1.0], [5.0, 3.0], a, b));
        // An end point on the line, either end; the line's end point on the segment.
        assert!(segments_intersect([5.0, 0.0], [5.0, 4.0], a, b));
        assert!(segments_intersect([5.0, 4.0], [5.0, 0.0], a, b));
        assert!(segments_intersect([10.0, -2.0], [10.0, 2.0], a, b));
        // Collinear: overlapping, touching end to end, and apart.
        assert!(segments_intersect([8.0, 0.0], [14.0, 0.0], a, b));
        assert!(segments_intersect([10.0, 0.0], [14.0, 0.0], a, b));
        assert!(!segments_intersect([11.0, 0.0], [14.0, 0.0], a, b));
        // A segment that is one point (a track that did not move), on and off the line.
        assert!(segments_intersect([3.0, 0.0], [3.0, 0.0], a, b));
        assert!(!segments_intersect([3.0, 1.0], [3.0, 1.0], a, b));
        // A vertical line, crossed left to right, and passed beyond its end.
        let (top, bottom) = ([240.0, 150.0], [240.0, 360.0]);
        assert!(segments_intersect(
            [230.0, 200.0],
            [250.0, 210.0],
            top,
            bottom
        ));
        assert!(!segments_intersect(
            [230.0, 370.0],
            [250.0, 370.0],
            top,
            bottom
        ));
        assert!(!segments_intersect(
            [230.0, 149.0],
            [250.0, 149.5],
            top,
            bottom
        ));
    }

    #[test]
    fn a_zone_contains_what_is_strictly_inside_it() {
        let square = [
            [120.0, 200.0],
            [360.0, 200.0],
            [360.0, 330.0],
            [120.0, 330.0],
        ];
        assert!(polygon_contains(&square, [200.0, 250.0]));
        assert!(!polygon_contains(&square, [100.0, 250.0]));
        assert!(!polygon_contains(&square, [200.0, 331.0]));
        // Edges and corners are boundary, not inside.
        assert!(!polygon_contains(&square, [120.0, 250.0]));
        assert!(!polygon_contains(&square, [200.0, 330.0]));
        assert!(!polygon_contains(&square, [360.0, 200.0]));
        // A concave zone: the notch is outside.
        let notched = [
            [0.0, 0.0],
            [10.0, 0.0],
            [10.0, 10.0],
            [5.0, 3.0],
            [0.0, 10.0],
        ];
        assert!(!polygon_contains(&notched, [5.0, 8.0]));
        assert!(polygon_contains(&notched, [2.0, 3.0]));
    }

    #[test]
    fn the_axis_follows_the_shape() {
        let vertical = Region::line("l", [240.0, 150.0], [240.0, 360.0]).unwrap();
        assert_eq!(vertical.axis(), Axis::Horizontal);
        let horizontal = Region::line("l", [0.0, 100.0], [300.0, 120.0]).unwrap();
        assert_eq!(horizontal.axis(), Axis::Vertical);
        // A 45° line counts vertical motion (width is not less than height).
        let diagonal = Region::line("l", [0.0, 0.0], [50.0, 50.0]).unwrap();
        assert_eq!(diagonal.axis(), Axis::Vertical);
        let wide = Region::zone("z", vec![[120.0, 200.0], [360.0, 200.0], [360.0, 330.0]]).unwrap();
        assert_eq!(wide.axis(), Axis::Vertical);
        let tall = Region::zone(
            "z",
            vec![[0.0, 0.0], [10.0, 0.0], [10.0, 80.0], [0.0, 80.0]],
        )
        .unwrap();
        assert_eq!(tall.axis(), Axis::Horizontal);
    }

    #[test]
    fn bad_regions_are_refused_by_name() {
        assert!(matches!(
            Region::parse("line 1", "10,20,30", true),
            Err(RegionError::Coordinates { got: 3, .. })
        ));
        assert!(matches!(
            Region::parse("line 1", "10,20,30,40,50,60", true),
            Err(RegionError::Coordinates { got: 6, .. })
        ));
        assert!(matches!(
            Region::parse("line 1", "10,20,a,40", true),
            Err(RegionError::Parse { .. })
        ));
        assert!(matches!(
            Region::parse("line 1", "10,20,10,20", true),
            Err(RegionError::Degenerate { .. })
        ));
        assert!(matches!(
            Region::parse("zone 1", "0,0,10,10,20,20", false),
            Err(RegionError::Degenerate { .. })
        ));
        assert!(matches!(
            Region::parse("zone 1", "0,0,10,10", false),
            Err(RegionError::Coordinates { got: 4, .. })
        ));
        assert!(matches!(
            Region::parse("line 1", "0,0,inf,10", true),
            Err(RegionError::NotFinite { .. })
        ));
        let line = Region::parse("line 1", " 240, 150,240,360", true).unwrap();
        assert_eq!(line.points, vec![[240.0, 150.0], [240.0, 360.0]]);
        assert!(line.check_inside(480, 360).is_ok());
        let err = line.check_inside(320, 240).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 1: point (240, 360) is outside the 320×240 frame")
        );
    }
}
