//! Each frame of a run: through the model (and the one compared with it), their trackers
//! and the counting, then out to the JSON lines, the saved video and the counts CSV.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::{Context, bail};
use focalyolo::count::{CountFrame, Region, SequenceCounter};
use focalyolo::inference::detector::{Detector, FrameResult};
use focalyolo::inference::postprocess::NmsOptions;
use focalyolo::output::annotate::{draw_detections, draw_regions, draw_tracks, mosaic};
use focalyolo::output::attention_maps::{Colormap, heatmaps, overlay, select};
use focalyolo::output::report::{CountsCsv, FrameRecord, count_records, records, tracked_records};
use focalyolo::output::video_writer::VideoWriter;
use focalyolo::pipeline::catch_panic;
use focalyolo::source::Frame;
use focalyolo::track::{SequenceTracker, TRACKING_CONF, TrackedFrame, TrackerConfig};
use image::RgbImage;

use super::RunArgs;

/// One model of the run, its tracker and, for the first model, its counting.
pub(super) struct Side<'a> {
    detector: &'a Detector,
    tracker: Option<SequenceTracker>,
    pub(super) counter: Option<SequenceCounter>,
}

impl Side<'_> {
    /// The model on `frame` (with FocalModulation's maps when `taps`), and its tracker
    /// after it.
    fn infer(&mut self, frame: &Frame, nms: &NmsOptions, taps: bool) -> anyhow::Result<SideOutput> {
        // The last guard: a bug that panics on one frame ends the run with a message, and
        // what was written so far is kept.
        let result =
            catch_panic(|| self.detector.run(&frame.image, nms, taps)).map_err(|panic| {
                anyhow::anyhow!(
                    "the model failed on frame {} ({panic}); this is a bug, please report it",
                    frame.index
                )
            })??;
        let tracked = match self.tracker.as_mut() {
            Some(tracker) => Some(tracker.track(frame, &result.detections)?),
            None => None,
        };
        let counted = self
            .counter
            .as_mut()
            .zip(tracked.as_ref())
            .map(|(counter, tracked)| counter.count(frame, tracked));
        Ok(SideOutput {
            result,
            tracked,
            counted,
        })
    }
}

/// What one model made of a frame.
struct SideOutput {
    result: FrameResult,
    tracked: Option<TrackedFrame>,
    counted: Option<CountFrame>,
}

/// The outputs of one run and what has gone into them.
pub(super) struct Run<'a> {
    args: &'a RunArgs,
    /// The model, then the one it is compared with.
    pub(super) sides: Vec<Side<'a>>,
    frame_rate: f64,
    nms: NmsOptions,
    json: Option<BufWriter<File>>,
    video: Option<VideoWriter>,
    counts_csv: Option<CountsCsv<File>>,
    /// The frame size the counting regions were last checked against.
    regions_checked: Option<(u32, u32)>,
    pub(super) frames_done: u64,
}

impl<'a> Run<'a> {
    pub(super) fn new(
        args: &'a RunArgs,
        detector: &'a Detector,
        compared: Option<&'a Detector>,
        frame_rate: f64,
        tracking: Option<TrackerConfig>,
        regions: Vec<Region>,
    ) -> anyhow::Result<Self> {
        let json = match &args.json {
            Some(path) => {
                Some(BufWriter::new(File::create(path).with_context(|| {
                    format!("cannot create {}", path.display())
                })?))
            }
            None => None,
        };
        let counts_csv = args.count.csv()?;
        let counter = tracking
            .filter(|_| !regions.is_empty())
            .map(|config| SequenceCounter::new(regions, u64::from(config.buffer)));
        let sides = std::iter::once((detector, counter))
            .chain(compared.map(|detector| (detector, None)))
            .map(|(detector, counter)| Side {
                detector,
                tracker: tracking.map(SequenceTracker::new),
                counter,
            })
            .collect();
        Ok(Self {
            args,
            sides,
            frame_rate,
            nms: match tracking {
                Some(_) => args.nms.options_with_default_conf(TRACKING_CONF),
                None => args.nms.options(),
            },
            json,
            video: None,
            counts_csv,
            regions_checked: None,
            frames_done: 0,
        })
    }

    /// Refuse counting regions that leave the frame, checked whenever its size changes.
    fn check_regions(&mut self, frame: &Frame) -> anyhow::Result<()> {
        let size = frame.image.dimensions();
        if self.regions_checked == Some(size) {
            return Ok(());
        }
        if let Some(counter) = &self.sides[0].counter {
            for region in counter.regions() {
                region.check_inside(size.0, size.1)?;
            }
        }
        self.regions_checked = Some(size);
        Ok(())
    }

