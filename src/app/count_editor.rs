//! Counting regions on the video: *Count ▸ Add line / Add zone*, then clicks on the
//! picture place the points (in source pixels, whatever the window's size); any point can
//! be dragged; each region is drawn with its name and IN/OUT counts.

use egui::{Color32, CursorIcon, FontId, Key, Painter, Pos2, Rect, Response, Stroke, Ui};

use super::video_view::{Picture, colour32};
use crate::count::{Region, RegionCount};
use crate::output::annotate::{REGION_COLOUR, region_label};

/// How near (screen points) the pointer must be to a region's point to grab it, or to the
/// first corner of a zone being drawn to close it.
const GRAB_RADIUS: f32 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    Line,
    Zone,
}

impl RegionKind {
    fn word(self) -> &'static str {
        match self {
            Self::Line => "line",
            Self::Zone => "zone",
        }
    }
}

/// The region being drawn or the point being dragged.
#[derive(Default)]
pub struct CountEditor {
    /// The region being drawn and the points placed so far, in source pixels.
    drawing: Option<(RegionKind, Vec<[f32; 2]>)>,
    /// The point being dragged: its region's index and its own.
    dragging: Option<(usize, usize)>,
}

/// "line 1", "zone 2", …: the first number of that kind not in use.
fn next_name(regions: &[Region], kind: RegionKind) -> String {
    (1..)
        .map(|n| format!("{} {n}", kind.word()))
        .find(|name| regions.iter().all(|r| &r.name != name))
        .expect("a free number")
}

/// The region point within [`GRAB_RADIUS`] of `at`, nearest first: (region, point).
fn point_at(regions: &[Region], picture: Picture, at: Pos2) -> Option<(usize, usize)> {
    regions
        .iter()
        .enumerate()
        .flat_map(|(r, region)| {
            region
                .points
                .iter()
                .enumerate()
                .map(move |(p, &[x, y])| ((r, p), picture.to_screen(x, y).distance(at)))
        })
        .filter(|&(_, distance)| distance <= GRAB_RADIUS)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(found, _)| found)
}

impl CountEditor {
    /// Place a new region's points with the next clicks on the picture.
    pub fn start(&mut self, kind: RegionKind) {
        self.drawing = Some((kind, Vec::new()));
        self.dragging = None;
    }

    /// Whether the pointer is placing or dragging points (so a click is not a box's).
    pub fn is_busy(&self) -> bool {
        self.drawing.is_some() || self.dragging.is_some()
    }

    /// The pointer and keys on the picture: the points of the region being drawn, or a
    /// dragged point. The regions as they are to be, when they changed.
    pub fn interact(
        &mut self,
        ui: &Ui,
        response: &Response,
        picture: Picture,
        regions: &[Region],
        (width, height): (u32, u32),
    ) -> Option<Vec<Region>> {
        let in_frame = |at: Pos2| {
            let (x, y) = picture.to_image(at);
            [x.clamp(0.0, width as f32), y.clamp(0.0, height as f32)]
        };
        if let Some((kind, points)) = &mut self.drawing {
            ui.ctx().set_cursor_icon(CursorIcon::Crosshair);
            let kind = *kind;
            let (escape, backspace, enter) = ui.input(|i| {
                (
                    i.key_pressed(Key::Escape),
                    i.key_pressed(Key::Backspace),
                    i.key_pressed(Key::Enter),
                )
            });
            if escape {
                self.drawing = None;
                return None;
            }
            if backspace {
                points.pop();
            }
            let mut finished = kind == RegionKind::Zone && enter && points.len() >= 3;
            if response.clicked()
                && let Some(at) = response.interact_pointer_pos()
            {
                let [fx, fy] = points.first().copied().unwrap_or([f32::NAN; 2]);
                let closes = kind == RegionKind::Zone
                    && points.len() >= 3
                    && picture.to_screen(fx, fy).distance(at) <= GRAB_RADIUS;
                if closes {
                    finished = true;
                } else {
                    points.push(in_frame(at));
                }
            }
            finished |= kind == RegionKind::Line && points.len() == 2;
            if !finished {
                return None;
            }
            return match Region::new(next_name(regions, kind), points.clone()) {
                Ok(region) => {
                    self.drawing = None;
                    Some(regions.iter().cloned().chain([region]).collect())
                }
                // A line's second click on its first point, or a zone with no area yet:
                // keep drawing.
                Err(_) => {
                    if kind == RegionKind::Line {
                        points.pop();
                    }
                    None
                }
            };
        }

        if response.drag_started()
            && let Some(origin) = ui.input(|i| i.pointer.press_origin())
        {
            self.dragging = point_at(regions, picture, origin);
        }
        if let Some(hover) = response.hover_pos()
            && point_at(regions, picture, hover).is_some()
        {
            ui.ctx().set_cursor_icon(CursorIcon::Grab);
        }
        let (r, p) = self.dragging?;
        if response.drag_stopped() || !response.dragged() {
            self.dragging = None;
        }
        ui.ctx().set_cursor_icon(CursorIcon::Grabbing);
        let at = response.interact_pointer_pos()?;
        let region = regions.get(r)?;
        let mut points = region.points.clone();
        *points.get_mut(p)? = in_frame(at);
        // A move that would leave the region without length or area is not taken.
        let moved = Region::new(region.name.clone(), points).ok()?;
        let mut edited = regions.to_vec();
        edited[r] = moved;
        Some(edited)
    }

