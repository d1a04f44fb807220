//! What the app remembers between runs (eframe storage): the model, thresholds, filters,
//! overlays, tracking, counting regions and the last source.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::session::InferenceKnobs;
use crate::inference::detector::InputSize;
use crate::inference::postprocess::NmsOptions;
use crate::inference::preprocess::Canvas;
use crate::track::TRACKING_CONF;

use crate::compute::device::DeviceChoice;
use crate::count::Region;
use crate::output::attention_maps::Colormap;
use crate::source::{CameraMode, RtspTransport, StreamUrl};
use crate::track::TrackerConfig;
use crate::weights::bundled::Layer9Choice;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub weights: Option<PathBuf>,
    pub layer9: Layer9Choice,
    pub device: DeviceChoice,
    pub imgsz: usize,
    pub conf: f32,
    pub iou: f32,
    /// Class ids whose boxes are hidden.
    pub hidden_classes: BTreeSet<usize>,
    /// Keys of the FocalModulation maps laid over the video (`gate-level-0`, `modulator`…).
    pub overlays: BTreeSet<String>,
    pub colormap: Colormap,
    pub opacity: f32,
    pub show_labels: bool,
    /// Counters, timings and the FPS plot in the side panel.
    pub show_performance: bool,
    /// The last source opened (a stream without its password).
    pub last_source: Option<String>,
    /// Streams opened lately, newest first, without their passwords.
    pub recent_streams: Vec<String>,
    pub rtsp_transport: RtspTransport,
    /// Where recordings and snapshots go; the platform's video folder when unset.
    pub record_dir: Option<PathBuf>,
    pub looping: bool,
    pub camera_mode: Option<CameraMode>,
    /// Follow objects across frames (ByteTrack), with these settings.
    pub track: bool,
    pub tracker: TrackerConfig,
    /// How two models' boxes are shown when a second one runs.
    pub compare_layout: CompareLayout,
    /// YOLO26's one-to-one head and its top-k instead of NMS.
    pub nms_free: bool,
    /// Counting lines and zones per source size ([`size_key`]), in that size's pixels: a
    /// camera at 1280×720 and a clip at 640×360 each keep their own.
    pub regions: BTreeMap<String, Vec<Region>>,
}

/// "1280x720", the key of a source size's counting regions.
pub fn size_key(width: u32, height: u32) -> String {
    format!("{width}x{height}")
}

/// Two models on one frame: two pictures side by side, or both box sets on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareLayout {
    Split,
    Overlay,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            weights: None,
            layer9: Layer9Choice::Bundled,
            device: DeviceChoice::Auto,
            imgsz: 640,
            conf: 0.25,
            iou: 0.7,
            hidden_classes: BTreeSet::new(),
            overlays: BTreeSet::new(),
            colormap: Colormap::Turbo,
            opacity: 0.5,
            show_labels: true,
            show_performance: true,
            last_source: None,
            recent_streams: Vec::new(),
            rtsp_transport: RtspTransport::Tcp,
            record_dir: None,
            looping: false,
            camera_mode: None,
            track: false,
            tracker: TrackerConfig::default(),
            compare_layout: CompareLayout::Split,
            nms_free: false,
            regions: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// What the inference thread reads before each frame, from these settings.
    pub fn knobs(&self) -> InferenceKnobs {
        InferenceKnobs {
            nms: NmsOptions {
                // With tracking, faint detections feed the tracker's second association.
                conf: if self.track { TRACKING_CONF } else { self.conf },
                iou: self.iou,
                nms_free: self.nms_free,
                ..NmsOptions::default()
            },
            input: InputSize {
                imgsz: self.imgsz,
                canvas: Canvas::Minimal,
            },
            taps: true,
            track: self.track.then_some(self.tracker),
            regions: self.regions.clone(),
        }
    }

    /// Put `url` (without its secrets) first in the recent streams.
    pub fn remember_stream(&mut self, url: &StreamUrl) {
        let remembered = url.without_secrets();
        self.recent_streams.retain(|recent| *recent != remembered);
        self.recent_streams.insert(0, remembered);
        self.recent_streams.truncate(RECENT_STREAMS);
    }

    /// The counting regions of a `width`×`height` source.
    pub fn regions_for(&self, width: u32, height: u32) -> &[Region] {
        self.regions
            .get(&size_key(width, height))
            .map_or(&[], Vec::as_slice)
    }
}

/// How many recent streams the Source menu offers.
const RECENT_STREAMS: usize = 10;

/// Inference sizes offered in the UI (multiples of the model's stride 32).
pub const IMAGE_SIZES: [usize; 6] = [256, 320, 416, 480, 640, 960];
