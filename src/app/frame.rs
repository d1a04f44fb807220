//! One frame of the window: the menu and status bars, the detection panel on the left,
//! FocalModulation's panel on the right, the video in the middle, then the actions the
//! frame asked for.

use std::time::Instant;

use egui::Ui;

use super::Action;
use super::FocalYoloApp;
use super::attention_panel::PanelContent;
use super::detection_panel::FrameView;
use super::menus::{CountMenu, RecordButtons};
use super::model_manager::ModelManager;
use super::recorder::Recorder;
use super::status_bar::welcome;
use super::video_view::{ComparedBoxes, Comparison, Pointed};
use crate::count::Region;
use crate::weights::bundled::Layer9Origin;

impl eframe::App for FocalYoloApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        let draw_started = Instant::now();
        self.poll(ui);
        self.handle_dropped_files(ui);
        self.apply_knobs();
        let names = self.class_names();
        // Find the explained object in a new frame before anything shows which box it is.
        if self.dirty
            && let Some(current) = &self.current
        {
            self.detail
                .follow(ui, current, &names, self.settings.colormap);
        }

        let mut actions = Vec::new();
        let position = self.current.as_ref().map(|current| current.frame.pts);
        let busy = self.models.is_busy();
        let regions: Vec<Region> = self
            .current
            .as_ref()
            .map(|c| {
                let (width, height) = c.frame.image.dimensions();
                self.settings.regions_for(width, height).to_vec()
            })
            .unwrap_or_default();
        let counting = CountMenu {
            has_frame: self.current.is_some(),
            has_regions: !regions.is_empty(),
        };
        let record = RecordButtons {
            has_frame: self.current.is_some(),
            recording: self.recorder.as_ref().map(Recorder::elapsed),
        };
        actions.extend(record.shortcuts(ui));
        egui::Panel::top("menu").show(ui, |ui| {
            actions.extend(self.menu_bar.show(
                ui,
                &mut self.settings,
                self.session.as_ref(),
                position,
                busy,
                self.compared.summary.is_some() || self.compared.is_busy(),
                counting,
                record,
            ));
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            actions.extend(self.status_bar.show(
                ui,
                &self.models,
                &self.compared,
                self.session.as_ref(),
                self.settings.nms_free,
            ));
        });
        let comparison = comparison(&self.models, &self.compared, self.compared_boxes.as_ref());
        let mut hovered = None;
        egui::Panel::left("detection")
            .default_size(230.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("detection panel")
                    .show(ui, |ui| {
                        let frame = FrameView {
                            detections: self
                                .current
                                .as_ref()
                                .map_or(&[], |c| c.detections.as_slice()),
                            tracks: self.current.as_ref().and_then(|c| c.tracks.as_ref()),
                            marked: Pointed {
                                clicked: self.detail.selected(),
                                hovered: self.hovered,
                            },
                            compared: comparison.as_ref().map(|c| &c.captions),
                            regions: &regions,
                            tracking: self.settings.track,
                            counts: self
                                .current
                                .as_ref()
                                .and_then(|c| c.counted.as_ref())
                                .map_or(&[], |c| c.counts.as_slice()),
                        };
                        let pointed = self.detection.show(
                            ui,
                            &mut self.settings,
                            &names,
                            frame,
                            self.session.as_ref(),
                            &mut actions,
                        );
                        actions.extend(pointed.clicked.map(Action::Explain));
                        hovered = pointed.hovered;
                    });
            });
        let mut look_changed = false;
        egui::Panel::right("focal")
            .default_size(230.0)
            .show(ui, |ui| {
                let content = match (&self.models.summary, &self.current) {
                    (None, _) => PanelContent::NoModel,
                    (Some(s), _) if s.layer9 == Layer9Origin::NoLayerFits => {
                        PanelContent::SppfWithoutLayer
                    }
                    (Some(s), _) if !s.info.has_focal() => PanelContent::Sppf,
                    (Some(_), Some(current)) if !current.maps.is_empty() => {
                        PanelContent::Maps(current)
                    }
                    (Some(_), _) => PanelContent::Waiting,
                };
                look_changed = self.attention.show(ui, content, &mut self.settings);
            });
        if let Some(current) = &self.current {
            if self.dirty {
                self.view.update(ui, current);
            }
            if self.dirty || look_changed {
                self.attention.update(ui, current, self.settings.colormap);
            }
            if look_changed {
                self.detail
                    .follow(ui, current, &names, self.settings.colormap);
            }
        }
        self.dirty = false;
        egui::CentralPanel::default().show(ui, |ui| match &self.current {
            Some(current) => {
                let marked = Pointed {
                    clicked: self.detail.selected(),
                    hovered: hovered.or(self.hovered),
                };
                let shown = self.view.show(
                    ui,
                    current,
                    &self.settings,
                    &names,
                    comparison.as_ref(),
                    marked,
                );
                actions.extend(shown.pointed.clicked.map(Action::Explain));
                actions.extend(shown.edited.map(Action::SetRegions));
                hovered = hovered.or(shown.pointed.hovered);
            }
            None => actions.extend(welcome(ui, &self.models)),
        });
        self.hovered = hovered;
        if !self.detail.show(ui) {
            self.detail.clear();
        }
        for action in actions {
            self.apply(ui, action);
        }
        self.detection.stats.drawn(draw_started.elapsed());
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}

/// Each model's caption and what they show of the frame, while a second one runs beside
/// the first.
fn comparison<'a>(
    first: &ModelManager,
    second: &ModelManager,
    boxes: Option<&'a ComparedBoxes>,
) -> Option<Comparison<'a>> {
    let (Some(first), Some(second), Some(boxes)) = (&first.summary, &second.summary, boxes) else {
        return None;
    };
    Some(Comparison {
        names: second.info.class_names.clone(),
        captions: [first.caption(), second.caption()],
        boxes,
    })
}
