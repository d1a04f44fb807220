//! YOLO-format labelled image folders: `DIR/images/*.jpg` with `DIR/labels/<stem>.txt`,
//! one `class cx cy w h` line per object, normalised to the image size.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::metrics::Label;
use crate::source::{SourceError, image_paths};

#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("{0}: expected a folder with images/ and labels/ (YOLO format)")]
    Layout(PathBuf),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path}:{line}: expected `class cx cy w h` with normalised coordinates")]
    BadLabel { path: PathBuf, line: usize },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The images of a labelled folder, each with the path its labels would have.
pub fn labelled_images(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, DatasetError> {
    let (images, labels) = (dir.join("images"), dir.join("labels"));
    if !images.is_dir() {
        return Err(DatasetError::Layout(dir.into()));
    }
    let paths = image_paths(&images.to_string_lossy())?;
    Ok(paths
        .into_iter()
        .map(|image| {
            let stem = image.file_stem().unwrap_or_default().to_owned();
            let label = labels.join(stem).with_extension("txt");
            (image, label)
        })
        .collect())
}

/// An image's labels in pixels; a missing file means no objects (a background image).
pub fn read_labels(path: &Path, width: u32, height: u32) -> Result<Vec<Label>, DatasetError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DatasetError::Io {
                path: path.into(),
                source,
            });
        }
    };
    let (w, h) = (width as f32, height as f32);
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let bad = || DatasetError::BadLabel {
                path: path.into(),
                line: n + 1,
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [class, cx, cy, bw, bh] = fields[..] else {
                return Err(bad());
            };
            let class: usize = class.parse().map_err(|_| bad())?;
            let [cx, cy, bw, bh] = [cx, cy, bw, bh].map(|v| v.parse::<f32>().ok());
            let (Some(cx), Some(cy), Some(bw), Some(bh)) = (cx, cy, bw, bh) else {
                return Err(bad());
            };
            Ok(Label {
                xyxy: [
                    (cx - bw / 2.0) * w,
                    (cy - bh / 2.0) * h,
                    (cx + bw / 2.0) * w,
                    (cy + bh / 2.0) * h,
                ],
                class,
            })
        })
        .collect()
}
