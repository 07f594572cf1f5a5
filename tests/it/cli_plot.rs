//! `cnn-as-mlp plot`: several runs overlaid in one PNG, labelled by what differs; clear errors for what is
//! not a run, and no output file then.
#![cfg(feature = "cli")]

use crate::common;

use common::*;

/// The RGB pixels and size of a PNG file.
fn pixels(path: &std::path::Path) -> (Vec<u8>, u32, u32) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (buf, info.width, info.height)
}

fn count_colour(rgb: &[u8], c: [u8; 3]) -> usize {
    rgb.chunks(3).filter(|p| *p == c).count()
}

/// Two runs that differ in seed and engine: the labels name exactly those, the shared settings are listed
/// once, and both runs' colours are drawn. A third, identical in settings to the first, makes the labels
/// fall back to the directory names beside the settings.
#[test]
fn plot_overlays_runs_labelled_by_what_differs() {
    let d = scratch("plot");
    let (a, b, c) = (d.join("a"), d.join("b"), d.join("c"));
    let args = ["--model", SMALL, "--limit", "128", "--test-limit", "100", "--epochs", "2", "--quiet"];
    ok(&run(&[&["train", "--seed", "1", "--out", s(&a)][..], &args[..]].concat()));
    ok(&run(&[&["train", "--seed", "2", "--engine", "direct", "--out", s(&b)][..], &args[..]].concat()));
    let png = d.join("two.png");
    let o = run(&["plot", s(&a), s(&b), "--out", s(&png)]);
    ok(&o);
    let text = stdout(&o);
    assert!(text.contains(&format!("{}: engine=sparse seed=1", a.display())), "{text}");
    assert!(text.contains(&format!("{}: engine=direct seed=2", b.display())), "{text}");
    assert!(text.contains("same in every run: model=1x28x28-conv4-dense10-") && text.contains(" lr=0.05 "), "{text}");
    let (rgb, w, h) = pixels(&png);
    assert!(w >= 800 && h >= 400, "{w}x{h}");
    // tab10's first two colours: run a in blue, run b in orange (curves, markers and legend swatches).
    assert!(count_colour(&rgb, [31, 119, 180]) > 200, "run a is not drawn");
    assert!(count_colour(&rgb, [255, 127, 14]) > 200, "run b is not drawn");

    ok(&run(&[&["train", "--seed", "1", "--out", s(&c)][..], &args[..]].concat()));
    let o = run(&["plot", s(&a), s(&c), "--out", s(&png)]);
    ok(&o);
    let text = stdout(&o);
    assert!(text.contains(&format!("{}: a", a.display())) && text.contains(&format!("{}: c", c.display())), "{text}");
}

/// A missing directory, a file, a directory that is not a run, a corrupt checkpoint and corrupt metrics are
/// each refused with one line naming the path; the output file is never created.
#[test]
fn plot_refuses_what_is_not_a_run() {
    let d = scratch("plot-errors");
    let good = d.join("good");
    ok(&run(&[
        "train",
        "--model",
        SMALL,
        "--limit",
        "64",
        "--test-limit",
        "50",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        s(&good),
    ]));
    let out = d.join("out.png");
    let missing = d.join("missing");
    fails(&run(&["plot", s(&good), s(&missing), "--out", s(&out)]), &[s(&missing), "no such run directory"]);
    let file = d.join("file.txt");
    std::fs::write(&file, "x").unwrap();
    fails(&run(&["plot", s(&file), "--out", s(&out)]), &[s(&file), "not a run directory"]);
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(&run(&["plot", s(&empty), "--out", s(&out)]), &[s(&empty), "holds no model.safetensors"]);

    let bad_csv = d.join("bad-csv");
    copy_run(&good, &bad_csv);
    std::fs::write(bad_csv.join("metrics.csv"), "epoch,step\n1,oops\n").unwrap();
    fails(&run(&["plot", s(&bad_csv), "--out", s(&out)]), &["metrics.csv", "line 2 is not a metrics row"]);
    let no_rows = d.join("no-rows");
    copy_run(&good, &no_rows);
    std::fs::remove_file(no_rows.join("metrics.csv")).unwrap();
    fails(&run(&["plot", s(&no_rows), "--out", s(&out)]), &[s(&no_rows), "no completed epoch"]);
    let bad_model = d.join("bad-model");
    copy_run(&good, &bad_model);
    std::fs::write(bad_model.join("model.safetensors"), b"\x10\0\0\0\0\0\0\0{").unwrap();
    fails(&run(&["plot", s(&bad_model), "--out", s(&out)]), &["model.safetensors"]);
    assert!(!out.exists(), "a failed plot wrote {}", out.display());

    // An output directory that does not exist is named too, and leaves nothing.
    let nowhere = d.join("no-such-dir").join("x.png");
    fails(&run(&["plot", s(&good), "--out", s(&nowhere)]), &[s(&nowhere)]);
    // One run plots, titled by its directory.
    ok(&run(&["plot", s(&good), "--out", s(&out)]));
    assert!(std::fs::read(&out).unwrap().starts_with(b"\x89PNG"));
}

fn copy_run(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["model.safetensors", "state.safetensors", "metrics.csv", "curves.png"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}
