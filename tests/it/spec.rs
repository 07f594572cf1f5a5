//! Model specs: canonical printing, round trips, and an error for every malformed string and impossible
//! shape that names the problem.

use cnn_as_mlp::spec::{LENET5, Layer, SEED, Spec, SpecError};

/// parse(print(spec)) == spec, and printing is canonical (defaults left out, whitespace normalised).
#[test]
fn spec_round_trips_through_display() {
    let specs = [
        LENET5,
        SEED,
        "3x32x32>conv(32,3,pad=1,mode=reflect)>relu>conv(64,3,stride=2,pad=1)>tanh>maxpool(3,stride=2)>dense(10)",
        "  1 x 9 x 9 > local( 4 , 3 , stride = 2 ) > sigmoid > avgpool(2, stride=1) > dense(5)",
        "2x12x12 > conv(4,3,dil=2,pad=2,mode=circular) > conv(4,1) > conv(2,3,stride=3,mode=replicate,pad=1)",
    ];
    for s in specs {
        let spec = Spec::parse(s).unwrap();
        let printed = spec.to_string();
        assert_eq!(Spec::parse(&printed).unwrap(), spec, "{s} printed as {printed}");
        assert_eq!(Spec::parse(&printed).unwrap().to_string(), printed);
        assert!(!printed.contains("stride=1,") && !printed.contains("mode=zeros"), "{printed} is not canonical");
    }
    assert_eq!(Spec::parse("lenet5").unwrap().to_string(), LENET5);
    assert_eq!(Spec::parse("seed").unwrap().to_string(), SEED);
    assert_eq!(Spec::parse("1x4x4 > maxpool(2, stride=2)").unwrap().to_string(), "1x4x4 > maxpool(2)");
    let spec = Spec::parse("1x4x4 > avgpool(2, stride=1)").unwrap();
    assert_eq!(spec.layers[0], Layer::AvgPool { k: 2, stride: 1 });
}

fn syntax_error(s: &str) -> (usize, String) {
    match Spec::parse(s) {
        Err(e @ SpecError::Syntax { pos, .. }) => (pos, e.to_string()),
        other => panic!("{s:?}: expected a syntax error, got {other:?}"),
    }
}

/// Every malformed string gets an error with the position and what was expected.
#[test]
fn malformed_specs_name_position_and_expectation() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "an input shape CxHxW"),
        ("1x28", 4, "'x' between the dimensions"),
        ("1x28x28 conv(6,5)", 8, "'>' before the next layer"),
        ("1x28x28 > convolution(6,5)", 10, "a layer (conv, local"),
        ("1x28x28 > conv 6,5", 15, "'(' after `conv`"),
        ("1x28x28 > conv(6,5", 18, "',' or ')'"),
        ("1x28x28 > conv(6)", 16, "2 number(s): conv(c_out, k"),
        ("1x28x28 > conv(6,5,7)", 19, "2 number(s)"),
        ("1x28x28 > conv(6,5,strde=2)", 19, "an option of conv(c_out, k"),
        ("1x28x28 > conv(6,5,mode=mirror)", 19, "a padding mode: zeros, reflect"),
        ("1x28x28 > conv(6,5,stride=0)", 19, "a positive stride"),
        ("1x28x28 > conv(0,5)", 15, "a positive channel count"),
        ("1x28x28 > conv(6,5,pad=1,pad=2)", 25, "each option once"),
        ("1x28x28 > conv(6,5,pad=x)", 19, "a number for `pad`"),
        ("1x28x28 > relu(2)", 14, "takes no arguments"),
        ("1x28x28 > dense(10) >", 21, "a layer"),
        ("1x28x28 > local(4,3,dil=2)", 20, "an option of local"),
        ("1x28x28 > maxpool(2,pad=1)", 20, "an option of maxpool"),
        ("1x28x28 > dense(99999999999999999999999)", 16, "fits in 64 bits"),
    ];
    for &(s, pos, needle) in cases {
        let (at, msg) = syntax_error(s);
        assert!(msg.contains(needle), "{s:?}: message {msg:?} lacks {needle:?}");
        assert_eq!(at, pos, "{s:?}: {msg}");
        assert!(msg.contains(&format!("character {pos}")), "{msg}");
    }
}

/// A layer whose output would be empty, or whose padding mode cannot apply, is refused with its index, its
/// text, its input shape and the numbers.
#[test]
fn impossible_shapes_name_layer_and_numbers() {
    let cases: &[(&str, &str)] = &[
        (
            "1x5x5 > conv(4,7)",
            "layer 0 `conv(4,7)` on input 1x5x5: kernel span 7 (k=7, dil=1) exceeds the padded input 5x5",
        ),
        ("1x9x9 > conv(4,3,dil=5)", "kernel span 11 (k=3, dil=5) exceeds the padded input 9x9"),
        (
            "1x28x28 > conv(6,5) > relu > maxpool(2) > conv(16,5) > maxpool(2) > conv(8,5)",
            "layer 5 `conv(8,5)` on input 16x4x4",
        ),
        ("1x4x6 > conv(2,3,pad=4,mode=reflect)", "reflect padding 4 must be smaller than the input size 4x6"),
        ("1x3x3 > conv(2,3,pad=4,mode=circular)", "circular padding 4 must not exceed the input size 3x3"),
        ("1x4x4 > maxpool(5)", "layer 0 `maxpool(5)` on input 1x4x4: window 5x5 larger than the input 4x4"),
        (
            "1x8x8 > dense(10) > avgpool(2)",
            "layer 1 `avgpool(2)` on input 10x1x1: window 2x2 larger than the input 1x1",
        ),
        ("0x8x8 > dense(3)", "a positive input shape"),
    ];
    for &(s, needle) in cases {
        let msg = Spec::parse(s).expect_err(s).to_string();
        assert!(msg.contains(needle), "{s:?}: message {msg:?} lacks {needle:?}");
        assert!(!msg.contains('\n'), "{msg:?} is not one line");
    }
    // Reflect padding one less than the input applies.
    assert!(Spec::parse("1x4x6 > conv(2,3,pad=3,mode=reflect)").is_ok());
}

/// A custom spec's short name reads as its layers and ends in a hash of the whole canonical spec: specs
/// that differ only in a stride or an activation get different names; whitespace does not matter.
#[test]
fn short_name_is_readable_and_tells_specs_apart() {
    let a = Spec::parse("1x28x28 > conv(6,5) > relu > maxpool(2) > dense(10)").unwrap();
    let name = a.short_name();
    assert!(name.starts_with("1x28x28-conv6-max2-dense10-"), "{name}");
    let hash = name.rsplit('-').next().unwrap();
    assert!(hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    let same = Spec::parse("1x28x28>conv(6,5)>relu>maxpool(2)>dense(10)").unwrap();
    assert_eq!(same.short_name(), name);
    for other in [
        "1x28x28 > conv(6,5) > tanh > maxpool(2) > dense(10)",
        "1x28x28 > conv(6,5,stride=2) > relu > maxpool(2) > dense(10)",
    ] {
        let b = Spec::parse(other).unwrap().short_name();
        assert_ne!(b, name, "{other}");
        assert_eq!(b[..b.len() - 9], name[..name.len() - 9]);
    }
    let long = Spec::parse("vgg16").unwrap().short_name();
    assert!(long.chars().count() <= 40 + 9 && long.contains('~'), "{long}");
}
