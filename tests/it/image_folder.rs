//! Image folders (`--data DIR` with `DIR/train/<class>/…` and `DIR/test/<class>/…`): torchvision's order and
//! labels, the conversion to the model's channels, refusal or resizing of other sizes, one clear line for every
//! bad file, thread-count independence, and a tiny model trained on a generated folder through the command.

use crate::common::*;

use std::path::{Path, PathBuf};

use cnn_as_mlp::data::{DataError, ImageOptions, Source, Splits};
use cnn_as_mlp::spec::Shape;
use image::{GrayImage, Luma, Rgb, RgbImage};

/// An RGB image whose pixel (x, y) is `(base + x, base + 2y, base + x + y)` (wrapping).
fn gradient(w: u32, h: u32, base: u8) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([base.wrapping_add(x as u8), base.wrapping_add(2 * y as u8), base.wrapping_add((x + y) as u8)])
    })
}

fn mkdir(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).unwrap();
    p.to_path_buf()
}

fn load(dir: &Path, shape: Option<Shape>, resize: bool) -> Result<Splits, DataError> {
    Source::Dir(dir.to_path_buf()).load_with(&ImageOptions { shape, resize, ..Default::default() })
}

const RGB8: Shape = Shape { c: 3, h: 8, w: 8 };

/// A valid folder: classes `b` and `a` (label 0 is `a`), one test class.
fn small_folder(name: &str) -> PathBuf {
    let d = scratch(name);
    let a = mkdir(&d.join("train/a"));
    let b = mkdir(&d.join("train/b"));
    gradient(8, 8, 10).save(a.join("2.png")).unwrap();
    gradient(8, 8, 20).save(a.join("10.png")).unwrap();
    mkdir(&a.join("sub"));
    gradient(8, 8, 30).save(a.join("sub/0.PNG")).unwrap();
    gradient(8, 8, 40).save(b.join("x.png")).unwrap();
    std::fs::write(b.join("notes.txt"), "not an image").unwrap();
    std::fs::write(b.join(".hidden.png"), "skipped: starts with a dot").unwrap();
    let t = mkdir(&d.join("test/b"));
    gradient(8, 8, 50).save(t.join("y.png")).unwrap();
    d
}

/// Classes are sorted by name and labelled by index; files come in torchvision's order (a class folder's own
/// files by name, byte order, then its subfolders), other extensions and dot files skipped; the test split's
/// class keeps its training label; pixels are stored in (C, H, W) planes and batched as x / 255.
#[test]
fn folders_load_in_torchvision_order_with_planes_in_chw() {
    let d = small_folder("imgf-order");
    let s = load(&d, Some(RGB8), false).unwrap();
    assert_eq!(s.train.classes.as_deref().unwrap(), ["a", "b"]);
    assert_eq!(s.test.classes, s.train.classes);
    assert_eq!(s.train.labels, [0, 0, 0, 1]);
    assert_eq!(s.test.labels, [1]);
    assert_eq!(s.train.shape, RGB8);
    // "10.png" < "2.png" < "sub/0.PNG" (folder "a" sorts before "a/sub"), then class b.
    let bases: Vec<u8> = (0..4).map(|i| s.train.pixels[i * 192]).collect();
    assert_eq!(bases, [20, 10, 30, 40]);
    // Image 1 (base 10), green plane, row 3, column 5: 10 + 2·3.
    let x = s.train.batch_x(&[1]);
    let j = 64 + 3 * 8 + 5;
    assert_eq!(x[(0, j)], 16.0 / 255.0);
    // Blue plane, row 7, column 6: 10 + 13.
    assert_eq!(s.train.pixels[192 + 128 + 7 * 8 + 6], 23);
    // The library's plain load takes the first image's size and colour.
    let plain = Source::Dir(d.clone()).load().unwrap();
    assert_eq!(plain.train.pixels, s.train.pixels);
}

