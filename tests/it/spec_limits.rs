//! Arbitrary and extreme model specs through the parser, the shape checker and the memory budget: each is
//! accepted or refused with an error, never a panic, an overflow that wraps, or an estimate that
//! overflows. The binary's side (`show` and `train` under `ulimit -v`) is `scripts/spec_corpus.sh`.

use cnn_as_mlp::budget::{self, BudgetError, Use};
use cnn_as_mlp::network::Engine;
use cnn_as_mlp::spec::{Layer, Spec};
use proptest::prelude::*;

/// The memory the corpus's verdicts assume: the 8 GB of `ulimit -v 8000000` in `scripts/spec_corpus.sh`.
const CORPUS_LIMIT: u128 = 8_000_000 * 1024;

/// Parses `s`, checks shapes and estimates training at batch 64 on up to 64 test images on every engine:
/// `Ok(bytes)` (the largest estimate) or the first error as text. Panics propagate.
fn verdict(s: &str) -> Result<u128, String> {
    let spec = Spec::parse(s).map_err(|e| e.to_string())?;
    let mut most = 0;
    for engine in Engine::ALL {
        let need = budget::estimate(&spec, engine, Use::train(64, 64)).map_err(|e| e.to_string())?;
        budget::estimate(&spec, engine, Use::BUILD).map_err(|e| e.to_string())?;
        most = most.max(need.total);
    }
    Ok(most)
}

/// Every line of `tests/corpus/specs.txt` (made by `scripts/make_spec_corpus.py`) gets its verdict: `ok`
/// specs parse and need less than 1 GiB; `err` specs are refused by the parser, the shape checker, the
/// 32-bit index check, or need more than the corpus's 8 GB. Errors are one line.
#[test]
fn corpus_of_nasty_specs() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/specs.txt")).unwrap();
    let (mut n_ok, mut n_err) = (0, 0);
    for line in text.lines() {
        let (tag, s) = line.split_once('\t').expect("EXPECT<TAB>SPEC");
        let got = std::panic::catch_unwind(|| verdict(s)).unwrap_or_else(|_| panic!("panicked on {s:?}"));
        match (tag, got) {
            ("ok", Ok(bytes)) => {
                assert!(bytes < 1 << 30, "{s:?}: {bytes} bytes");
                n_ok += 1;
            }
            ("err", Err(e)) => {
                assert!(!e.contains('\n') && !e.is_empty(), "{s:?}: {e:?}");
                n_err += 1;
            }
            ("err", Ok(bytes)) => {
                assert!(bytes > CORPUS_LIMIT, "{s:?} was accepted and needs only {bytes} bytes");
                n_err += 1;
            }
            (tag, got) => panic!("{s:?}: expected {tag}, got {got:?}"),
        }
    }
    assert!(n_ok + n_err >= 300 && n_ok >= 40, "{n_ok} ok, {n_err} err");
}

/// The overflows of the issue are refused with the numbers, not wrapped into a wrong shape.
#[test]
fn wrapping_sizes_are_refused() {
    for (s, needle) in [
        ("1x28x28 > conv(6,3,dil=18446744073709551615)", "dil=18446744073709551615"),
        ("1x28x28 > conv(6,3,pad=18446744073709551615)", "pad=18446744073709551615"),
        ("1x28x28 > conv(6,3,pad=9223372036854775807,mode=replicate)", "exceeds"),
        ("1x28x28 > conv(6,18446744073709551615) > dense(10)", "k=18446744073709551615"),
        ("1x28x28 > local(6,18446744073709551615)", "k=18446744073709551615"),
        ("1x28x28 > dense(18446744073709551615)", "64 bits"),
        ("18446744073709551615x1x1 > dense(10)", "64 bits"),
        ("1x28x28 > conv(18446744073709551615,3)", "64 bits"),
    ] {
        let e = Spec::parse(s).unwrap_err().to_string();
        assert!(e.contains(needle), "{s}: {e}");
    }
}

/// A sparse layer beyond 32-bit indices is a clean error naming the count; the direct engine has no index.
#[test]
fn u32_index_overflow_is_an_error() {
    let spec = Spec::parse("1x28x28 > local(1000000,5) > dense(10)").unwrap();
    let e = budget::estimate(&spec, Engine::Sparse, Use::BUILD).unwrap_err();
    assert!(matches!(e, BudgetError::Index { what: "nonzeros", value: 14_400_000_000, .. }), "{e}");
    let spec = Spec::parse("1x100000x100000 > maxpool(2) > dense(10)").unwrap();
    let e = budget::estimate(&spec, Engine::Sparse, Use::BUILD).unwrap_err().to_string();
    assert!(e.contains("10000000000") && e.contains("32-bit"), "{e}");
    assert!(budget::estimate(&spec, Engine::Direct, Use::BUILD).is_ok());
}

