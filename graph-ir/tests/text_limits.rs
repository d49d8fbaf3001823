//! `text::parse_with_limits`: what a few bytes of untrusted text may make
//! the parser allocate.

use kiln_ir::text::{parse, parse_with_limits, ParseLimits};

fn errors(src: &str, limits: &ParseLimits) -> String {
    match parse_with_limits(src, "t.kir", limits) {
        Ok(_) => panic!("parsed:\n{src}"),
        Err(es) => es.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"),
    }
}

const SMALL: ParseLimits = ParseLimits { max_node_id: 100, max_constant_bytes: 64 };

#[test]
fn a_splat_constant_over_the_budget_is_an_error_before_it_is_allocated() {
    // 16 f32 = 64 bytes fit; one more element does not.
    assert!(parse_with_limits("%0 = const 0.5 : f32[16]\noutput \"c\" = %0\n", "t.kir", &SMALL).is_ok());
    let e = errors("%0 = const 0.5 : f32[17]\noutput \"c\" = %0\n", &SMALL);
    assert!(e.contains("t.kir:1:") && e.contains("over the parse limit on constants"), "{e}");
    // The budget is shared by all constants.
    let e = errors("%0 = const 1 : f32[10]\n%1 = const 2 : f32[10]\n%2 = add %0, %1 : f32[10]\noutput \"c\" = %2\n", &SMALL);
    assert!(e.contains("t.kir:2:") && e.contains("(24 bytes left)"), "{e}");
    // A terabyte from one short line, with no limit but memory itself.
    let e = errors("%0 = const 0 : f32[1000000,1000000]\noutput \"c\" = %0\n", &ParseLimits { max_node_id: 10, max_constant_bytes: 1 << 30 });
    assert!(e.contains("over the parse limit"), "{e}");
}

#[test]
fn a_constant_whose_size_overflows_is_an_error_not_a_panic() {
    for src in ["%0 = const 0 : f32[4294967296,4294967296]\n", "%0 = const 0 : f64[9223372036854775807,3]\n"] {
        match parse(src, "t.kir") {
            Err(es) => assert!(es[0].to_string().contains("more elements than fit in memory"), "{}", es[0]),
            Ok(_) => panic!("{src}"),
        }
    }
}

#[test]
fn a_node_id_over_the_limit_is_an_error() {
    assert!(parse_with_limits("%100 = input \"x\" : f32[2]\noutput \"x\" = %100\n", "t.kir", &SMALL).is_ok());
    let e = errors("%5000 = input \"x\" : f32[2]\noutput \"x\" = %5000\n", &SMALL);
    assert!(e.contains("t.kir:1:1: node id %5000 is over the limit of %100"), "{e}");
    assert!(!e.contains("unknown node"), "no follow-up error for its users: {e}");
}

/// Found by the `no_panic` proptests: a conv whose weight channels times
/// groups overflows is a type error (its message used to multiply them).
#[test]
fn conv_channels_times_groups_overflowing_is_an_error() {
    use kiln_ir::{Conv2dAttrs, Graph, Op, TensorType};
    let mut g = Graph::new();
    let x = g.input("x", TensorType::new(kiln_ir::DType::F64, [4, 0, 5, 1])).unwrap();
    let w = g.input("w", TensorType::new(kiln_ir::DType::F64, [0, 3, 1, 1])).unwrap();
    let attrs = Conv2dAttrs { groups: 1 << 63, ..Default::default() };
    let e = g.apply(Op::Conv2d(attrs), &[x, w]).unwrap_err().to_string();
    assert!(e.contains("expects 27670116110564327424 input channels"), "{e}");
}