/// Grey images become 3 equal planes for an RGB model; colour images become PIL's luma for a 1-channel one;
/// a JPEG decodes close to what was written.
#[test]
fn channels_follow_the_model() {
    let d = scratch("imgf-channels");
    let a = mkdir(&d.join("train/a"));
    let t = mkdir(&d.join("test/a"));
    GrayImage::from_fn(4, 4, |x, y| Luma([(x * 40 + y) as u8])).save(a.join("g.png")).unwrap();
    let colour = RgbImage::from_fn(4, 4, |x, y| Rgb([255 * (x % 2) as u8, 100 + y as u8, 7]));
    colour.save(a.join("c.png")).unwrap();
    RgbImage::from_pixel(16, 16, Rgb([200, 100, 50])).save(t.join("j.jpg")).unwrap();
    let err = load(&d, Some(Shape { c: 3, h: 4, w: 4 }), false).unwrap_err().to_string();
    assert!(err.contains("j.jpg") && err.contains("16x16") && err.contains("4x4"), "{err}");
    std::fs::remove_file(t.join("j.jpg")).unwrap();
    RgbImage::from_pixel(4, 4, Rgb([200, 100, 50])).save(t.join("j.jpg")).unwrap();

    let rgb = load(&d, Some(Shape { c: 3, h: 4, w: 4 }), false).unwrap();
    // Files sorted: c.png (colour), g.png (grey).
    let g = &rgb.train.pixels[48..96];
    for p in 0..16 {
        let want = ((p % 4) * 40 + p / 4) as u8;
        assert_eq!([g[p], g[16 + p], g[32 + p]], [want; 3], "grey pixel {p}");
    }
    let j = &rgb.test.pixels;
    for (c, want) in [200i32, 100, 50].into_iter().enumerate() {
        assert!(j[c * 16..(c + 1) * 16].iter().all(|&v| (v as i32 - want).abs() <= 3), "JPEG plane {c}: {j:?}");
    }

    let grey = load(&d, Some(Shape { c: 1, h: 4, w: 4 }), false).unwrap();
    let luma = |r: u32, g: u32, b: u32| ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16) as u8;
    for p in 0..16u32 {
        let (x, y) = (p % 4, p / 4);
        assert_eq!(grey.train.pixels[p as usize], luma(255 * (x % 2), 100 + y, 7), "luma of pixel {p}");
        assert_eq!(grey.train.pixels[16 + p as usize], (x * 40 + y) as u8, "grey pixel {p}");
    }

    let e = load(&d, Some(Shape { c: 2, h: 4, w: 4 }), false).unwrap_err().to_string();
    assert!(e.contains("2 channels") && e.contains("2x4x4"), "{e}");
}