    pub(super) fn process(&mut self, frame: Frame) -> anyhow::Result<()> {
        self.check_regions(&frame)?;
        let taps = !self.args.overlay.is_empty();
        let outputs = self
            .sides
            .iter_mut()
            .map(|side| side.infer(&frame, &self.nms, taps))
            .collect::<anyhow::Result<Vec<SideOutput>>>()?;
        let records_of = |side: &Side, output: &SideOutput| {
            let names = &side.detector.info().class_names;
            match &output.tracked {
                Some(tracked) => tracked_records(&tracked.objects, names),
                None => records(&output.result.detections, names),
            }
        };
        let names = &self.sides[0].detector.info().class_names;
        let counted = outputs[0].counted.as_ref();
        if let (Some(csv), Some(counted)) = (self.counts_csv.as_mut(), counted) {
            csv.write(&counted.crossings, names)?;
        }
        if let Some(out) = self.json.as_mut() {
            let (counts, crossings) = counted.map(|c| count_records(c, names)).unzip();
            let record = FrameRecord {
                frame: frame.index,
                pts: frame.pts,
                width: frame.image.width(),
                height: frame.image.height(),
                detections: records_of(&self.sides[0], &outputs[0]),
                detections_b: self
                    .sides
                    .get(1)
                    .zip(outputs.get(1))
                    .map(|(side, output)| records_of(side, output)),
                counts,
                crossings,
            };
            serde_json::to_writer(&mut *out, &record)?;
            out.write_all(b"\n")?;
        }
        if let Some(path) = &self.args.save {
            let halves = self
                .sides
                .iter()
                .zip(&outputs)
                .map(|(side, output)| self.picture(side, &frame, output))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let picture = side_by_side(&halves);
            let video = match self.video.as_mut() {
                Some(video) => video,
                None => self.video.insert(VideoWriter::create(
                    path,
                    picture.width(),
                    picture.height(),
                    self.frame_rate,
                )?),
            };
            video.write(&picture)?;
        }
        self.frames_done += 1;
        Ok(())
    }

    /// The frame with one model's boxes (or tracks) and the chosen overlays.
    fn picture(&self, side: &Side, frame: &Frame, output: &SideOutput) -> anyhow::Result<RgbImage> {
        let names = &side.detector.info().class_names;
        let mut annotated = frame.image.clone();
        match &output.tracked {
            Some(tracked) => draw_tracks(&mut annotated, &tracked.objects, names),
            None => draw_detections(&mut annotated, &output.result.detections, names),
        }
        if let (Some(counter), Some(counted)) = (&side.counter, &output.counted) {
            draw_regions(&mut annotated, counter.regions(), &counted.counts);
        }
        let Some(taps) = &output.result.taps else {
            return Ok(annotated);
        };
        let maps = heatmaps(taps).context("reading the attention maps")?;
        let chosen = select(&maps, &self.args.overlay);
        if chosen.is_empty() {
            let known: Vec<String> = maps.iter().map(|m| m.key()).collect();
            bail!(
                "--overlay {}: no such map; choose from gates, {}",
                self.args.overlay.join(","),
                known.join(", ")
            );
        }
        let tiles: Vec<(String, RgbImage)> = chosen
            .iter()
            .map(|map| {
                let tile = overlay(
                    &annotated,
                    map,
                    &output.result.letterbox,
                    Colormap::Turbo,
                    self.args.overlay_opacity,
                );
                (map.label.clone(), tile)
            })
            .collect();
        Ok(mosaic(&tiles))
    }

    pub(super) fn finish(self) -> anyhow::Result<()> {
        if let Some(mut json) = self.json {
            json.flush()?;
        }
        if let Some(video) = self.video {
            video.finish()?;
        }
        Ok(())
    }
}

/// Pictures of one height left to right (one picture as it is).
fn side_by_side(pictures: &[RgbImage]) -> RgbImage {
    let width = pictures.iter().map(RgbImage::width).sum();
    let height = pictures.iter().map(RgbImage::height).max().unwrap_or(0);
    let mut out = RgbImage::new(width, height);
    let mut x = 0;
    for picture in pictures {
        image::imageops::replace(&mut out, picture, i64::from(x), 0);
        x += picture.width();
    }
    out
}
