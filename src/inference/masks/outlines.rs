//! A mask's outlines, traced as `cv2.findContours(RETR_EXTERNAL, CHAIN_APPROX_SIMPLE)`
//! traces them: the mask's rows as runs, labelled into 8-connected parts by union-find over
//! runs, the parts that touch the background outside traced by Moore-neighbour following.

use super::InstanceMask;

impl InstanceMask {
    /// The outer outline of each connected part (8-connected, as `cv2.findContours` with
    /// `RETR_EXTERNAL`; a part inside another's hole is left out), through the centres of
    /// its border pixels, straight runs reduced to their ends (`CHAIN_APPROX_SIMPLE`); in
    /// canvas pixels.
    pub fn outlines(&self) -> Vec<Vec<[f32; 2]>> {
        if self.width == 0 || self.height == 0 {
            return Vec::new();
        }
        // Work on the region with a one-pixel empty frame, so every part has a border.
        let (w, h) = (self.width + 2, self.height + 2);
        let mut grid = vec![0u8; w * h];
        for (line, pixels) in grid[w..]
            .chunks_exact_mut(w)
            .zip(self.pixels.chunks_exact(self.width))
        {
            for (cell, &set) in line[1..].iter_mut().zip(pixels) {
                *cell = u8::from(set);
            }
        }
        // The background 4-connected to the frame, and the 8-connected parts, labelled as
        // runs of a row: a part is external when one of its pixels has a 4-neighbour in that
        // background (a run beside it in its row, or overlapping it in the row above or below).
        let parts = Runs::new(foreground_runs(&grid, w, h), h, true);
        let background = Runs::new(gaps(&parts, w), h, false);
        let outside = background.root[0];
        let mut external = vec![false; parts.runs.len()];
        for (i, run) in parts.runs.iter().enumerate() {
            if external[parts.root[i]] {
                continue;
            }
            let touches = |row: usize, from: usize, to: usize| {
                background
                    .overlapping(row, from, to)
                    .any(|(j, _)| background.root[j] == outside)
            };
            external[parts.root[i]] |= touches(run.row, run.start - 1, run.end + 1)
                || touches(run.row - 1, run.start, run.end)
                || touches(run.row + 1, run.start, run.end);
        }
        // Each external part's first run (its root) starts at its top-left pixel, where the
        // tracing starts; roots come in raster order.
        let starts: Vec<usize> = (0..parts.runs.len())
            .filter(|&i| parts.root[i] == i && external[i])
            .map(|i| parts.runs[i].row * w + parts.runs[i].start)
            .collect();
        let offset = [self.left as f32 - 1.0, self.top as f32 - 1.0];
        let canvas = |p: usize| [(p % w) as f32 + offset[0], (p / w) as f32 + offset[1]];
        starts
            .into_iter()
            .map(|start| trace_border(&grid, w, start, canvas))
            .collect()
    }
}

/// A row's stretch of pixels of one value, `start..end`.
struct Run {
    row: usize,
    start: usize,
    end: usize,
}

/// Runs of one value in raster order, and the connected part each belongs to (its first
/// run). Union-find over runs rather than pixels: a mask has few per row.
struct Runs {
    runs: Vec<Run>,
    /// The first run of each row, and one past the last row's.
    row_starts: Vec<usize>,
    root: Vec<usize>,
}