    /// Every region with its points and counts, then the region being drawn and a hint.
    pub fn paint(
        &self,
        painter: &Painter,
        picture: Picture,
        regions: &[Region],
        counts: &[RegionCount],
        pointer: Option<Pos2>,
    ) {
        let colour = colour32(REGION_COLOUR);
        let stroke = Stroke::new(3.0, colour);
        for region in regions {
            let points: Vec<Pos2> = region
                .points
                .iter()
                .map(|&[x, y]| picture.to_screen(x, y))
                .collect();
            if region.is_line() {
                painter.line_segment([points[0], points[1]], stroke);
            } else {
                painter.add(egui::Shape::closed_line(points.clone(), stroke));
            }
            for &point in &points {
                painter.circle(point, 4.0, colour, Stroke::new(1.0, Color32::WHITE));
            }
            let label = match counts.iter().find(|c| c.region == region.name) {
                Some(count) => region_label(count),
                None => region_label(&RegionCount {
                    region: region.name.clone(),
                    ..RegionCount::default()
                }),
            };
            let galley = painter.layout_no_wrap(label, FontId::proportional(13.0), Color32::BLACK);
            let at = points[0] + egui::vec2(6.0, -galley.size().y - 6.0);
            painter.rect_filled(
                Rect::from_min_size(at, galley.size() + egui::vec2(6.0, 2.0)),
                2.0,
                colour,
            );
            painter.galley(at + egui::vec2(3.0, 1.0), galley, Color32::BLACK);
        }
        let Some((kind, points)) = &self.drawing else {
            return;
        };
        let mut placed: Vec<Pos2> = points
            .iter()
            .map(|&[x, y]| picture.to_screen(x, y))
            .collect();
        for &point in &placed {
            painter.circle_filled(point, 4.0, colour);
        }
        placed.extend(pointer.filter(|p| picture.rect.contains(*p)));
        painter.add(egui::Shape::line(placed, Stroke::new(2.0, colour)));
        let hint = match kind {
            RegionKind::Line => "Add line: click its two ends. Esc cancels.",
            RegionKind::Zone => {
                "Add zone: click its corners, then the first one again (or press Enter) to \
                 close it. Backspace takes back a corner, Esc cancels."
            }
        };
        let galley = painter.layout(
            hint.into(),
            FontId::proportional(14.0),
            Color32::WHITE,
            (picture.rect.width() - 24.0).max(120.0),
        );
        let at = picture.rect.center_top() + egui::vec2(-galley.size().x / 2.0, 10.0);
        painter.rect_filled(
            Rect::from_min_size(at, galley.size()).expand(5.0),
            3.0,
            Color32::from_black_alpha(200),
        );
        painter.galley(at, galley, Color32::WHITE);
    }
}
