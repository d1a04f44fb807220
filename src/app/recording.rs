//! The app's Record and Snapshot: starting and finishing a recording of the view, saving
//! the frame on screen, and what the status bar says of them.

use std::path::PathBuf;

use super::FocalYoloApp;
use super::recorder::{self, RecordError, Recorded, Recorder, default_folder};
use super::session::Processed;
use super::settings::Settings;
use super::status_bar::Note;
use super::view_picture::ViewFrame;
use crate::output::report::{FrameRecord, count_records, records, tracked_records};

impl FocalYoloApp {
    /// Where recordings and snapshots go.
    pub fn record_folder(&self) -> PathBuf {
        self.settings
            .record_dir
            .clone()
            .unwrap_or_else(default_folder)
    }

    /// The recording under way, if any.
    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }

    /// What the status bar says about the last recording or snapshot.
    pub fn record_note(&self) -> Option<&Note> {
        self.status_bar.note.as_ref()
    }

    /// Record the view from the next frame on, at the source's resolution and frame rate
    /// (a frame must be on screen).
    pub fn start_recording(&mut self) -> Result<(), RecordError> {
        let Some(current) = &self.current else {
            return Ok(());
        };
        let rate = self
            .session
            .as_ref()
            .and_then(|s| s.frame_rate)
            .unwrap_or(25.0);
        let started = Recorder::start(
            &self.record_folder(),
            current.frame.image.dimensions(),
            rate,
            self.class_names(),
        );
        match started {
            Ok(mut recorder) => {
                recorder.record(ViewFrame::of(current, &self.settings));
                self.status_bar.note = Some(Note::info(format!(
                    "recording to {}",
                    recorder.path().display()
                )));
                self.recorder = Some(recorder);
                Ok(())
            }
            Err(err) => {
                self.status_bar.note = Some(Note::error(format!("cannot record: {err}")));
                Err(err)
            }
        }
    }

    /// Finish the recording under way, if any (`why` says what stopped it when the user
    /// did not); what was saved.
    pub fn stop_recording(&mut self, why: &str) -> Option<Result<Recorded, RecordError>> {
        let recorder = self.recorder.take()?;
        let skipped = match recorder.skipped() {
            0 => String::new(),
            n => format!(", {n} frames skipped while the encoder was busy"),
        };
        let finished = recorder.finish();
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(" ({why})")
        };
        self.status_bar.note = Some(match &finished {
            Ok(saved) => Note::info(format!(
                "recording saved: {} ({:.1} s{skipped}){why}",
                saved.path.display(),
                saved.seconds
            )),
            Err(err) => Note::error(format!("the recording failed: {err}{why}")),
        });
        Some(finished)
    }

    /// Save the frame on screen as the view shows it (PNG) with its detections (JSON);
    /// the PNG's path.
    pub fn snapshot(&mut self) -> Option<Result<PathBuf, RecordError>> {
        let current = self.current.as_ref()?;
        let names = self.class_names();
        let view = ViewFrame::of(current, &self.settings);
        let saved = recorder::snapshot(
            &self.record_folder(),
            &view,
            &frame_record(current, &self.settings, &names),
            &names,
        );
        self.status_bar.note = Some(match &saved {
            Ok(png) => Note::info(format!("snapshot saved: {}", png.display())),
            Err(err) => Note::error(format!("cannot save the snapshot: {err}")),
        });
        Some(saved)
    }
}

/// The JSON of a snapshot: the frame and the boxes the view shows of it, with track IDs
/// and counts as `run --json` writes them.
fn frame_record(processed: &Processed, settings: &Settings, names: &[String]) -> FrameRecord {
    let shown = |class: usize| !settings.hidden_classes.contains(&class);
    let detections = match &processed.tracks {
        Some(tracks) => tracked_records(&tracks.objects, names),
        None => records(&processed.detections, names),
    };
    let (counts, crossings) = processed
        .counted
        .as_ref()
        .map(|counted| count_records(counted, names))
        .unzip();
    FrameRecord {
        frame: processed.frame.index,
        pts: processed.frame.pts,
        width: processed.frame.image.width(),
        height: processed.frame.image.height(),
        detections: detections.into_iter().filter(|d| shown(d.class)).collect(),
        detections_b: None,
        counts,
        crossings,
    }
}
