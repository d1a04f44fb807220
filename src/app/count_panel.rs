//! The Counting section of the left panel: each region's IN/OUT in total and per class,
//! delete, reset, and the CSV export.

use egui::Ui;

use super::Action;
use super::count_editor::RegionKind;
use crate::count::{InOut, Region, RegionCount};
use crate::inference::postprocess::class_name;

/// What the section shows: the source size's regions and the counts of the frame on screen.
pub struct CountView<'a> {
    pub regions: &'a [Region],
    pub counts: &'a [RegionCount],
    /// Whether tracking is on: counting follows tracks.
    pub tracking: bool,
    /// What the last export wrote, or why it failed.
    pub export_note: Option<&'a str>,
}

/// The section; the actions its buttons ask for.
pub fn counting_section(ui: &mut Ui, view: CountView, names: &[String]) -> Vec<Action> {
    let mut actions = Vec::new();
    egui::CollapsingHeader::new(format!("Counting ({} regions)", view.regions.len()))
        .id_salt("counting")
        .default_open(true)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                if ui.button("Add line").clicked() {
                    actions.push(Action::DrawRegion(RegionKind::Line));
                }
                if ui.button("Add zone").clicked() {
                    actions.push(Action::DrawRegion(RegionKind::Zone));
                }
            });
            if view.regions.is_empty() {
                ui.label(
                    "Add a line or a zone, then click its points on the video. Tracks are \
                     counted as they cross a line or enter a zone.",
                );
                return;
            }
            if !view.tracking {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    "Counting is paused: it follows tracks, and tracking is off.",
                );
            }
            for (index, region) in view.regions.iter().enumerate() {
                let count = view.counts.iter().find(|c| c.region == region.name);
                let total = count.map(|c| c.total).unwrap_or_default();
                ui.horizontal(|ui| {
                    ui.strong(&region.name);
                    ui.label(format!("IN {}  OUT {}", total.inward, total.outward));
                    if ui
                        .small_button("Delete")
                        .on_hover_text(format!("Remove {}", region.name))
                        .clicked()
                    {
                        let mut kept = view.regions.to_vec();
                        kept.remove(index);
                        actions.push(Action::SetRegions(kept));
                    }
                });
                if let Some(count) = count.filter(|c| !c.classes.is_empty()) {
                    class_grid(ui, &region.name, count, names);
                }
            }
            ui.label("IN: rightwards across a steep line or in a tall zone, else downwards.")
                .on_hover_text(
                    "As Ultralytics' ObjectCounter: a line counts a track whose centre moves \
                     across it, a zone one whose centre is inside it; each region counts a \
                     track once. Counts start over at a seek or loop, as tracks do.",
                );
            ui.horizontal(|ui| {
                if ui.button("Reset counts").clicked() {
                    actions.push(Action::ResetCounts);
                }
                if ui.button("Export CSV…").clicked()
                    && let Some(path) = rfd::FileDialog::new()
                        .add_filter("CSV", &["csv"])
                        .set_file_name("counts.csv")
                        .save_file()
                {
                    actions.push(Action::ExportCounts(path));
                }
            });
            if let Some(note) = view.export_note {
                ui.label(note);
            }
        });
    actions
}

/// One region's counts per class.
fn class_grid(ui: &mut Ui, region: &str, count: &RegionCount, names: &[String]) {
    egui::Grid::new(("counts per class", region))
        .striped(true)
        .show(ui, |ui| {
            for (&class, &InOut { inward, outward }) in &count.classes {
                ui.label(class_name(names, class));
                ui.label(format!("IN {inward}"));
                ui.label(format!("OUT {outward}"));
                ui.end_row();
            }
        });
}
