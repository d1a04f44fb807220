//! Recording the view to MP4, and snapshots (PNG beside a JSON of its detections), in the
//! recording folder, named by local date and time.
//!
//! A recording is drawn and encoded on its own thread, so the window never waits for
//! ffmpeg. The MP4 runs at the source's frame rate on the frames' own times: each frame is
//! held until the next one's time (frames the model skipped, a pause), so the video lasts
//! as long as what was recorded.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use image::RgbImage;
use thiserror::Error;

use super::view_picture::ViewFrame;
use crate::output::report::FrameRecord;
use crate::output::video_writer::{VideoWriteError, VideoWriter};

#[derive(Debug, Error)]
pub enum RecordError {
    #[error("cannot create the recording folder {path}: {reason}")]
    Folder { path: PathBuf, reason: String },
    #[error(transparent)]
    Video(#[from] VideoWriteError),
    #[error("cannot write {path}: {reason}")]
    Snapshot { path: PathBuf, reason: String },
    #[error("the recording thread stopped unexpectedly")]
    Lost,
}

/// Frames waiting to be drawn and encoded; more arriving while it is full are skipped
/// (the frame before is then held longer).
const QUEUE: usize = 8;

/// A jump in frame times longer than this (a seek, a reconnection) is not waited out in
/// the video: the next frame follows one frame later.
const LONGEST_HOLD: f64 = 5.0;

/// The platform's video folder with a `focalyolo` folder in it (`~/Videos/focalyolo`), else
/// `recordings` in the working folder.
pub fn default_folder() -> PathBuf {
    dirs::video_dir()
        .or_else(|| dirs::home_dir().map(|home| home.join("Videos")))
        .map_or_else(
            || PathBuf::from("recordings"),
            |videos| videos.join("focalyolo"),
        )
}

/// `folder/focalyolo-2026-12-01_18-31-16.EXT`, created if missing; `-2`, `-3`… added when
/// that name is taken (two snapshots in one second).
fn new_file(folder: &Path, extension: &str) -> Result<PathBuf, RecordError> {
    std::fs::create_dir_all(folder).map_err(|e| RecordError::Folder {
        path: folder.to_path_buf(),
        reason: e.to_string(),
    })?;
    let stem = chrono::Local::now()
        .format("focalyolo-%Y-%m-%d_%H-%M-%S")
        .to_string();
    let mut path = folder.join(format!("{stem}.{extension}"));
    let mut copy = 1;
    while path.exists() {
        copy += 1;
        path = folder.join(format!("{stem}-{copy}.{extension}"));
    }
    Ok(path)
}

/// A recording saved.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub path: PathBuf,
    /// The video's length.
    pub seconds: f64,
}

/// A recording under way.
pub struct Recorder {
    path: PathBuf,
    started: Instant,
    frames: Option<SyncSender<ViewFrame>>,
    writer: Option<JoinHandle<Result<Recorded, RecordError>>>,
    skipped: u64,
}

impl Recorder {
    /// Start a `width`×`height` MP4 at `frame_rate` in `folder`; `names` label the boxes.
    pub fn start(
        folder: &Path,
        (width, height): (u32, u32),
        frame_rate: f64,
        names: Vec<String>,
    ) -> Result<Self, RecordError> {
        let path = new_file(folder, "mp4")?;
        let video = VideoWriter::create_realtime(&path, width, height, frame_rate)?;
        let (frames, queue) = sync_channel(QUEUE);
        let recorded = path.clone();
        let writer = std::thread::Builder::new()
            .name("recording".into())
            .spawn(move || encode(queue, video, frame_rate, &names, recorded))
            .map_err(|_| RecordError::Lost)?;
        Ok(Self {
            path,
            started: Instant::now(),
            frames: Some(frames),
            writer: Some(writer),
            skipped: 0,
        })
    }

    /// Add what the view shows now.
    pub fn record(&mut self, frame: ViewFrame) {
        if let Some(frames) = &self.frames
            && let Err(TrySendError::Full(_)) = frames.try_send(frame)
        {
            self.skipped += 1;
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Time since the recording started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Frames the encoder was too busy to take.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Encode what is queued and close the file.
    pub fn finish(mut self) -> Result<Recorded, RecordError> {
        self.close()
    }

    fn close(&mut self) -> Result<Recorded, RecordError> {
        drop(self.frames.take());
        let writer = self.writer.take().ok_or(RecordError::Lost)?;
        writer.join().map_err(|_| RecordError::Lost)?
    }
}

impl Drop for Recorder {
    /// The window closed mid-recording: the file is still finished, playable.
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.close();
        }
    }
}

/// The recording thread: draw each frame and write it for as long as it lasts.
fn encode(
    queue: Receiver<ViewFrame>,
    mut video: VideoWriter,
    frame_rate: f64,
    names: &[String],
    path: PathBuf,
) -> Result<Recorded, RecordError> {
    let mut timeline = Timeline::new(frame_rate);
    let mut write = |picture: &RgbImage| video.write(picture);
    for frame in queue {
        timeline.push(frame.render(names), frame.pts, &mut write)?;
    }
    let seconds = timeline.finish(&mut write)?;
    video.finish()?;
    Ok(Recorded { path, seconds })
}

