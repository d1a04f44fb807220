//! Association costs and the linear assignment ByteTrack solves with them, as Ultralytics'
//! `matching.py` does: IoU distance, optionally fused with the detection score, solved by
//! Jonker–Volgenant with a cost limit above which a pair is never matched.

use super::TrackError;
use crate::inference::postprocess::box_iou;

/// Rows (tracks) by columns (detections).
pub struct CostMatrix {
    rows: usize,
    cols: usize,
    costs: Vec<f64>,
}

impl CostMatrix {
    /// 1 − IoU of every track box against every detection box (`xyxy`).
    pub fn iou_distance(tracks: &[[f32; 4]], detections: &[[f32; 4]]) -> Self {
        let costs = tracks
            .iter()
            .flat_map(|t| detections.iter().map(|d| 1.0 - f64::from(box_iou(t, d))))
            .collect();
        Self {
            rows: tracks.len(),
            cols: detections.len(),
            costs,
        }
    }

    /// Weigh the IoU of each pair by its detection's score, so a confident detection wins
    /// over a faint one at the same overlap (Ultralytics' `fuse_score`).
    pub fn fuse_scores(mut self, scores: &[f32]) -> Self {
        for row in self.costs.chunks_mut(self.cols.max(1)) {
            for (cost, &score) in row.iter_mut().zip(scores) {
                *cost = 1.0 - (1.0 - *cost) * f64::from(score);
            }
        }
        self
    }

    pub fn get(&self, row: usize, col: usize) -> f64 {
        self.costs[row * self.cols + col]
    }
}

/// The pairs matched, and the rows and columns left over, each in increasing order.
#[derive(Debug, Default, PartialEq)]
pub struct Assignment {
    pub matches: Vec<(usize, usize)>,
    pub unmatched_rows: Vec<usize>,
    pub unmatched_cols: Vec<usize>,
}

/// The assignment of least total cost in which a row or column may stay unmatched at a
/// cost of `limit / 2`, so no pair costing more than `limit` is ever matched (what `lap`'s
/// `lapjv(extend_cost=True, cost_limit=limit)` solves for Ultralytics).
pub fn linear_assignment(cost: &CostMatrix, limit: f64) -> Result<Assignment, TrackError> {
    let mut assignment = Assignment::default();
    for (rows, cols) in linked_groups(cost, limit) {
        if rows.is_empty() || cols.is_empty() {
            assignment.unmatched_rows.extend(rows);
            assignment.unmatched_cols.extend(cols);
            continue;
        }
        let (row_to_col, col_to_row) = solve_extended(cost, &rows, &cols, limit)?;
        for (local, &c) in row_to_col.iter().take(rows.len()).enumerate() {
            match cols.get(c) {
                Some(&col) => assignment.matches.push((rows[local], col)),
                None => assignment.unmatched_rows.push(rows[local]),
            }
        }
        assignment.unmatched_cols.extend(
            (0..cols.len())
                .filter(|&c| col_to_row[c] >= rows.len())
                .map(|c| cols[c]),
        );
    }
    assignment.matches.sort_unstable();
    assignment.unmatched_rows.sort_unstable();
    assignment.unmatched_cols.sort_unstable();
    Ok(assignment)
}

/// Rows and columns grouped by the pairs that may match (cost ≤ `limit`). The optimum is
/// the optimum of each group on its own, and a group is mostly one track and one detection,
/// where one matrix for the whole frame is (tracks + detections)² (2.9 ms with 300 each).
fn linked_groups(cost: &CostMatrix, limit: f64) -> Vec<(Vec<usize>, Vec<usize>)> {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let (rows, cols) = (cost.rows, cost.cols);
    let mut parent: Vec<usize> = (0..rows + cols).collect();
    for r in 0..rows {
        for c in 0..cols {
            if cost.get(r, c) <= limit {
                let (a, b) = (root(&mut parent, r), root(&mut parent, rows + c));
                parent[a] = b;
            }
        }
    }
    let mut groups: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    let mut group_of_root = vec![usize::MAX; rows + cols];
    for i in 0..rows + cols {
        let r = root(&mut parent, i);
        if group_of_root[r] == usize::MAX {
            group_of_root[r] = groups.len();
            groups.push((Vec::new(), Vec::new()));
        }
        let group = &mut groups[group_of_root[r]];
        if i < rows {
            group.0.push(i);
        } else {
            group.1.push(i - rows);
        }
    }
    groups
}