/// Sizes the issue saw abort in the allocator are refused by the budget with the bytes they need. (The issue's
/// `1x4096x4096 > conv(8,3,pad=1)` needs only 4 GB to compile with the compact index; 7000×7000 still needs
/// more than the 8 GB the corpus allows.)
#[test]
fn memory_hogs_are_refused_with_their_bytes() {
    for s in [
        "1x28x28 > dense(1000000000)",
        "1x28x28 > conv(6,3,pad=10000)",
        "1x100000x100000 > dense(10)",
        "1x7000x7000 > conv(8,3,pad=1)",
        "1x28x28 > conv(6,5,pad=1000,mode=replicate)",
    ] {
        let spec = Spec::parse(s).unwrap();
        let need = budget::estimate(&spec, Engine::Sparse, Use::BUILD).unwrap().total;
        assert!(need > CORPUS_LIMIT, "{s}: {need}");
    }
}

/// A number slot: mostly small, often at the edges of u32, i64, u64 and beyond.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0usize..40).prop_map(|v| v.to_string()),
        1 => (0usize..100_000).prop_map(|v| v.to_string()),
        2 => prop::sample::select(vec![
            "4294967295", "4294967296", "2147483648", "9223372036854775807", "9223372036854775808",
            "18446744073709551615", "18446744073709551616", "0", "1",
        ])
        .prop_map(String::from),
        1 => any::<u64>().prop_map(|v| v.to_string()),
    ]
}

fn layer() -> impl Strategy<Value = String> {
    let opt = |name: &'static str| prop::option::of(number().prop_map(move |v| format!(",{name}={v}")));
    let mode = prop::option::of(prop::sample::select(vec!["zeros", "reflect", "replicate", "circular", "bogus"]));
    prop_oneof![
        (number(), number(), opt("stride"), opt("pad"), opt("dil"), mode).prop_map(|(c, k, s, p, d, m)| format!(
            "conv({c},{k}{}{}{}{})",
            s.unwrap_or_default(),
            p.unwrap_or_default(),
            d.unwrap_or_default(),
            m.map(|m| format!(",mode={m}")).unwrap_or_default()
        )),
        (number(), number(), opt("stride"), opt("pad")).prop_map(|(c, k, s, p)| format!(
            "local({c},{k}{}{})",
            s.unwrap_or_default(),
            p.unwrap_or_default()
        )),
        (number(), opt("stride")).prop_map(|(k, s)| format!("maxpool({k}{})", s.unwrap_or_default())),
        (number(), opt("stride")).prop_map(|(k, s)| format!("avgpool({k}{})", s.unwrap_or_default())),
        number().prop_map(|n| format!("dense({n})")),
        prop::sample::select(vec!["relu", "sigmoid", "tanh"]).prop_map(String::from),
    ]
}

fn spec_string() -> impl Strategy<Value = String> {
    (number(), number(), number(), prop::collection::vec(layer(), 0..6))
        .prop_map(|(c, h, w, ls)| std::iter::once(format!("{c}x{h}x{w}")).chain(ls).collect::<Vec<_>>().join(" > "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Grammatical specs with extreme numbers: Ok or a one-line error, never a panic; when accepted, every
    /// shape's feature count fits and a conv's output size is the formula computed without wrapping.
    #[test]
    fn extreme_specs_never_panic(s in spec_string()) {
        match verdict(&s) {
            Err(e) => prop_assert!(!e.contains('\n')),
            Ok(_) => {
                let spec = Spec::parse(&s).unwrap();
                let shapes = spec.output_shapes().unwrap();
                let mut input = spec.input;
                for (layer, out) in spec.layers.iter().zip(&shapes) {
                    prop_assert!((out.c as u128) * (out.h as u128) * (out.w as u128) <= usize::MAX as u128);
                    let window = match *layer {
                        Layer::Conv { k, stride, pad, dil, .. } => Some((k, stride, pad, dil)),
                        Layer::Local { k, stride, pad, .. } => Some((k, stride, pad, 1)),
                        _ => None,
                    };
                    if let Some((k, stride, pad, dil)) = window {
                        let exact = |n: usize| {
                            let room = n as i128 + 2 * pad as i128 - (dil as i128 * (k as i128 - 1) + 1);
                            room / stride as i128 + 1
                        };
                        prop_assert_eq!(out.h as i128, exact(input.h));
                        prop_assert_eq!(out.w as i128, exact(input.w));
                    }
                    input = *out;
                }
            }
        }
    }

    /// Any string at all: Ok or an error, never a panic.
    #[test]
    fn arbitrary_strings_never_panic(s in prop::collection::vec(prop::sample::select(vec![
        "1", "0", "9", "x", ">", "(", ")", ",", "=", " ", "conv", "local", "maxpool", "avgpool", "dense", "relu",
        "pad", "dil", "stride", "mode", "reflect", "18446744073709551615", "é", "\u{0}", "-",
    ]), 0..40).prop_map(|v| v.concat())) {
        let _ = verdict(&s);
    }
}
