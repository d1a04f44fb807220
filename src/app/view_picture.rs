//! The view as a picture at the source's resolution, drawn on the CPU: what recordings and
//! snapshots hold. The same content as the window's view (boxes and labels, track IDs and
//! trails, counting regions and their counts, the overlays as toggled, hidden classes
//! left out), drawn with `output::annotate` as `run --save` draws it.

use image::RgbImage;

use super::session::Processed;
use super::settings::Settings;
use crate::count::{Region, RegionCount};
use crate::inference::postprocess::Detection;
use crate::inference::preprocess::Letterbox;
use crate::output::annotate::{
    draw_detections, draw_regions, draw_tracks, draw_trails, draw_unlabelled,
};
use crate::output::attention_maps::{Colormap, Heatmap, overlay};
use crate::track::TrackedObject;

/// What the view shows of one frame, taken from the UI thread to be drawn elsewhere.
pub struct ViewFrame {
    pub image: RgbImage,
    /// The frame's presentation time, seconds.
    pub pts: f64,
    detections: Vec<Detection>,
    tracks: Option<Vec<TrackedObject>>,
    overlays: Vec<Heatmap>,
    letterbox: Option<Letterbox>,
    regions: Vec<Region>,
    counts: Vec<RegionCount>,
    colormap: Colormap,
    opacity: f32,
    labels: bool,
}

impl ViewFrame {
    /// What the view shows of `processed` with `settings`.
    pub fn of(processed: &Processed, settings: &Settings) -> Self {
        let shown = |d: &Detection| !settings.hidden_classes.contains(&d.class);
        let (width, height) = processed.frame.image.dimensions();
        Self {
            image: processed.frame.image.clone(),
            pts: processed.frame.pts,
            detections: processed
                .detections
                .iter()
                .filter(|d| shown(d))
                .cloned()
                .collect(),
            tracks: processed.tracks.as_ref().map(|tracks| {
                tracks
                    .objects
                    .iter()
                    .filter(|o| shown(&o.detection))
                    .cloned()
                    .collect()
            }),
            overlays: processed
                .maps
                .iter()
                .filter(|m| settings.overlays.contains(&m.key()))
                .cloned()
                .collect(),
            letterbox: processed.letterbox,
            regions: settings.regions_for(width, height).to_vec(),
            counts: processed
                .counted
                .as_ref()
                .map(|c| c.counts.clone())
                .unwrap_or_default(),
            colormap: settings.colormap,
            opacity: settings.opacity,
            labels: settings.show_labels,
        }
    }

    /// The picture: overlays under the boxes, as on screen.
    pub fn render(&self, names: &[String]) -> RgbImage {
        let mut picture = match &self.letterbox {
            Some(letterbox) => self.overlays.iter().fold(self.image.clone(), |under, map| {
                overlay(&under, map, letterbox, self.colormap, self.opacity)
            }),
            None => self.image.clone(),
        };
        match (&self.tracks, self.labels) {
            (Some(objects), true) => draw_tracks(&mut picture, objects, names),
            (Some(objects), false) => {
                draw_trails(&mut picture, objects);
                let boxes: Vec<Detection> = objects.iter().map(|o| o.detection.clone()).collect();
                draw_unlabelled(&mut picture, &boxes);
            }
            (None, true) => draw_detections(&mut picture, &self.detections, names),
            (None, false) => draw_unlabelled(&mut picture, &self.detections),
        }
        if !self.regions.is_empty() {
            draw_regions(&mut picture, &self.regions, &self.counts);
        }
        picture
    }
}
