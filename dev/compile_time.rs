//! Times the compile of a grouped, table or pruned convolution into the compact index both ways, side by
//! side: through the classic index (`compile_pruned_conv(…).to_compact()`, as before the straight compile)
//! and straight from the geometry (`compile_conv_in(…, Storage::Compact)`):
//! `target/release/examples/compile_time [SPEC] [SPARSITY] [ROUNDS] [both|classic|straight]` prints the median
//! milliseconds of each, interleaved, and the compact index bytes (the same both ways; checked when both run).
//! Default: c64-56 at 0.9, both. One way alone, under `/usr/bin/time -v`, gives that way's peak memory.

use std::time::Instant;

use cnn_as_mlp::compare::measure::random_mask;
use cnn_as_mlp::engines::sparse::conv::{compile_conv_in, compile_pruned_conv};
use cnn_as_mlp::spec::{Layer, Spec, conv_geometry};
use cnn_as_mlp::tied::Storage;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec = args.get(1).map_or("64x56x56 > conv(64,3,pad=1)", String::as_str);
    let s: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0.9);
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    let way = args.get(4).map_or("both", String::as_str);
    let (via_classic, straight_too) = (way != "straight", way != "classic");
    let spec = Spec::parse(spec).unwrap_or_else(|e| panic!("{e}"));
    let (layer, input) = (&spec.layers[0], spec.input);
    let Layer::Conv { groups, table, .. } = *layer else { panic!("not a convolution: {layer:?}") };
    let g = conv_geometry(layer, input).expect("a convolution");
    let width = if table.is_some() { g.c_in } else { g.c_in / groups };
    let keep = random_mask(g.c_out * width * g.k * g.k, s, 0);
    let (mut classic, mut straight) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let a = via_classic.then(|| compile_pruned_conv(&g, groups, table, &keep).to_compact());
        classic.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let b = straight_too.then(|| compile_conv_in(&g, groups, table, Some(&keep), Storage::Compact));
        straight.push(t.elapsed().as_secs_f64() * 1e3);
        if let (Some(a), Some(b)) = (&a, &b) {
            assert_eq!(a.compact(), b.compact(), "the two compiles differ");
        }
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let m = compile_conv_in(&g, groups, table, Some(&keep), Storage::Compact);
    // (The last line compiles once more, straight; the peak of a `classic` run is still the classic one's.)
    println!(
        "{} sparsity {s}: nnz {} compact index {} bytes; compile ms (median of {rounds}): via classic {:.0}, straight {:.0}",
        spec.layers[0],
        m.nnz(),
        m.index_bytes(),
        med(classic),
        med(straight)
    );
}
