//! What the command draws: a run's curves, the comparison plots, the pictures of compiled layers. Text
//! uses DejaVu Sans, embedded from `assets/` (no system fonts needed). Every file is written atomically
//! ([`cnn_as_mlp::atomic`]).

pub mod axis;
pub mod compare;
pub mod curves;
pub mod map;
pub mod picture;
pub mod sweep;

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::{BitMapBackend, DrawingArea, FontStyle, IntoDrawingArea};

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

/// Encodes `rgb` (`w · h · 3` bytes, row-major) as an 8-bit RGB PNG: the one encoder of every picture and
/// plot the command writes (drawn in memory by plotters' `BitMapBackend::with_buffer`, often through a
/// [`Canvas`]).
pub fn encode_png(rgb: &[u8], w: u32, h: u32, compression: png::Compression) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(compression);
    let encoded = enc.write_header().and_then(|mut wr| wr.write_image_data(rgb));
    encoded.map_err(|e| format!("cannot encode the PNG: {e}"))?;
    Ok(out)
}

/// A plot drawn in memory, for a figure that chooses its size as it draws: [`Canvas::area`] gives the
/// drawing area, [`Canvas::png`] the file's bytes.
#[derive(Default)]
pub struct Canvas {
    w: u32,
    h: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    /// A fresh `w × h` area to draw on, with the embedded font registered.
    pub fn area(&mut self, w: u32, h: u32) -> DrawingArea<BitMapBackend<'_>, Shift> {
        register_font();
        (self.w, self.h) = (w, h);
        self.rgb = vec![0; w as usize * h as usize * 3];
        BitMapBackend::with_buffer(&mut self.rgb, (w, h)).into_drawing_area()
    }

    /// What was drawn, as PNG.
    pub fn png(&self) -> Result<Vec<u8>, String> {
        encode_png(&self.rgb, self.w, self.h, png::Compression::Default)
    }
}