/// Frames at their times on a constant-rate video: each is written as many times as it
/// lasts.
struct Timeline {
    frame_rate: f64,
    /// The last frame and its time: written once the next one says how long it lasts.
    held: Option<(RgbImage, f64)>,
    /// Where the held frame starts on the video, seconds.
    seconds: f64,
    written: u64,
}

impl Timeline {
    fn new(frame_rate: f64) -> Self {
        Self {
            frame_rate: if frame_rate > 0.0 { frame_rate } else { 25.0 },
            held: None,
            seconds: 0.0,
            written: 0,
        }
    }

    fn push(
        &mut self,
        picture: RgbImage,
        pts: f64,
        video: &mut impl FnMut(&RgbImage) -> Result<(), VideoWriteError>,
    ) -> Result<(), RecordError> {
        if let Some((previous, previous_pts)) = self.held.take() {
            let lasted = pts - previous_pts;
            self.seconds += if lasted > 0.0 && lasted < LONGEST_HOLD {
                lasted
            } else {
                1.0 / self.frame_rate
            };
            self.write_until_now(&previous, video)?;
        }
        self.held = Some((picture, pts));
        Ok(())
    }

    /// Write `picture` until the video reaches `seconds`.
    fn write_until_now(
        &mut self,
        picture: &RgbImage,
        video: &mut impl FnMut(&RgbImage) -> Result<(), VideoWriteError>,
    ) -> Result<(), RecordError> {
        let due = (self.seconds * self.frame_rate).round() as u64;
        while self.written < due {
            video(picture)?;
            self.written += 1;
        }
        Ok(())
    }

    /// The last frame for one frame's time; the video's length.
    fn finish(
        mut self,
        video: &mut impl FnMut(&RgbImage) -> Result<(), VideoWriteError>,
    ) -> Result<f64, RecordError> {
        if let Some((last, _)) = self.held.take() {
            self.seconds += 1.0 / self.frame_rate;
            self.write_until_now(&last, video)?;
        }
        Ok(self.written as f64 / self.frame_rate)
    }
}

/// Save `frame` as the view shows it (PNG) beside `record` (its detections, JSON) in
/// `folder`; the PNG's path.
pub fn snapshot(
    folder: &Path,
    frame: &ViewFrame,
    record: &FrameRecord,
    names: &[String],
) -> Result<PathBuf, RecordError> {
    let png = new_file(folder, "png")?;
    let failed = |path: &Path, reason: String| RecordError::Snapshot {
        path: path.to_path_buf(),
        reason,
    };
    frame
        .render(names)
        .save(&png)
        .map_err(|e| failed(&png, e.to_string()))?;
    let json = png.with_extension("json");
    let text = serde_json::to_string_pretty(record).map_err(|e| failed(&json, e.to_string()))?;
    std::fs::write(&json, text).map_err(|e| failed(&json, e.to_string()))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames a timeline writes for frames shown at `times`, each a 1×1 picture whose
    /// value is its place in `times`; and the length it reports.
    fn written(frame_rate: f64, times: &[f64]) -> (Vec<u8>, f64) {
        let mut timeline = Timeline::new(frame_rate);
        let mut out = Vec::new();
        let mut write = |picture: &RgbImage| {
            out.push(picture.get_pixel(0, 0)[0]);
            Ok(())
        };
        for (i, &pts) in times.iter().enumerate() {
            let picture = RgbImage::from_pixel(1, 1, image::Rgb([i as u8; 3]));
            timeline.push(picture, pts, &mut write).unwrap();
        }
        let seconds = timeline.finish(&mut write).unwrap();
        (out, seconds)
    }

    #[test]
    fn every_frame_of_a_10_fps_clip_from_0_to_3_s_makes_31_frames_and_3_1_s() {
        let times: Vec<f64> = (0..=30).map(|i| 100.0 + i as f64 / 10.0).collect();
        let (frames, seconds) = written(10.0, &times);
        assert_eq!(frames, (0..=30).collect::<Vec<u8>>());
        assert_eq!(seconds, 3.1);
    }

    #[test]
    fn a_frame_the_model_skipped_is_filled_by_the_one_before_it() {
        // Shown at 0.0, 0.1, 0.4 (0.2 and 0.3 skipped) and 0.5: the video still covers
        // 0.0 to 0.6, the frame of 0.1 held for three frames.
        let (frames, seconds) = written(10.0, &[0.0, 0.1, 0.4, 0.5]);
        assert_eq!(frames, [0, 1, 1, 1, 2, 3]);
        assert_eq!(seconds, 0.6);
    }

    #[test]
    fn a_jump_back_or_past_the_longest_hold_lasts_one_frame() {
        // A seek back, then a reconnection 60 s later.
        let (frames, seconds) = written(25.0, &[10.0, 10.04, 2.0, 62.0]);
        assert_eq!(frames, [0, 1, 2, 3]);
        assert_eq!(seconds, 4.0 / 25.0);
    }

    #[test]
    fn a_source_without_a_frame_rate_records_at_25_fps() {
        let (frames, seconds) = written(0.0, &[0.0, 0.08]);
        assert_eq!(frames, [0, 0, 1]);
        assert_eq!(seconds, 3.0 / 25.0);
    }
}
