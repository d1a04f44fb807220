//! Still-image sources: a file, a folder of images, or a glob pattern, and decoding with
//! the EXIF orientation applied (as OpenCV's `imread` does).

use std::path::{Path, PathBuf};

use super::{Frame, FrameSource, SourceError};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

pub(crate) const IMAGE_EXTENSIONS: [&str; 8] =
    ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "jfif"];

pub(crate) fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The images `source` names, sorted: one file, a folder's images, or a glob's matches.
pub fn image_paths(source: &str) -> Result<Vec<PathBuf>, SourceError> {
    let path = Path::new(source);
    let paths = if path.is_file() {
        vec![path.to_path_buf()]
    } else if path.is_dir() {
        std::fs::read_dir(path)
            .map_err(|_| SourceError::NotFound(source.into()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image(p))
            .collect()
    } else if source.contains(['*', '?', '[']) {
        glob::glob(source)
            .map_err(|e| SourceError::BadPattern(source.into(), e.to_string()))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect()
    } else {
        return Err(SourceError::NotFound(source.into()));
    };
    sorted_or_empty_error(paths, source)
}

/// `paths` sorted, or an error naming `source` when it matched no image.
fn sorted_or_empty_error(
    mut paths: Vec<PathBuf>,
    source: &str,
) -> Result<Vec<PathBuf>, SourceError> {
    paths.sort();
    if paths.is_empty() {
        return Err(SourceError::Empty(source.into()));
    }
    Ok(paths)
}

/// The most pixels an image may claim before anything is allocated for it: Pillow's
/// decompression-bomb limit (a 60000×60000 header would otherwise take 10.8 GB to decode).
const MAX_PIXELS: u64 = 178_956_970;

/// As [`image_paths`], with a folder's subfolders searched too (training images sorted
/// into folders by class or source).
pub fn image_paths_recursive(source: &str) -> Result<Vec<PathBuf>, SourceError> {
    let path = Path::new(source);
    if !path.is_dir() {
        return image_paths(source);
    }
    let pattern = format!("{}/**/*", glob::Pattern::escape(source));
    let paths: Vec<PathBuf> = glob::glob(&pattern)
        .map_err(|e| SourceError::BadPattern(source.into(), e.to_string()))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    sorted_or_empty_error(paths, source)
}

fn open_decoder(path: &Path) -> Result<(impl ImageDecoder, Orientation), SourceError> {
    let decode_error = |reason: String| SourceError::Decode {
        path: path.into(),
        reason,
    };
    let reader = ImageReader::open(path)
        .map_err(|e| decode_error(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| decode_error(e.to_string()))?;
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| decode_error(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(decode_error(format!(
            "its header claims {width}×{height} pixels, more than the {MAX_PIXELS} an image \
             may have here (a decompression bomb, or a damaged header)"
        )));
    }
    let orientation = decoder
        .orientation()
        .map_err(|e| decode_error(e.to_string()))?;
    Ok((decoder, orientation))
}

/// An image's upright width and height, read from its header without decoding it.
pub fn upright_size(path: &Path) -> Result<(u32, u32), SourceError> {
    let (decoder, orientation) = open_decoder(path)?;
    let (w, h) = decoder.dimensions();
    let quarter_turn = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    Ok(if quarter_turn { (h, w) } else { (w, h) })
}

/// Decode an image file to RGB, upright according to its EXIF orientation.
pub fn load_rgb(path: &Path) -> Result<RgbImage, SourceError> {
    let (decoder, orientation) = open_decoder(path)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| SourceError::Decode {
        path: path.into(),
        reason: e.to_string(),
    })?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Still images shown one after another, a frame each, at a fixed `interval` of seconds.
pub struct ImageSequence {
    paths: Vec<PathBuf>,
    next: usize,
    interval: f64,
    seeks: u64,
}

impl ImageSequence {
    pub fn open(source: &str, interval: f64) -> Result<Self, SourceError> {
        Ok(Self {
            paths: image_paths(source)?,
            next: 0,
            interval,
            seeks: 0,
        })
    }
}

impl FrameSource for ImageSequence {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let Some(path) = self.paths.get(self.next) else {
            return Ok(None);
        };
        let index = self.next as u64;
        self.next += 1;
        Ok(Some(Frame {
            index,
            pts: index as f64 * self.interval,
            segment: self.seeks,
            image: load_rgb(path)?,
        }))
    }

    fn frame_rate(&self) -> Option<f64> {
        Some(1.0 / self.interval)
    }

    fn seek(&mut self, seconds: f64) -> Result<(), SourceError> {
        self.seeks += 1;
        self.next = ((seconds / self.interval).round().max(0.0) as usize).min(self.paths.len());
        Ok(())
    }
}