/// Jonker–Volgenant on the extended square matrix of `rows` × `cols`:
/// [costs, limit/2; limit/2, 0]. A row left unmatched takes one of the `rows.len()` dummy
/// columns, a column one of the `cols.len()` dummy rows. Local indices in and out.
fn solve_extended(
    cost: &CostMatrix,
    rows: &[usize],
    cols: &[usize],
    limit: f64,
) -> Result<(Vec<usize>, Vec<usize>), TrackError> {
    let size = rows.len() + cols.len();
    let mut extended = lapjv::Matrix::from_elem((size, size), limit / 2.0);
    for (i, &r) in rows.iter().enumerate() {
        for (j, &c) in cols.iter().enumerate() {
            let value = cost.get(r, c);
            // A NaN box would stall the solver; such a pair is simply never matched.
            extended[(i, j)] = if value.is_finite() {
                value
            } else {
                2.0 * limit + 1.0
            };
        }
    }
    for i in rows.len()..size {
        for j in cols.len()..size {
            extended[(i, j)] = 0.0;
        }
    }
    lapjv::lapjv(&extended).map_err(|e| TrackError::Assignment(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of matching a few rows to columns (or leaving them), cheapest first.
    fn brute_force(cost: &CostMatrix, limit: f64) -> f64 {
        fn search(cost: &CostMatrix, limit: f64, row: usize, used: &mut [bool]) -> f64 {
            if row == cost.rows {
                let unused = used.iter().filter(|u| !**u).count();
                return unused as f64 * limit / 2.0;
            }
            let mut best = limit / 2.0 + search(cost, limit, row + 1, used);
            for c in 0..cost.cols {
                if !used[c] {
                    used[c] = true;
                    best = best.min(cost.get(row, c) + search(cost, limit, row + 1, used));
                    used[c] = false;
                }
            }
            best
        }
        search(cost, limit, 0, &mut vec![false; cost.cols])
    }

    fn total(cost: &CostMatrix, assignment: &Assignment, limit: f64) -> f64 {
        let matched: f64 = assignment
            .matches
            .iter()
            .map(|&(r, c)| cost.get(r, c))
            .sum();
        let unmatched = assignment.unmatched_rows.len() + assignment.unmatched_cols.len();
        matched + unmatched as f64 * limit / 2.0
    }

    #[test]
    fn the_assignment_is_the_cheapest_and_never_exceeds_the_limit() {
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for case in 0..600 {
            let (rows, cols) = (case % 6 + 1, (case / 6) % 7 + 1);
            // Most pairs do not overlap at all (cost 1), as between boxes of a real frame, so
            // the rows and columns fall into several groups.
            let costs = (0..rows * cols)
                .map(|_| if next() < 0.6 { 1.0 } else { next() })
                .collect();
            let cost = CostMatrix { rows, cols, costs };
            let limit = 0.3 + 0.6 * next();
            let assignment = linear_assignment(&cost, limit).unwrap();
            assert!(
                (total(&cost, &assignment, limit) - brute_force(&cost, limit)).abs() < 1e-9,
                "case {case}"
            );
            assert!(
                assignment
                    .matches
                    .iter()
                    .all(|&(r, c)| cost.get(r, c) <= limit)
            );
            assert_eq!(
                assignment.matches.len() + assignment.unmatched_rows.len(),
                rows
            );
            assert_eq!(
                assignment.matches.len() + assignment.unmatched_cols.len(),
                cols
            );
        }
    }

    #[test]
    fn fused_scores_favour_the_confident_detection() {
        let track = [[0.0, 0.0, 10.0, 10.0]];
        let detections = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]];
        let fused = CostMatrix::iou_distance(&track, &detections).fuse_scores(&[0.3, 0.9]);
        assert!((fused.get(0, 0) - 0.7).abs() < 1e-6);
        assert!((fused.get(0, 1) - 0.1).abs() < 1e-6);
        let assignment = linear_assignment(&fused, 0.8).unwrap();
        assert_eq!(assignment.matches, vec![(0, 1)]);
        assert_eq!(assignment.unmatched_cols, vec![0]);
    }

    #[test]
    fn empty_sides_leave_everything_unmatched() {
        let cost = CostMatrix::iou_distance(&[[0.0, 0.0, 1.0, 1.0]], &[]);
        let assignment = linear_assignment(&cost, 0.8).unwrap();
        assert_eq!(assignment.unmatched_rows, vec![0]);
        assert!(assignment.matches.is_empty());
    }
}