/// Another size is refused with the file and both sizes unless resizing is asked; then a uniform image stays
/// uniform and a 2× reduction of alternating 0/200 columns averages them to 100 (bilinear, antialiased).
#[test]
fn other_sizes_are_refused_or_resized_when_asked() {
    let d = scratch("imgf-resize");
    let a = mkdir(&d.join("train/a"));
    let t = mkdir(&d.join("test/a"));
    RgbImage::from_pixel(12, 6, Rgb([77, 77, 77])).save(a.join("u.png")).unwrap();
    RgbImage::from_fn(8, 8, |x, _| Rgb([200 * (x % 2) as u8; 3])).save(t.join("s.png")).unwrap();
    let shape = Shape { c: 3, h: 4, w: 4 };
    let e = load(&d, Some(shape), false).unwrap_err().to_string();
    assert!(e.contains("u.png") && e.contains("12x6") && e.contains("4x4") && e.contains("--resize"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    let s = load(&d, Some(shape), true).unwrap();
    assert!(s.train.pixels.iter().all(|&v| v == 77), "{:?}", s.train.pixels);
    // Nearest-neighbour would give 0 or 200; the filter gives 100 inside, and near 100 at the edges (where its
    // window is cut and renormalised).
    let t = &s.test.pixels;
    assert!(t.iter().all(|&v| (80..=120).contains(&v)), "{t:?}");
    assert!(t.chunks(4).all(|row| (99..=101).contains(&row[1]) && (99..=101).contains(&row[2])), "{t:?}");
}

/// The same bytes whatever the number of decoding threads, and the first bad file in the listing's order is
/// reported whatever the threads.
#[test]
fn decoding_does_not_depend_on_the_thread_count() {
    let d = scratch("imgf-threads");
    for c in 0..3 {
        let dir = mkdir(&d.join(format!("train/c{c}")));
        for i in 0..7u8 {
            gradient(8, 8, 30 * c + i).save(dir.join(format!("{i}.png"))).unwrap();
        }
        gradient(8, 8, c).save(mkdir(&d.join(format!("test/c{c}"))).join("t.png")).unwrap();
    }
    let in_pool = |n: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        pool.install(|| load(&d, Some(RGB8), false))
    };
    let one = in_pool(1).unwrap();
    assert_eq!(one.train.len(), 21);
    for n in [2, 5] {
        let many = in_pool(n).unwrap();
        assert_eq!((&many.train.pixels, &many.train.labels), (&one.train.pixels, &one.train.labels), "{n} threads");
        assert_eq!(many.test.pixels, one.test.pixels);
    }
    // Two bad files: c1/2.png and c2/5.png; c1/2.png comes first.
    std::fs::write(d.join("train/c2/5.png"), b"junk").unwrap();
    std::fs::write(d.join("train/c1/2.png"), b"").unwrap();
    for n in [1, 2, 5] {
        let e = in_pool(n).unwrap_err().to_string();
        assert!(e.contains("c1/2.png") && e.contains("empty"), "{n} threads: {e}");
    }
}

/// A PNG whose header announces `w × h` RGB pixels, with a few bytes of (invalid) data: no decoder may
/// believe the header before checking it.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend(kind);
        c.extend(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        c.extend(crc.sum().to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00]));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// Every bad file or folder is one line naming it and the problem, never a panic: a truncated PNG, a text
/// file named .jpg, an empty file, an empty class folder, a split without class folders, no test/ or val/, a
/// test class unknown to training, and a 100000×100000 header (refused on its size, and when resizing, on the
/// memory it would take, before anything of that size is allocated).
#[test]
fn bad_files_and_folders_are_one_line_each() {
    let d = scratch("imgf-bad");
    let a = mkdir(&d.join("train/a"));
    mkdir(&d.join("test/a"));
    let good = a.join("good.png");
    gradient(8, 8, 0).save(&good).unwrap();
    gradient(8, 8, 0).save(d.join("test/a/t.png")).unwrap();
    let full = std::fs::read(&good).unwrap();
    let expect = |needles: &[&str], resize: bool| {
        let e = load(&d, Some(RGB8), resize).unwrap_err().to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
        for n in needles {
            assert!(e.contains(n), "{e:?} lacks {n:?}");
        }
    };
    let bad = a.join("bad.png");
    std::fs::write(&bad, &full[..full.len() / 2]).unwrap();
    expect(&["bad.png", "decode"], false);
    std::fs::remove_file(&bad).unwrap();

    let text = a.join("photo.jpg");
    std::fs::write(&text, "hello, I am text\n").unwrap();
    expect(&["photo.jpg", "not a PNG or JPEG"], false);
    std::fs::write(&text, "").unwrap();
    expect(&["photo.jpg", "empty file"], false);
    std::fs::remove_file(&text).unwrap();

    let huge = a.join("huge.png");
    std::fs::write(&huge, png_header_only(100_000, 100_000)).unwrap();
    expect(&["huge.png", "100000x100000", "8x8", "--resize"], false);
    expect(&["huge.png", "100000x100000", "30000000000 bytes"], true);
    std::fs::remove_file(&huge).unwrap();
    load(&d, Some(RGB8), false).unwrap();

    let empty_class = mkdir(&d.join("train/b"));
    std::fs::write(empty_class.join("readme.md"), "nothing").unwrap();
    expect(&["train/b", "no .png, .jpg or .jpeg", "1 other file"], false);
    std::fs::remove_dir_all(&empty_class).unwrap();

    let stray = mkdir(&d.join("test/zebra"));
    gradient(8, 8, 0).save(stray.join("z.png")).unwrap();
    expect(&["test/zebra", "\"zebra\" is not a class", "\"a\""], false);
    std::fs::remove_dir_all(&stray).unwrap();

    std::fs::remove_dir_all(d.join("test")).unwrap();
    expect(&["neither test/ nor val/"], false);
    mkdir(&d.join("val"));
    expect(&["val", "no class folders"], false);
    std::fs::remove_dir_all(d.join("train")).unwrap();
    mkdir(&d.join("train"));
    expect(&["train", "no class folders"], false);
}

