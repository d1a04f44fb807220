//! Frame counters, per-stage timings and a plot of the displayed frame rate.

use std::collections::VecDeque;
use std::time::Duration;

use egui::Ui;
use egui_plot::{Line, Plot, PlotPoints};

use crate::inference::detector::StageTimes;

use super::session::{Processed, Session};
use super::video_view::{ComparedBoxes, MODEL_TAGS};

/// How much of the plot's history to keep, in seconds.
const PLOT_SECONDS: f64 = 30.0;
/// Weight of the newest sample in the running averages.
const SMOOTHING: f64 = 0.1;
/// A longer pause between shown frames (paused, ended, seeking) starts the plot afresh.
const PLOT_GAP_SECONDS: f64 = 2.0;

/// Frames the comparison figures are taken over.
const COMPARED_FRAMES: usize = 30;

/// Running averages of each stage, in milliseconds.
#[derive(Default, Clone, Copy)]
struct StageAverages {
    capture: f64,
    preprocess: f64,
    inference: f64,
    postprocess: f64,
    draw: f64,
}

#[derive(Default)]
pub struct Stats {
    averages: StageAverages,
    /// The last frame's letterbox was a queued GPU kernel (see [`StageTimes`]).
    preprocess_queued: bool,
    /// (seconds since start, frames per second) per displayed frame.
    fps: VecDeque<[f64; 2]>,
    last_shown: Option<f64>,
}

fn blend(average: &mut f64, sample: Duration) {
    let ms = sample.as_secs_f64() * 1000.0;
    *average = if *average == 0.0 {
        ms
    } else {
        *average + SMOOTHING * (ms - *average)
    };
}

impl Stats {
    /// A processed frame was shown at `now` seconds.
    pub fn frame_shown(&mut self, now: f64, times: &StageTimes, capture: Duration) {
        blend(&mut self.averages.capture, capture);
        blend(&mut self.averages.preprocess, times.preprocess);
        blend(&mut self.averages.inference, times.inference);
        blend(&mut self.averages.postprocess, times.postprocess);
        self.preprocess_queued = times.preprocess_queued;
        match self.last_shown.replace(now) {
            Some(last) if now - last > PLOT_GAP_SECONDS => self.fps.clear(),
            Some(last) if now > last => self.fps.push_back([now, 1.0 / (now - last)]),
            _ => {}
        }
        while self.fps.front().is_some_and(|p| now - p[0] > PLOT_SECONDS) {
            self.fps.pop_front();
        }
    }

    /// The UI took `elapsed` to draw a frame.
    pub fn drawn(&mut self, elapsed: Duration) {
        blend(&mut self.averages.draw, elapsed);
    }

    /// Frames per second over the last second of the plot.
    pub fn current_fps(&self) -> f64 {
        let Some(&[now, _]) = self.fps.back() else {
            return 0.0;
        };
        let recent: Vec<f64> = self
            .fps
            .iter()
            .filter(|p| now - p[0] <= 1.0)
            .map(|p| p[1])
            .collect();
        recent.iter().sum::<f64>() / recent.len().max(1) as f64
    }

    pub fn show(&self, ui: &mut Ui, session: Option<&Session>) {
        ui.heading("Performance");
        if let Some(session) = session {
            egui::Grid::new("counters").num_columns(2).show(ui, |ui| {
                ui.label("captured");
                ui.label(session.captured().to_string());
                ui.end_row();
                ui.label("inferred");
                ui.label(session.inferred().to_string());
                ui.end_row();
                if session.shown_without_model() > 0 {
                    ui.label("passed on without a model");
                    ui.label(session.shown_without_model().to_string());
                    ui.end_row();
                }
                ui.label("dropped before inference");
                ui.label(session.dropped_before_inference().to_string());
                ui.end_row();
                ui.label("dropped before display");
                ui.label(session.dropped_before_display().to_string());
                ui.end_row();
            });
        }
        let a = self.averages;
        egui::Grid::new("timings").num_columns(2).show(ui, |ui| {
            let preprocess = if self.preprocess_queued {
                "pre-process (queued)"
            } else {
                "pre-process"
            };
            for (stage, ms) in [
                ("capture", a.capture),
                (preprocess, a.preprocess),
                ("inference", a.inference),
                ("post-process", a.postprocess),
                ("draw", a.draw),
            ] {
                let label = ui.label(stage);
                if stage == preprocess && self.preprocess_queued {
                    label.on_hover_text(
                        "The letterbox runs on the GPU: this is the frame's upload and the \
                         kernel's queueing; the kernel's own time is counted in inference.",
                    );
                }
                ui.label(format!("{ms:.1} ms"));
                ui.end_row();
            }
        });
        ui.label(format!("{:.1} FPS shown", self.current_fps()));
        let points: Vec<[f64; 2]> = self.fps.iter().copied().collect();
        Plot::new("fps plot")
            .height(90.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .include_y(0.0)
            .show(ui, |plot| {
                plot.line(Line::new("FPS", PlotPoints::from(points)))
            });
    }
}

/// The two models over the last frames both ran on.
#[derive(Default)]
pub struct ComparisonStats {
    frames: VecDeque<ComparedFrame>,
}

/// One frame both models ran on: each model's inference time, box count, and boxes the
/// other did not find.
struct ComparedFrame {
    inference_ms: [f64; 2],
    boxes: [usize; 2],
    only: [usize; 2],
}

impl ComparisonStats {
    /// A shown frame both models ran on, and what they show of it.
    pub fn record(&mut self, processed: &Processed, boxes: &ComparedBoxes) {
        let Some(compared) = &processed.compared else {
            return;
        };
        self.frames.push_back(ComparedFrame {
            inference_ms: [processed.times.inference, compared.times.inference]
                .map(|t| t.as_secs_f64() * 1000.0),
            boxes: [boxes.first, boxes.second.len()],
            only: boxes
                .only
                .each_ref()
                .map(|only| only.iter().filter(|&&o| o).count()),
        });
        if self.frames.len() > COMPARED_FRAMES {
            self.frames.pop_front();
        }
    }

    /// Means over the recorded frames, a row per model.
    pub fn show(&self, ui: &mut Ui, captions: &[String; 2]) {
        let frames = self.frames.len().max(1) as f64;
        ui.label(format!("Comparison, last {} frames", self.frames.len()));
        egui::Grid::new("comparison")
            .num_columns(4)
            .striped(true)
            .show(ui, |ui| {
                ui.strong("model");
                ui.strong("inference");
                ui.strong("boxes");
                ui.strong("only");
                ui.end_row();
                for model in 0..2 {
                    let mean = |f: &dyn Fn(&ComparedFrame) -> f64| {
                        self.frames.iter().map(f).sum::<f64>() / frames
                    };
                    ui.label(MODEL_TAGS[model])
                        .on_hover_text(captions[model].as_str());
                    ui.label(format!("{:.1} ms", mean(&|f| f.inference_ms[model])));
                    ui.label(format!("{:.1}", mean(&|f| f.boxes[model] as f64)));
                    ui.label(format!("{:.1}", mean(&|f| f.only[model] as f64)));
                    ui.end_row();
                }
            });
    }
}
