//! Loading weights (and downloading Ultralytics' yolo11n.pt) off the UI thread, and
//! swapping the loaded model into the inference thread's slot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::compute::device::ComputeDevice;
use crate::inference::detector::{Detector, InputSize};
use crate::model::ModelInfo;
use crate::weights::MeasuredScores;
use crate::weights::bundled::{Layer9Choice, Layer9Origin, load_with_layer9};
use crate::weights::download::download;

use super::session::ModelSlot;

/// The loaded model, as the UI describes it.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    pub path: PathBuf,
    pub info: ModelInfo,
    /// Where its layer 9 came from.
    pub layer9: Layer9Origin,
    /// What was measured of this model's FocalModulation layer against its stock teacher.
    pub scores: Option<MeasuredScores>,
}

impl ModelSummary {
    /// The file and its layer 9, briefly: `yolo11n.pt, FocalModulation`.
    pub fn caption(&self) -> String {
        let layer9 = if self.info.has_focal() {
            "FocalModulation"
        } else {
            "SPPF"
        };
        let file = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        format!("{file}, {layer9}")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ModelStatus {
    /// No weights chosen yet.
    Missing,
    Downloading {
        received: u64,
        total: Option<u64>,
    },
    Loading(PathBuf),
    Ready,
    Failed(String),
}

enum Message {
    Progress(u64, Option<u64>),
    Downloaded(PathBuf),
    Loaded(Box<(Detector, ModelSummary)>),
    Failed(String),
}

pub struct ModelManager {
    pub slot: ModelSlot,
    pub status: ModelStatus,
    pub summary: Option<ModelSummary>,
    device: ComputeDevice,
    messages: Option<Receiver<Message>>,
}

impl ModelManager {
    pub fn new(device: ComputeDevice) -> Self {
        Self {
            slot: ModelSlot::default(),
            status: ModelStatus::Missing,
            summary: None,
            device,
            messages: None,
        }
    }

    pub fn device(&self) -> &ComputeDevice {
        &self.device
    }

    pub fn is_busy(&self) -> bool {
        matches!(
            self.status,
            ModelStatus::Downloading { .. } | ModelStatus::Loading(_)
        )
    }

    /// Load `path` on a background thread; the current model keeps running until then.
    pub fn load(
        &mut self,
        path: &Path,
        layer9: &Layer9Choice,
        repaint: impl Fn() + Send + 'static,
    ) {
        let (tx, rx) = channel();
        self.messages = Some(rx);
        self.status = ModelStatus::Loading(path.to_path_buf());
        let (path, layer9, device) = (path.to_path_buf(), layer9.clone(), self.device.clone());
        std::thread::spawn(move || {
            let _ = tx.send(load(&path, &layer9, &device));
            repaint();
        });
    }

    /// Drop the model: the inference thread runs without it from its next frame.
    pub fn unload(&mut self) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = None;
        self.messages = None;
        self.summary = None;
        self.status = ModelStatus::Missing;
    }

    /// Download `url` to `destination` on a background thread; the UI then loads it.
    pub fn download(
        &mut self,
        url: &str,
        destination: &Path,
        repaint: impl Fn() + Send + Sync + 'static,
    ) {
        let (tx, rx) = channel();
        self.messages = Some(rx);
        self.status = ModelStatus::Downloading {
            received: 0,
            total: None,
        };
        let (url, destination) = (url.to_string(), destination.to_path_buf());
        std::thread::spawn(move || {
            let progress_tx: Sender<Message> = tx.clone();
            let result = download(&url, &destination, |received, total| {
                let _ = progress_tx.send(Message::Progress(received, total));
                repaint();
            });
            let _ = tx.send(match result {
                Ok(()) => Message::Downloaded(destination),
                Err(err) => Message::Failed(err.to_string()),
            });
            repaint();
        });
    }

    /// Take in the background thread's news. Returns the path of a finished download,
    /// which the caller then loads with its own settings.
    pub fn poll(&mut self) -> Option<PathBuf> {
        let messages: Vec<Message> = self
            .messages
            .as_ref()
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default();
        let mut downloaded = None;
        for message in messages {
            match message {
                Message::Progress(received, total) => {
                    self.status = ModelStatus::Downloading { received, total }
                }
                Message::Downloaded(path) => downloaded = Some(path),
                Message::Loaded(loaded) => {
                    let (detector, summary) = *loaded;
                    *self.slot.write().unwrap_or_else(|e| e.into_inner()) =
                        Some(Arc::new(detector));
                    self.summary = Some(summary);
                    self.status = ModelStatus::Ready;
                }
                Message::Failed(reason) => self.status = ModelStatus::Failed(reason),
            }
        }
        downloaded
    }
}

fn load(path: &Path, layer9: &Layer9Choice, device: &ComputeDevice) -> Message {
    let loaded = load_with_layer9(path, layer9)
        .map_err(|e| e.to_string())
        .and_then(|(weights, layer9)| {
            let detector =
                Detector::from_weights(&weights, device.device.clone(), InputSize::default())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            let summary = ModelSummary {
                path: path.to_path_buf(),
                info: detector.info().clone(),
                layer9,
                scores: weights.scores.clone(),
            };
            Ok((detector, summary))
        });
    match loaded {
        Ok(loaded) => Message::Loaded(Box::new(loaded)),
        Err(reason) => Message::Failed(reason),
    }
}
