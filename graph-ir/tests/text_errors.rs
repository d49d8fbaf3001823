//! Parse errors: exact `file:line:col: message` text, several per file.

use kiln_ir::text::parse;

fn errors(src: &str) -> Vec<String> {
    match parse(src, "bad.kir") {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

fn one(src: &str) -> String {
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().unwrap()
}

const X: &str = "%0 = input \"x\" : f32[2,3]\n";

#[test]
fn syntax_errors() {
    assert_eq!(one("%0 input \"x\" : f32[2]"), "bad.kir:1:4: expected `=`, found `input`");
    assert_eq!(one("%0 = input x : f32[2]"), "bad.kir:1:12: expected a quoted input name, found `x`");
    assert_eq!(one("%0 = input \"x\""), "bad.kir:1:15: `input` needs a type: `input \"x\" : f32[...]`");
    assert_eq!(one("%0 = input \"x\" : f32[2"), "bad.kir:1:23: expected `,` or `]`, found end of line");
    assert_eq!(one("%0 = input \"x\" : f16[2]"), "bad.kir:1:18: unknown dtype `f16` (expected one of f32, f64, i64, i32, bool)");
    assert_eq!(one("%0 = input \"x\" : f32[2,-1]"), "bad.kir:1:24: dimension `-1` is not a non-negative integer");
    assert_eq!(one("%0 = input \"x : f32[2]"), "bad.kir:1:12: unterminated string");
    assert_eq!(one("x = 1"), "bad.kir:1:1: expected `%N = ...`, `output`, `update` or `grad`, found `x`");
    assert_eq!(one(&format!("{X}%1 = neg %0 : f32[2,3] extra")), "bad.kir:2:24: expected an attribute `name=value`, `:` and a type, or end of line, found `extra`");
    assert_eq!(one(&format!("{X}%1 = neg %0 ; f32[2,3]")), "bad.kir:2:13: unexpected character `;`");
    assert_eq!(one(&format!("{X}grad %0 for %0")), "bad.kir:2:9: expected `wrt`, found `for`");
    assert_eq!(one("%x = neg %0"), "bad.kir:1:1: expected a node id (digits) after `%`");
}

#[test]
fn unknown_ops_and_attributes() {
    assert_eq!(one(&format!("{X}%1 = softmax %0")), "bad.kir:2:6: unknown op `softmax`");
    assert_eq!(one(&format!("{X}%1 = neg %0 axis=1")), "bad.kir:2:13: unknown attribute `axis` for op `neg`; `neg` takes no attributes");
    assert_eq!(one(&format!("{X}%1 = sum %0 axes=[0]")), "bad.kir:2:6: unknown op `sum` (did you mean `reduce_sum`?)");
    assert_eq!(one(&format!("{X}%1 = tahn %0")), "bad.kir:2:6: unknown op `tahn` (did you mean `tanh`?)");
    assert_eq!(
        one("%0 = input \"x\" : f32[1,2,5,5]\n%1 = param \"w\" : f32[4,2,3,3]\n%2 = conv2d %0, %1 padding=[1,1]"),
        "bad.kir:3:20: unknown attribute `padding` for op `conv2d` (did you mean `pad`?); `conv2d` takes `stride`, `pad`, `dilation`, `groups`"
    );
    assert_eq!(
        one(&format!("{X}%1 = reduce_sum %0 axes=[0] keepdim=true")),
        "bad.kir:2:29: unknown attribute `keepdim` for op `reduce_sum` (did you mean `keepdims`?); `reduce_sum` takes `axes`, `keepdims`"
    );
    assert_eq!(one(&format!("{X}%1 = reduce_sum %0 keepdims=true")), "bad.kir:2:6: missing attribute `axes`");
    assert_eq!(one(&format!("{X}%1 = reduce_sum %0 axes=[0] axes=[1]")), "bad.kir:2:29: attribute `axes` is given twice");
    assert_eq!(one(&format!("{X}%1 = reduce_sum %0 axes=0")), "bad.kir:2:25: attribute `axes` expects a list `[...]`, got `0`");
    assert_eq!(one(&format!("{X}%1 = reduce_sum %0 axes=[0] keepdims=yes")), "bad.kir:2:38: attribute `keepdims` expects `true` or `false`, got `yes`");
    assert_eq!(one(&format!("{X}%1 = cast %0 to=f16")), "bad.kir:2:17: attribute `to` expects a dtype (f32, f64, i64, i32, bool), got `f16`");
    assert_eq!(one(&format!("{X}%1 = reshape %0 shape=[3,x]")), "bad.kir:2:26: attribute `shape`: `x` is not a non-negative integer");
    assert_eq!(
        one("%0 = input \"x\" : f32[1,1,4,4]\n%1 = max_pool2d %0 kernel=[2,2,2]"),
        "bad.kir:2:20: attribute `kernel` expects two values `[h,w]`, got 3"
    );
    assert_eq!(
        one("%0 = input \"x\" : f32[2,3]\n%1 = param \"w\" : f32[3,3]\n%2 = fused_dense %0, %1 act=gelu"),
        "bad.kir:3:29: attribute `act` expects one of none, relu, sigmoid, tanh, got `gelu`"
    );
}

#[test]
fn bad_numbers_in_constants() {
    assert_eq!(one("%0 = const 1.5 : i64[]"), "bad.kir:1:12: `1.5` is not an i64 integer");
    assert_eq!(one("%0 = const [1, NaN] : f32[2]"), "bad.kir:1:16: `NaN` is not an f32 number");
    assert_eq!(one("%0 = const [1, 2] : f32[3]"), "bad.kir:1:12: constant of type f32[3] needs 3 values, got 2");
    assert_eq!(one("%0 = const 1 : bool[]"), "bad.kir:1:12: `1` is not `true` or `false`");
    assert_eq!(one("%0 = const 3000000000 : i32[]"), "bad.kir:1:12: `3000000000` is not an i32 integer");
    assert_eq!(one("%0 = const 1"), "bad.kir:1:13: `const` needs a type: `const 1.5 : f32[]`");
    assert_eq!(one("%0 = const 1.0e : f32[]"), "bad.kir:1:12: `1.0e` is not an f32 number");
}

#[test]
fn references_and_duplicates() {
    assert_eq!(one(&format!("{X}%1 = neg %7")), "bad.kir:2:10: unknown node %7");
    assert_eq!(
        one("%0 = input \"x\" : f32[2]\n%1 = add %0, %2\n%2 = neg %0"),
        "bad.kir:2:14: %2 is used before its definition on line 3"
    );
    assert_eq!(one(&format!("{X}%0 = neg %0")), "bad.kir:2:1: %0 is defined twice (first on line 1)");
    assert_eq!(one(&format!("{X}%1 = param \"x\" : f32[1]")), "bad.kir:2:6: input name `x` is already used by %0 on line 1");
    assert_eq!(one(&format!("{X}output \"y\" = %0\noutput \"y\" = %0")), "bad.kir:3:8: output `y` is already defined on line 2");
    assert_eq!(one(&format!("{X}output \"y\" = %4")), "bad.kir:2:14: unknown node %4");
    assert_eq!(
        one(&format!("{X}%1 = reduce_sum %0 axes=[0,1]\ngrad %1 wrt %0, %3")),
        "bad.kir:3:17: unknown node %3"
    );
}

#[test]
fn type_errors() {
    assert_eq!(
        one("%0 = input \"a\" : f32[2,3]\n%1 = input \"b\" : f32[4,3]\n%2 = add %0, %1"),
        "bad.kir:3:6: add(%0: f32[2,3], %1: f32[4,3]): shapes [2,3] and [4,3] do not broadcast"
    );
    assert_eq!(one(&format!("{X}%1 = neg %0 : f32[3,2]")), "bad.kir:2:15: declared type f32[3,2] but neg gives f32[2,3]");
    assert_eq!(one(&format!("{X}%1 = neg %0, %0")), "bad.kir:2:6: neg(%0: f32[2,3], %0: f32[2,3]): expects 1 operand(s), got 2");
    assert_eq!(one(&format!("{X}grad %0 wrt %0")), "bad.kir:2:6: the loss %0 of a grad request must be a float scalar, got f32[2,3]");
    assert_eq!(
        one(&format!("{X}%1 = param \"w\" : f32[3]\nupdate \"x\" = %0")),
        "bad.kir:3:8: `x` is a data input; only `param` and `state` inputs can be updated"
    );
    assert_eq!(
        one(&format!("{X}%1 = param \"w\" : f32[3]\nupdate \"w\" = %0")),
        "bad.kir:3:14: update of `w` (%1: f32[3]) with %0: f32[2,3], types differ"
    );
    assert_eq!(one(&format!("{X}update \"q\" = %0")), "bad.kir:2:8: update of unknown param/state `q`");
}

#[test]
fn many_errors_are_reported_in_order_without_cascades() {
    let src = "%0 = input \"x\" : f32[2]
%1 = frob %0
%2 = neg %1
%3 = neg %0 : f32[3]
%4 = exp %3
%5 = add %0, %9
output \"o\" = %2
";
    // %2 uses the failed %1 and %4 uses %3 (whose declared type was wrong
    // but inferable), so neither adds an error of its own; output "o" names
    // %2, which is fine.
    assert_eq!(
        errors(src),
        vec![
            "bad.kir:2:6: unknown op `frob`",
            "bad.kir:4:15: declared type f32[3] but neg gives f32[2]",
            "bad.kir:6:14: unknown node %9",
        ]
    );
}

#[test]
fn error_values_are_parse_variants() {
    let e = parse("%0 = bogus", "dir/f.kir").unwrap_err();
    assert_eq!(
        e,
        vec![kiln_ir::IrError::Parse { file: "dir/f.kir".into(), line: 1, col: 6, message: "unknown op `bogus`".into() }]
    );
}
