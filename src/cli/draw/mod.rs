//! What the command draws: a run's curves, the comparison plots, the pictures of compiled layers. Text
//! uses DejaVu Sans, embedded from `assets/` (no system fonts needed). Every file is written atomically
//! ([`cnn_as_mlp::atomic`]).

pub mod axis;
pub mod compare;
pub mod curves;
pub mod picture;
pub mod sweep;

use std::sync::Once;

use plotters::prelude::FontStyle;

static FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// Registers the embedded font as `sans-serif` (once per process).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = plotters::style::register_font("sans-serif", style, FONT);
        }
    });
}

/// Encodes `rgb` (`w · h · 3` bytes, row-major) as an 8-bit RGB PNG.
pub fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(rgb)?;
    }
    Ok(out)
}
