//! The left panel: thresholds, inference size, class filter, and the performance view.

use egui::Ui;

use super::FocalYoloApp;
use super::settings::IMAGE_SIZES;
use super::video_view::colour32;

impl FocalYoloApp {
    pub(super) fn detection_panel(&mut self, ui: &mut Ui) {
        ui.heading("Detection");
        ui.add(egui::Slider::new(&mut self.settings.conf, 0.01..=1.0).text("confidence"));
        ui.add(egui::Slider::new(&mut self.settings.iou, 0.05..=1.0).text("NMS IoU"));
        egui::ComboBox::from_label("inference size")
            .selected_text(self.settings.imgsz.to_string())
            .show_ui(ui, |ui| {
                for size in IMAGE_SIZES {
                    ui.selectable_value(&mut self.settings.imgsz, size, size.to_string());
                }
            });
        ui.checkbox(&mut self.settings.show_labels, "labels");
        let names = self.class_names();
        if !names.is_empty() {
            ui.separator();
            ui.horizontal(|ui| {
                ui.label("Classes");
                if ui.small_button("all").clicked() {
                    self.settings.hidden_classes.clear();
                }
                if ui.small_button("none").clicked() {
                    self.settings.hidden_classes = (0..names.len()).collect();
                }
            });
            egui::ScrollArea::vertical()
                .id_salt("classes")
                .max_height(180.0)
                .show(ui, |ui| {
                    for (class, name) in names.iter().enumerate() {
                        let mut shown = !self.settings.hidden_classes.contains(&class);
                        let toggled = ui
                            .horizontal(|ui| {
                                let (swatch, _) = ui.allocate_exact_size(
                                    egui::vec2(10.0, 10.0),
                                    egui::Sense::hover(),
                                );
                                ui.painter().rect_filled(
                                    swatch,
                                    2.0,
                                    colour32(crate::annotate::class_colour(class)),
                                );
                                ui.checkbox(&mut shown, name).changed()
                            })
                            .inner;
                        if toggled {
                            if shown {
                                self.settings.hidden_classes.remove(&class);
                            } else {
                                self.settings.hidden_classes.insert(class);
                            }
                        }
                    }
                });
        }
        ui.separator();
        ui.checkbox(&mut self.settings.show_performance, "performance");
        if self.settings.show_performance {
            self.stats.show(ui, self.session.as_ref());
        }
    }
}
