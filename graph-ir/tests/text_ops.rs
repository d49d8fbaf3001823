//! Hand-written `.kir` for every op family: each file is written in canonical
//! form, so it must parse, verify and print back byte for byte.

use kiln_ir::text::{parse, print};
use kiln_ir::*;

fn roundtrip(src: &str) -> Graph {
    let g = parse(src, "t.kir").unwrap_or_else(|e| panic!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")));
    verify(&g).unwrap();
    assert_eq!(print(&g), src);
    g
}

/// A shorthand form (defaults omitted, types omitted) means the canonical one.
fn same_as(short: &str, canonical: &str) {
    let g = parse(short, "short.kir").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(print(&g), canonical);
}

#[test]
fn inputs_and_constants() {
    let g = roundtrip(
        "%0 = input \"x\" : f32[64,784]
%1 = param \"w\" : f32[784,10]
%2 = state \"step\" : i64[]
%3 = const 0.5 : f32[]
%4 = const [1.0, 2.5, -3.0] : f32[3]
%5 = const [nan, inf, -inf, -0.0, 1e-45, 3.4028235e38] : f32[6]
%6 = const [1, -2, 9223372036854775807] : i64[3]
%7 = const [true, false] : bool[2]
%8 = const 0.1 : f64[]
%9 = const 7 : i32[2,2]
%10 = const [] : f32[0]
%11 = input \"we\\\"ird\\\\name\" : bool[1]
",
    );
    assert_eq!(g.op(NodeId(2)), &Op::Input { name: "step".into(), role: InputRole::State });
    let Op::Constant(t) = g.op(NodeId(5)) else { panic!() };
    let v = t.as_f32().unwrap();
    assert!(v[0].is_nan() && v[1] == f32::INFINITY && v[2] == f32::NEG_INFINITY);
    assert_eq!(v[3].to_bits(), (-0.0f32).to_bits());
    assert_eq!(v[4], f32::from_bits(1));
    let Op::Constant(t) = g.op(NodeId(9)) else { panic!() };
    assert_eq!(t.data(), &TensorData::I32(vec![7; 4]));
    let Op::Constant(t) = g.op(NodeId(8)) else { panic!() };
    assert_eq!(t.data(), &TensorData::F64(vec![0.1]));
    assert!(g.find_input("we\"ird\\name").is_some());
}

#[test]
fn elementwise_families() {
    let mut src = String::from("%0 = input \"a\" : f32[2,3]\n%1 = input \"b\" : f32[3]\n");
    let mut id = 2;
    for u in UnaryOp::ALL {
        src.push_str(&format!("%{id} = {} %0 : f32[2,3]\n", u.name()));
        id += 1;
    }
    for b in BinaryOp::ALL {
        src.push_str(&format!("%{id} = {} %0, %1 : f32[2,3]\n", b.name()));
        id += 1;
    }
    let first_mask = id;
    for c in CompareOp::ALL {
        src.push_str(&format!("%{id} = {} %1, %0 : bool[2,3]\n", c.name()));
        id += 1;
    }
    src.push_str(&format!("%{id} = select %{first_mask}, %0, %1 : f32[2,3]\n"));
    src.push_str(&format!("%{} = cast %0 to=i64 : i64[2,3]\n", id + 1));
    src.push_str(&format!("%{} = stop_gradient %1 : f32[3]\n", id + 2));
    let g = roundtrip(&src);
    assert_eq!(g.op(NodeId(2)), &Op::Unary(UnaryOp::Neg));
    assert_eq!(g.operands(NodeId(id)), vec![NodeId(first_mask), NodeId(0), NodeId(1)]);
}

#[test]
fn reductions_and_layout() {
    roundtrip(
        "%0 = input \"x\" : f32[2,3,4]
%1 = reduce_sum %0 axes=[0,2] keepdims=false : f32[3]
%2 = reduce_mean %0 axes=[1] keepdims=true : f32[2,1,4]
%3 = reduce_max %0 axes=[] keepdims=false : f32[2,3,4]
%4 = reduce_min %0 axes=[0,1,2] keepdims=false : f32[]
%5 = argmax %0 axis=2 keepdims=false : i64[2,3]
%6 = reshape %0 shape=[6,4] : f32[6,4]
%7 = permute %0 perm=[2,0,1] : f32[4,2,3]
%8 = broadcast_to %1 shape=[5,3] : f32[5,3]
%9 = slice %0 start=[0,1,0] end=[2,3,4] step=[1,1,2] : f32[2,2,2]
%10 = concat %0, %0 axis=1 : f32[2,6,4]
%11 = pad %0 lo=[0,1,0] hi=[1,0,2] value=-1.5 : f32[3,4,6]
",
    );
    same_as(
        "%0 = input \"x\" : f32[2,3]\n%1 = reduce_sum %0 axes=[1]\n%2 = slice %0 start=[0,1] end=[2,3]\n%3 = pad %0 lo=[1,1] hi=[0,0]\n",
        "%0 = input \"x\" : f32[2,3]\n%1 = reduce_sum %0 axes=[1] keepdims=false : f32[2]\n%2 = slice %0 start=[0,1] end=[2,3] step=[1,1] : f32[2,2]\n%3 = pad %0 lo=[1,1] hi=[0,0] value=0.0 : f32[3,4]\n",
    );
}

#[test]
fn matmul_and_convolutions() {
    roundtrip(
        "%0 = input \"a\" : f32[5,2,3]
%1 = param \"b\" : f32[4,3]
%2 = matmul %0, %1 trans_a=false trans_b=true : f32[5,2,4]
%3 = input \"x\" : f32[64,1,28,28]
%4 = param \"w\" : f32[6,1,5,5]
%5 = conv2d %3, %4 stride=[1,1] pad=[2,2] dilation=[1,1] groups=1 : f32[64,6,28,28]
%6 = conv2d_grad_input %5, %4 stride=[1,1] pad=[2,2] dilation=[1,1] groups=1 input_hw=[28,28] : f32[64,1,28,28]
%7 = conv2d_grad_weight %3, %5 stride=[1,1] pad=[2,2] dilation=[1,1] groups=1 kernel_hw=[5,5] : f32[6,1,5,5]
%8 = input \"s\" : f32[2,4,10]
%9 = param \"k\" : f32[6,2,3]
%10 = conv1d %8, %9 stride=2 pad=1 dilation=1 groups=2 : f32[2,6,5]
",
    );
    same_as(
        "%0 = input \"x\" : f32[1,2,5,5]\n%1 = param \"w\" : f32[4,2,3,3]\n%2 = conv2d %0, %1 pad=[1,1]\n",
        "%0 = input \"x\" : f32[1,2,5,5]\n%1 = param \"w\" : f32[4,2,3,3]\n%2 = conv2d %0, %1 stride=[1,1] pad=[1,1] dilation=[1,1] groups=1 : f32[1,4,5,5]\n",
    );
}

#[test]
fn pooling() {
    roundtrip(
        "%0 = input \"x\" : f32[2,3,8,8]
%1 = max_pool2d %0 kernel=[2,2] stride=[2,2] pad=[0,0] : f32[2,3,4,4]
%2 = max_pool2d_grad %0, %1 kernel=[2,2] stride=[2,2] pad=[0,0] : f32[2,3,8,8]
%3 = avg_pool2d %0 kernel=[3,3] stride=[1,1] pad=[1,1] count_include_pad=false : f32[2,3,8,8]
%4 = avg_pool2d_grad %3 kernel=[3,3] stride=[1,1] pad=[1,1] count_include_pad=false input_hw=[8,8] : f32[2,3,8,8]
",
    );
    same_as(
        "%0 = input \"x\" : f32[1,1,4,4]\n%1 = avg_pool2d %0 kernel=[2,2]\n",
        "%0 = input \"x\" : f32[1,1,4,4]\n%1 = avg_pool2d %0 kernel=[2,2] stride=[2,2] pad=[0,0] count_include_pad=true : f32[1,1,2,2]\n",
    );
}

#[test]
fn indexing_random_and_fused() {
    let g = roundtrip(
        "%0 = param \"emb\" : f32[10,4]
%1 = input \"ids\" : i64[2,3]
%2 = gather %0, %1 axis=0 : f32[2,3,4]
%3 = scatter_add %1, %2 axis=0 size=10 : f32[10,4]
%4 = one_hot %1 classes=10 : f32[2,3,10]
%5 = state \"step\" : i64[]
%6 = random_uniform %5 seed=18446744073709551615 low=-0.5 high=0.5 shape=[3,3] : f32[3,3]
%7 = input \"x\" : f32[8,4]
%8 = param \"w\" : f32[5,4]
%9 = param \"bias\" : f32[5]
%10 = fused_dense %7, %8, %9 trans_b=true bias=true act=relu : f32[8,5]
%11 = input \"img\" : f32[1,4,6,6]
%12 = param \"cw\" : f32[5,4,3,3]
%13 = fused_conv2d %11, %12, %9 stride=[1,1] pad=[1,1] dilation=[1,1] groups=1 bias=true act=tanh : f32[1,5,6,6]
%14 = input \"labels\" : i64[8]
%15 = softmax_cross_entropy %10, %14 : f32[8]
",
    );
    assert_eq!(
        g.op(NodeId(6)),
        &Op::RandomUniform { seed: u64::MAX, low: -0.5, high: 0.5, shape: Shape::new([3, 3]) }
    );
    assert_eq!(g.op(NodeId(10)), &Op::FusedDense { trans_b: true, bias: true, act: Activation::Relu });
}

#[test]
fn outputs_updates_grads_comments_and_holes() {
    let src = "# a comment line

%2 = param \"w\" : f32[3]   # trailing comment
%5 = input \"x\" : f32[3]
%9 = mul %2, %5 : f32[3]
%12 = reduce_sum %9 axes=[0] keepdims=false : f32[]
%20 = sub %2, %9 : f32[3]
output \"loss\" = %12
update \"w\" = %20
grad %12 wrt %2, %5
";
    let g = parse(src, "h.kir").unwrap();
    assert_eq!(g.node_ids(), vec![NodeId(2), NodeId(5), NodeId(9), NodeId(12), NodeId(20)]);
    assert_eq!(g.outputs(), &[("loss".to_string(), NodeId(12))]);
    assert_eq!(g.updates(), &[("w".to_string(), NodeId(20))]);
    assert_eq!(g.grad_requests(), &[GradRequest { loss: NodeId(12), wrt: vec![NodeId(2), NodeId(5)] }]);
    let printed = print(&g);
    assert!(printed.starts_with("%2 = param \"w\" : f32[3]\n%5 = input"));
    assert_eq!(print(&parse(&printed, "p.kir").unwrap()), printed);
}

#[test]
fn ids_need_not_be_in_order_but_print_is_topological() {
    let src = "%9 = input \"x\" : f32[2]\n%1 = neg %9\n%4 = input \"y\" : f32[2]\n%0 = add %1, %4\noutput \"o\" = %0\n";
    let g = parse(src, "o.kir").unwrap();
    assert_eq!(
        print(&g),
        "%4 = input \"y\" : f32[2]\n%9 = input \"x\" : f32[2]\n%1 = neg %9 : f32[2]\n%0 = add %1, %4 : f32[2]\noutput \"o\" = %0\n"
    );
}

#[test]
fn builder_graph_prints_and_parses_identically() {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([4, 3])).unwrap();
    let w = g.param("w", f32_shape([3, 2])).unwrap();
    let y = g.matmul(x, w).unwrap();
    let r = g.relu(y).unwrap();
    let dead = g.exp(r).unwrap();
    let l = g.mean_all(r).unwrap();
    g.remove_node(dead);
    g.set_output("loss", l).unwrap();
    g.add_grad_request(l, vec![w]).unwrap();
    let text = print(&g);
    let back = parse(&text, "b.kir").unwrap();
    assert_eq!(print(&back), text);
    assert_eq!(back.node_ids(), g.node_ids());
    for id in g.node_ids() {
        assert_eq!(back.node(id).unwrap(), g.node(id).unwrap());
        assert_eq!(back.operands(id), g.operands(id));
    }
}