/// `train` on a folder written by the image crate: a small 3×32×32 model learns two colours in one epoch,
/// the run stores the class names' count, `eval` reads the folder's test split back; a folder of another size
/// is refused in one line with no run left behind, and accepted with `--resize` (stored in the run).
#[test]
fn cli_trains_a_tiny_model_on_an_image_folder() {
    let d = scratch("imgf-cli");
    for (c, colour) in [("blue", [30u8, 40, 200]), ("red", [210, 30, 40])] {
        for (split, n) in [("train", 24), ("test", 8)] {
            let dir = mkdir(&d.join(format!("{split}/{c}")));
            for i in 0..n {
                let img = RgbImage::from_fn(32, 32, |x, y| {
                    let k = ((x * 7 + y * 13 + i * 29) % 41) as u8;
                    Rgb(colour.map(|v| v.saturating_add(k)))
                });
                img.save(dir.join(format!("{i:03}.png"))).unwrap();
            }
        }
    }
    let spec = "3x32x32 > conv(4,3) > relu > maxpool(2) > dense(2)";
    let out = d.join("run");
    let o = run(&[
        "train",
        "--model",
        spec,
        "--data",
        s(&d),
        "--epochs",
        "1",
        "--batch",
        "8",
        "--lr",
        "0.05",
        "--out",
        s(&out),
        "--threads",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("(48 train, 16 test)"), "{text}");
    let acc: f64 = text.split("test_acc=").nth(1).and_then(|t| t.trim().parse().ok()).expect(&text);
    assert!(acc >= 0.9, "test accuracy {acc} after one epoch on two colours: {text}");
    let e = run(&["eval", "--checkpoint", s(&out)]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let etext = String::from_utf8_lossy(&e.stdout);
    assert!(etext.contains("blue") && etext.contains("red"), "{etext}");

    let small = "3x16x16 > conv(4,3) > relu > maxpool(2) > dense(2)";
    let out2 = d.join("run-16");
    let o = run(&["train", "--model", small, "--data", s(&d), "--epochs", "1", "--out", s(&out2)]);
    fails(&o, &["32x32", "16x16", "--resize"]);
    assert!(!out2.exists(), "a run directory was left");
    let o = run(&["train", "--model", small, "--data", s(&d), "--epochs", "1", "--resize", "--out", s(&out2)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // eval reads the run's resize setting.
    let e = run(&["eval", "--checkpoint", s(&out2), "--limit", "4"]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
}

/// The memory limit the other loaders honour bounds the decoded set before it is allocated (the limit lets the
/// tiny model's own budget pass: the set is 41 images of 3 KiB, the model a few KiB at batch 1 on the direct engine).
#[test]
fn cli_refuses_a_folder_larger_than_the_memory_limit() {
    let d = scratch("imgf-mem");
    let a = mkdir(&d.join("train/a"));
    for i in 0..40 {
        gradient(32, 32, i).save(a.join(format!("{i}.png"))).unwrap();
    }
    gradient(32, 32, 0).save(mkdir(&d.join("test/a")).join("x.png")).unwrap();
    let args = ["train", "--model", "3x32x32 > avgpool(32) > dense(1)", "--data", s(&d), "--epochs", "1"];
    let out = d.join("run");
    let more = ["--batch", "1", "--test-limit", "1", "--engine", "direct", "--out", s(&out)];
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
        .args(args.iter().chain(&more))
        .env(cnn_as_mlp::system::LIMIT_VAR, "100000")
        .output()
        .unwrap();
    fails(&o, &["41 images of 3x32x32 need 125952 bytes", "100000", cnn_as_mlp::system::LIMIT_VAR]);
    assert!(!out.exists());
}
