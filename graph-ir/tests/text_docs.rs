//! docs/kir.md is a public interface: every ```kir block in it is a full
//! graph that must parse and print back unchanged (up to comments and
//! omitted defaults), every op must have an example there, and the shipped
//! examples/kir files must parse.

use std::collections::BTreeSet;
use std::path::PathBuf;

use kiln_ir::text::{parse, print};
use kiln_ir::verify;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (first line number, body) of every ```kir block.
fn kir_blocks(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        match &mut cur {
            None if line.trim() == "```kir" => cur = Some((i + 2, String::new())),
            Some(_) if line.trim() == "```" => out.push(cur.take().unwrap()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    assert!(cur.is_none(), "unterminated ```kir block");
    out
}

fn parse_or_panic(src: &str, name: &str) -> kiln_ir::Graph {
    parse(src, name).unwrap_or_else(|e| panic!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))
}

#[test]
fn every_kir_block_in_the_docs_parses_and_reprints() {
    let md = std::fs::read_to_string(repo().join("docs/kir.md")).unwrap();
    let blocks = kir_blocks(&md);
    assert!(blocks.len() >= 15, "found only {} ```kir blocks", blocks.len());
    let mut ops_seen = BTreeSet::new();
    for (line, body) in &blocks {
        let g = parse_or_panic(body, &format!("docs/kir.md (block at line {line})"));
        verify(&g).unwrap();
        let printed = print(&g);
        assert_eq!(print(&parse_or_panic(&printed, "reprinted")), printed);
        for id in g.node_ids() {
            ops_seen.insert(g.op(id).name());
        }
    }
    let all_ops = all_op_names();
    let missing: Vec<_> = all_ops.iter().filter(|n| !ops_seen.contains(*n)).collect();
    assert!(missing.is_empty(), "ops without an example in docs/kir.md: {missing:?}");
}

/// Every op keyword, from the op enum itself (so a new op without docs fails).
fn all_op_names() -> Vec<&'static str> {
    use kiln_ir::*;
    let c = Conv2dAttrs::default();
    let p = Pool2dAttrs { kernel: [1, 1], stride: [1, 1], padding: [0, 0] };
    let mut v: Vec<Op> = vec![
        Op::Input { name: String::new(), role: InputRole::Input },
        Op::Input { name: String::new(), role: InputRole::Param },
        Op::Input { name: String::new(), role: InputRole::State },
        Op::Constant(HostTensor::scalar_f32(0.0)),
        Op::Select,
        Op::Cast(DType::F32),
        Op::StopGradient,
        Op::ArgMax { axis: 0, keepdims: false },
        Op::Reshape(Shape::scalar()),
        Op::Permute(vec![]),
        Op::BroadcastTo(Shape::scalar()),
        Op::Slice { start: vec![], end: vec![], step: vec![] },
        Op::Concat { axis: 0 },
        Op::Pad { lo: vec![], hi: vec![], value: 0.0 },
        Op::MatMul { trans_a: false, trans_b: false },
        Op::Conv2d(c),
        Op::Conv2dGradInput { attrs: c, input_hw: [1, 1] },
        Op::Conv2dGradWeight { attrs: c, kernel_hw: [1, 1] },
        Op::Conv1d(Conv1dAttrs::default()),
        Op::MaxPool2d(p),
        Op::MaxPool2dGrad(p),
        Op::AvgPool2d { pool: p, count_include_pad: true },
        Op::AvgPool2dGrad { pool: p, count_include_pad: true, input_hw: [1, 1] },
        Op::Gather { axis: 0 },
        Op::ScatterAdd { axis: 0, size: 1 },
        Op::OneHot { classes: 1 },
        Op::RandomUniform { seed: 0, low: 0.0, high: 1.0, shape: Shape::scalar() },
        Op::FusedDense { trans_b: false, bias: false, act: Activation::None },
        Op::FusedConv2d { attrs: c, bias: false, act: Activation::None },
        Op::SoftmaxCrossEntropy,
    ];
    v.extend(UnaryOp::ALL.map(Op::Unary));
    v.extend(BinaryOp::ALL.map(Op::Binary));
    v.extend(CompareOp::ALL.map(Op::Compare));
    v.extend(ReduceOp::ALL.map(|op| Op::Reduce { op, axes: vec![], keepdims: false }));
    // Exhaustiveness guard: adding an Op variant makes this match fail to
    // compile until the list above (and the docs) cover it.
    for op in &v {
        match op {
            Op::Input { .. }
            | Op::Constant(_)
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Compare(_)
            | Op::Select
            | Op::Cast(_)
            | Op::StopGradient
            | Op::Reduce { .. }
            | Op::ArgMax { .. }
            | Op::Reshape(_)
            | Op::Permute(_)
            | Op::BroadcastTo(_)
            | Op::Slice { .. }
            | Op::Concat { .. }
            | Op::Pad { .. }
            | Op::MatMul { .. }
            | Op::Conv2d(_)
            | Op::Conv2dGradInput { .. }
            | Op::Conv2dGradWeight { .. }
            | Op::Conv1d(_)
            | Op::MaxPool2d(_)
            | Op::MaxPool2dGrad(_)
            | Op::AvgPool2d { .. }
            | Op::AvgPool2dGrad { .. }
            | Op::Gather { .. }
            | Op::ScatterAdd { .. }
            | Op::OneHot { .. }
            | Op::RandomUniform { .. }
            | Op::FusedDense { .. }
            | Op::FusedConv2d { .. }
            | Op::SoftmaxCrossEntropy => {}
        }
    }
    v.iter().map(|o| o.name()).collect()
}

#[test]
fn shipped_example_files_parse() {
    let dir = repo().join("examples/kir");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "kir") {
            let src = std::fs::read_to_string(&p).unwrap();
            parse_or_panic(&src, &p.display().to_string());
            n += 1;
        }
    }
    assert!(n >= 2, "expected at least mlp_grad.kir and affine.kir in {}", dir.display());
}

#[test]
fn the_docs_worked_example_is_the_shipped_mlp_grad_file() {
    let md = std::fs::read_to_string(repo().join("docs/kir.md")).unwrap();
    let file = std::fs::read_to_string(repo().join("examples/kir/mlp_grad.kir")).unwrap();
    assert!(
        kir_blocks(&md).iter().any(|(_, b)| *b == file),
        "docs/kir.md's worked example must equal examples/kir/mlp_grad.kir"
    );
}