impl Runs {
    /// Labels `runs` (in raster order, over `h` rows) into connected parts: 8-connected for
    /// the `foreground`, 4-connected for the background.
    fn new(runs: Vec<Run>, h: usize, foreground: bool) -> Self {
        let mut row_starts = Vec::with_capacity(h + 1);
        for row in 0..h {
            row_starts.push(runs.partition_point(|run| run.row < row));
        }
        row_starts.push(runs.len());
        let mut parent: Vec<usize> = (0..runs.len()).collect();
        fn find(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        // Diagonal neighbours join parts of the mask, not of the background.
        let reach = usize::from(foreground);
        // A row's runs are sorted and disjoint, so the runs above that touch a run start at
        // or after those that touched the run before it: one merge-like pass per row pair
        // (a noisy mask has hundreds of runs a row).
        for row in 1..h {
            let above_end = row_starts[row];
            let mut first = row_starts[row - 1];
            for i in row_starts[row]..row_starts[row + 1] {
                let run = &runs[i];
                while first < above_end && runs[first].end + reach <= run.start {
                    first += 1;
                }
                let touching = (first..above_end).take_while(|&j| runs[j].start < run.end + reach);
                for j in touching {
                    let (x, y) = (find(&mut parent, i), find(&mut parent, j));
                    parent[x.max(y)] = x.min(y);
                }
            }
        }
        let root = (0..runs.len()).map(|i| find(&mut parent, i)).collect();
        Self {
            runs,
            row_starts,
            root,
        }
    }

    /// The runs of `row` that overlap columns `from..to`, with their indices (a binary
    /// search: the row's runs are sorted).
    fn overlapping(
        &self,
        row: usize,
        from: usize,
        to: usize,
    ) -> impl Iterator<Item = (usize, &Run)> {
        let (start, end) = (self.row_starts[row], self.row_starts[row + 1]);
        let first = start + self.runs[start..end].partition_point(|run| run.end <= from);
        (first..end)
            .zip(&self.runs[first..end])
            .take_while(move |(_, run)| run.start < to)
    }
}

/// The runs of set pixels of each row of `grid` (`w` wide, `h` high), in raster order.
fn foreground_runs(grid: &[u8], w: usize, h: usize) -> Vec<Run> {
    let mut runs = Vec::new();
    for (row, line) in grid.chunks_exact(w).take(h).enumerate() {
        let mut x = 0;
        while x < w {
            let start = run_end(line, x, 0);
            if start == w {
                break;
            }
            x = run_end(line, start, 1);
            runs.push(Run { row, start, end: x });
        }
    }
    runs
}

/// The runs between the `parts`' runs, row by row, on a grid `w` wide whose border is unset.
fn gaps(parts: &Runs, w: usize) -> Vec<Run> {
    let rows = parts.row_starts.len() - 1;
    let mut gaps = Vec::with_capacity(parts.runs.len() + rows);
    for row in 0..rows {
        let mut start = 0;
        for (_, run) in parts.overlapping(row, 0, w) {
            gaps.push(Run {
                row,
                start,
                end: run.start,
            });
            start = run.end;
        }
        gaps.push(Run { row, start, end: w });
    }
    gaps
}

/// The first index from `x` whose byte is not `value` (0 or 1), or `line.len()`: eight
/// bytes at a time, as most runs are long.
fn run_end(line: &[u8], mut x: usize, value: u8) -> usize {
    let pattern = u64::from_le_bytes([value; 8]);
    while let Some(bytes) = line.get(x..x + 8) {
        let differ = u64::from_le_bytes(bytes.try_into().expect("eight bytes")) ^ pattern;
        if differ != 0 {
            return x + differ.trailing_zeros() as usize / 8;
        }
        x += 8;
    }
    x + line[x..].iter().take_while(|&&b| b == value).count()
}

/// The outer border of the part whose top-left pixel is `start`, by Moore-neighbour
/// tracing (the border following of Suzuki and Abe, which OpenCV implements), keeping only
/// the pixels where the direction turns, each as `point` gives it.
fn trace_border(
    grid: &[u8],
    w: usize,
    start: usize,
    point: impl Fn(usize) -> [f32; 2],
) -> Vec<[f32; 2]> {
    // The 8 neighbours clockwise from east, in image coordinates (y down).
    let steps: [isize; 8] = [
        1,
        w as isize + 1,
        w as isize,
        w as isize - 1,
        -1,
        -(w as isize) - 1,
        -(w as isize),
        -(w as isize) + 1,
    ];
    let neighbour = |p: usize, d: usize| (p as isize + steps[d]) as usize;
    // From the top-left pixel, the pixel to its west is empty: search clockwise from there.
    let first_direction = (0..8)
        .map(|k| (4 + k) % 8)
        .find(|&d| grid[neighbour(start, d)] != 0);
    // The start is always a turn: the tracing leaves it east to south-west (the pixels
    // before it in raster order are empty) and comes back west to north-east.
    let mut border = vec![point(start)];
    let Some(first_direction) = first_direction else {
        return border;
    };
    let (mut at, mut direction) = (neighbour(start, first_direction), first_direction);
    loop {
        // Search clockwise from the neighbour after the one we came from.
        let from = (direction + 6) % 8;
        let next = (0..8)
            .map(|k| (from + k) % 8)
            .find(|&d| grid[neighbour(at, d)] != 0)
            .expect("a pixel reached by a step has that step's pixel as a neighbour");
        if at == start && next == first_direction {
            return border;
        }
        // A pixel stays where the direction it leaves by differs from the one it came by.
        if next != direction {
            border.push(point(at));
        }
        at = neighbour(at, next);
        direction = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> InstanceMask {
        InstanceMask {
            left: 10,
            top: 20,
            width: rows[0].len(),
            height: rows.len(),
            pixels: rows
                .iter()
                .flat_map(|r| r.chars().map(|c| c == '#'))
                .collect(),
        }
    }

    #[test]
    fn a_rectangle_is_its_four_corner_pixels() {
        let m = mask(&["....", ".###", ".###", "...."]);
        assert_eq!(
            m.outlines(),
            vec![vec![[11.0, 21.0], [13.0, 21.0], [13.0, 22.0], [11.0, 22.0]]]
        );
        assert_eq!(m.area(), 6);
        assert!(m.contains(11, 21) && !m.contains(10, 21) && !m.contains(14, 21));
    }

    #[test]
    fn parts_are_traced_apart_and_a_part_inside_a_hole_is_left_out() {
        let m = mask(&[
            "#####..#", //
            "#...#...", //
            "#.#.#...", //
            "#...#...", //
            "#####...",
        ]);
        let outlines = m.outlines();
        assert_eq!(outlines.len(), 2, "{outlines:?}");
        assert_eq!(
            outlines[0],
            vec![[10.0, 20.0], [14.0, 20.0], [14.0, 24.0], [10.0, 24.0]]
        );
        assert_eq!(outlines[1], vec![[17.0, 20.0]]);
    }

    #[test]
    fn diagonal_runs_keep_their_ends() {
        let m = mask(&["#...", ".#..", "..#.", "...#"]);
        assert_eq!(m.outlines(), vec![vec![[10.0, 20.0], [13.0, 23.0]]]);
    }

    /// The top-left pixel of each part a pixel flood fill finds external: 8-connected parts
    /// with a 4-neighbour in the background 4-connected to the region's edge.
    fn external_parts_by_flood_fill(m: &InstanceMask) -> Vec<[f32; 2]> {
        let (w, h) = (m.width as isize, m.height as isize);
        let set = |x: isize, y: isize| {
            (0..w).contains(&x) && (0..h).contains(&y) && m.pixels[(y * w + x) as usize]
        };
        let fill = |seeds: Vec<(isize, isize)>, value: bool, steps: &[(isize, isize)]| {
            let mut seen = std::collections::HashSet::new();
            let mut stack = seeds;
            while let Some((x, y)) = stack.pop() {
                if x < -1 || y < -1 || x > w || y > h || set(x, y) != value || !seen.insert((x, y))
                {
                    continue;
                }
                stack.extend(steps.iter().map(|(dx, dy)| (x + dx, y + dy)));
            }
            seen
        };
        let four = [(1, 0), (-1, 0), (0, 1), (0, -1)];
        let eight = [
            (1, 0),
            (-1, 0),
            (0, 1),
            (0, -1),
            (1, 1),
            (1, -1),
            (-1, 1),
            (-1, -1),
        ];
        let outside = fill(vec![(-1, -1)], false, &four);
        let mut claimed = std::collections::HashSet::new();
        let mut starts = Vec::new();
        for y in 0..h {
            for x in 0..w {
                if !set(x, y) || claimed.contains(&(x, y)) {
                    continue;
                }
                let part = fill(vec![(x, y)], true, &eight);
                let external = part.iter().any(|&(px, py)| {
                    four.iter()
                        .any(|(dx, dy)| outside.contains(&(px + dx, py + dy)))
                });
                if external {
                    starts.push([(x + m.left as isize) as f32, (y + m.top as isize) as f32]);
                }
                claimed.extend(part);
            }
        }
        starts
    }

    #[test]
    fn noisy_masks_trace_the_parts_a_flood_fill_finds() {
        use rand::{Rng, SeedableRng};
        for (seed, density) in [(1, 0.2), (2, 0.45), (3, 0.55), (4, 0.8)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (width, height) = (37, 23);
            let m = InstanceMask {
                left: 5,
                top: 7,
                width,
                height,
                pixels: (0..width * height)
                    .map(|_| rng.random_bool(density))
                    .collect(),
            };
            let starts: Vec<[f32; 2]> = m.outlines().iter().map(|outline| outline[0]).collect();
            assert_eq!(starts, external_parts_by_flood_fill(&m), "seed {seed}");
        }
    }

    #[test]
    fn an_empty_region_has_no_outlines() {
        let m = InstanceMask {
            left: 3,
            top: 4,
            width: 0,
            height: 5,
            pixels: Vec::new(),
        };
        assert!(m.outlines().is_empty());
    }
}
