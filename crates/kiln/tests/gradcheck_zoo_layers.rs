//! Finite-difference checks of the model-zoo layers (issue #14): autodiff
//! gradients of J = sum(y * w) (w fixed random weights) with respect to the
//! input and every parameter, against central differences, both on the
//! f64 interpreter; and the shape errors they raise (naming the op, the
//! node `%N` and the shapes).

use std::collections::BTreeMap;

use kiln::init::{Init, Rng};
use kiln::nn::{self, Module};
use kiln::{
    Builder, CompileOptions, HostTensor, InputRole, Mode, NodeId, ParamStore, Spec, f32_shape, loss,
};

#[path = "common/gradcheck.rs"]
mod common;
use common::{objective, randn, Objective};

/// Registers an extra differentiable tensor (a second input such as a key
/// or a state) as a parameter, N(0, 1).
fn extra(s: &mut ParamStore, name: &str, shape: &[usize]) {
    s.register(
        name,
        InputRole::Param,
        shape.to_vec(),
        Init::Normal {
            mean: 0.0,
            std: 1.0,
        },
    )
    .unwrap();
}

/// [`common::check_gradients`] (seed 7, about 30 elements a tensor);
/// a check of nothing fails.
fn check(name: &str, x_shape: &[usize], store: ParamStore, forward: impl Fn(&mut Builder, NodeId) -> kiln::Result<NodeId>) {
    let checked = common::check_gradients(name, Mode::Train, 7, 30, x_shape, store, forward);
    assert!(checked > 0, "{name}: nothing checked");
}

#[test]
fn max_pool_ceil_mode_and_dilation() {
    let s = ParamStore::new(1);
    check("max_pool2d ceil/dilation", &[1, 2, 7, 8], s, |b, x| {
        let a = nn::MaxPool2d::new(3)
            .stride(2)
            .ceil_mode(true)
            .forward(b, x)?;
        let d = nn::MaxPool2d::new(2)
            .stride(2)
            .padding(1)
            .dilation(2)
            .ceil_mode(true)
            .forward(b, x)?;
        let d1 = nn::MaxPool2d::new(2)
            .stride(1)
            .dilation2([2, 3])
            .forward(b, x)?;
        let (sa, sd, s1) = (b.sum_all(a)?, b.sum_all(d)?, b.sum_all(d1)?);
        let t = b.add(sa, sd)?;
        let t = b.add(t, s1)?;
        Ok(b.add(a, t)?)
    });
}

#[test]
fn avg_pool_ceil_mode_with_and_without_pad_counting() {
    let s = ParamStore::new(2);
    check("avg_pool2d ceil", &[1, 2, 7, 6], s, |b, x| {
        let a = nn::AvgPool2d::new(3)
            .stride(2)
            .padding(1)
            .ceil_mode(true)
            .count_include_pad(false)
            .forward(b, x)?;
        let c = nn::AvgPool2d::new(3)
            .stride(2)
            .padding(1)
            .ceil_mode(true)
            .forward(b, x)?;
        Ok(b.add(a, c)?)
    });
}

#[test]
fn adaptive_max_pool_uneven_windows() {
    let s = ParamStore::new(3);
    check("adaptive_max_pool2d", &[1, 2, 5, 7], s, |b, x| {
        nn::adaptive_max_pool2d(b, x, [2, 3])
    });
}

#[test]
fn padding_layers_and_conv_padding_modes() {
    let mut s = ParamStore::new(4);
    let convs: Vec<nn::Conv2d> = [
        nn::PaddingMode::Reflect,
        nn::PaddingMode::Replicate,
        nn::PaddingMode::Circular,
    ]
    .iter()
    .enumerate()
    .map(|(i, &m)| {
        nn::Conv2d::config(2, 2, 3)
            .padding(2)
            .padding_mode(m)
            .build(&mut s, &format!("c{i}"))
            .unwrap()
    })
    .collect();
    let c1 = nn::Conv1d::config(2, 2, 3)
        .padding(1)
        .padding_mode(nn::PaddingMode::Reflect)
        .build(&mut s, "c1d")
        .unwrap();
    check("padding", &[1, 2, 4, 5], s, move |b, x| {
        let mut acc = nn::ReflectionPad2d([1, 2, 3, 0]).forward(b, x)?;
        let r = nn::ReplicationPad2d([0, 3, 1, 2]).forward(b, x)?;
        let r = b.sum_all(r)?;
        let c = nn::CircularPad2d([2, 1, 0, 4]).forward(b, x)?;
        let c = b.mul(c, c)?;
        let c = b.sum_all(c)?;
        let z = nn::ZeroPad2d([1, 0, 0, 1]).forward(b, x)?;
        let z = b.sum_all(z)?;
        for conv in &convs {
            let y = conv.forward(b, x)?;
            let y = b.mul(y, y)?;
            let y = b.sum_all(y)?;
            acc = b.add(acc, y)?;
        }
        let x1 = b.reshape(x, [1, 2, 20])?;
        let y1 = c1.forward(b, x1)?;
        let y1 = b.mul(y1, y1)?;
        let y1 = b.sum_all(y1)?;
        for t in [r, c, z, y1] {
            acc = b.add(acc, t)?;
        }
        Ok(acc)
    });
}

#[test]
fn conv_transpose_2d_and_1d() {
    let mut s = ParamStore::new(5);
    let t2 = nn::ConvTranspose2d::config(4, 6, 3)
        .stride(2)
        .padding(1)
        .output_padding(1)
        .groups(2)
        .dilation(2)
        .build(&mut s, "t2")
        .unwrap();
    let t1 = nn::ConvTranspose1d::config(4, 3, 4)
        .stride(2)
        .padding(1)
        .build(&mut s, "t1")
        .unwrap();
    check("conv_transpose", &[2, 4, 3, 4], s, move |b, x| {
        let y = t2.forward(b, x)?;
        let x1 = b.reshape(x, [2, 4, 12])?;
        let y1 = t1.forward(b, x1)?;
        let y1 = b.mul(y1, y1)?;
        let y1 = b.sum_all(y1)?;
        Ok(b.add(y, y1)?)
    });
}

#[test]
fn upsample_nearest_and_bilinear() {
    let s = ParamStore::new(6);
    check("upsample", &[1, 2, 3, 4], s, |b, x| {
        let n = nn::Upsample::nearest(2.0).forward(b, x)?;
        let bl = nn::Upsample::bilinear(2.0, false).forward(b, x)?;
        let ac = nn::Upsample::size(
            &[5, 7],
            nn::UpsampleMode::Linear {
                align_corners: true,
            },
        )
        .forward(b, x)?;
        let ns = nn::Upsample::size(&[5, 9], nn::UpsampleMode::Nearest).forward(b, x)?;
        let nb = nn::Upsample {
            size: None,
            scale_factor: Some(vec![1.5, 2.5]),
            mode: nn::UpsampleMode::Linear {
                align_corners: false,
            },
        }
        .forward(b, x)?;
        let mut acc = b.add(n, bl)?;
        for t in [ac, ns, nb] {
            let q = b.mul(t, t)?;
            let q = b.sum_all(q)?;
            acc = b.add(acc, q)?;
        }
        Ok(acc)
    });
}

#[test]
fn local_response_norm_odd_and_even() {
    let s = ParamStore::new(7);
    check("lrn", &[2, 5, 2, 3], s, |b, x| {
        let a = nn::LocalResponseNorm::with(3, 0.5, 0.75, 1.0).forward(b, x)?;
        let c = nn::LocalResponseNorm::with(2, 0.3, 0.5, 2.0).forward(b, x)?;
        Ok(b.add(a, c)?)
    });
}

#[test]
fn multihead_attention_cross_with_masks_kdim_vdim() {
    let mut s = ParamStore::new(8);
    // Sequence-first, separate projections (kdim 3, vdim 5), float attn
    // mask, boolean key padding, per-head weights.
    let m = nn::MultiheadAttention::config(4, 2)
        .kdim(3)
        .vdim(5)
        .build(&mut s, "mha")
        .unwrap();
    s.reinit(
        "mha.in_proj_bias",
        Init::Uniform {
            low: -0.5,
            high: 0.5,
        },
    )
    .unwrap();
    extra(&mut s, "key", &[4, 2, 3]);
    extra(&mut s, "value", &[4, 2, 5]);
    check("mha", &[3, 2, 4], s, move |b, q| {
        let k = b.param("key", [4, 2, 3])?;
        let v = b.param("value", [4, 2, 5])?;
        let fm: Vec<f64> = (0..12)
            .map(|i| {
                if i % 5 == 0 {
                    -1.5
                } else {
                    0.25 * (i % 3) as f64
                }
            })
            .collect();
        let fm = b.constant(
            HostTensor::from_f64(vec![3, 4], fm)
                .unwrap()
                .cast(kiln::DType::F32),
        )?;
        let kp: Vec<f64> = (0..8).map(|i| f64::from(u8::from(i == 7))).collect();
        let kp = b.constant(HostTensor::from_f64_values(
            &kiln::ir::TensorType::new(kiln::DType::Bool, [2, 4]),
            &kp,
        ))?;
        let opts = nn::AttentionOptions {
            attn_mask: Some(fm),
            key_padding_mask: Some(kp),
            need_weights: true,
            average_attn_weights: false,
        };
        let o = m.forward_qkv(b, q, k, v, &opts)?;
        let w = o.weights.unwrap();
        let w2 = b.mul(w, w)?;
        let ws = b.sum_all(w2)?;
        Ok(b.add(o.y, ws)?)
    });
}

#[test]
fn transformer_encoder_pre_and_post_norm() {
    let mut s = ParamStore::new(9);
    let pre = nn::TransformerEncoderLayer::config(4, 2)
        .dim_feedforward(6)
        .dropout(0.0)
        .gelu()
        .norm_first(true)
        .batch_first(true);
    let enc = nn::TransformerEncoder::new(&mut s, "enc", &pre, 2, true).unwrap();
    let post = nn::TransformerEncoderLayer::config(4, 1)
        .dim_feedforward(5)
        .dropout(0.0)
        .batch_first(true)
        .build(&mut s, "post")
        .unwrap();
    for n in s.param_names() {
        if n.contains("norm") || n.ends_with("in_proj_bias") || n.ends_with("out_proj.bias") {
            s.reinit(
                &n,
                Init::Uniform {
                    low: 0.5,
                    high: 1.5,
                },
            )
            .unwrap();
        }
    }
    check("transformer", &[2, 3, 4], s, move |b, x| {
        let y = enc.forward(b, x)?;
        post.forward(b, y)
    });
}

#[test]
fn recurrent_cells_in_a_user_loop() {
    let mut s = ParamStore::new(10);
    let lstm = nn::LstmCell::new(&mut s, "lstm", 3, 4).unwrap();
    let gru = nn::GruCell::new(&mut s, "gru", 4, 3).unwrap();
    let rnn = nn::RnnCell::with(&mut s, "rnn", 3, 2, true, true).unwrap();
    extra(&mut s, "h0", &[2, 4]);
    check("cells", &[3, 2, 3], s, move |b, x| {
        let h0 = b.param("h0", [2, 4])?;
        let (mut h, mut c) = (h0, None);
        let mut g = None;
        let mut r = None;
        for t in 0..3 {
            let xt = b.slice_axis(x, 0, t, t + 1)?;
            let xt = b.reshape(xt, [2, 3])?;
            let (hn, cn) = lstm.step(b, xt, Some(h), c)?;
            h = hn;
            c = Some(cn);
            g = Some(gru.step(b, h, g)?);
            r = Some(rnn.step(b, xt, r)?);
        }
        // Unbatched input too.
        let x0 = b.slice(x, &[0, 0, 0], &[1, 1, 3], &[1, 1, 1])?;
        let x0 = b.reshape(x0, [3])?;
        let u = rnn.step(b, x0, None)?;
        let u = b.sum_all(u)?;
        let (gs, rs, cs) = (
            b.sum_all(g.unwrap())?,
            b.sum_all(r.unwrap())?,
            b.sum_all(c.unwrap())?,
        );
        let mut acc = b.add(h, gs)?;
        for t in [rs, cs, u] {
            acc = b.add(acc, t)?;
        }
        Ok(acc)
    });
}

#[test]
fn cross_entropy_probability_targets() {
    let mut s = ParamStore::new(11);
    s.register(
        "t",
        InputRole::Param,
        [3, 4],
        Init::Uniform {
            low: 0.0,
            high: 1.0,
        },
    )
    .unwrap();
    check("cross_entropy probs", &[3, 4], s, |b, x| {
        let t = b.param("t", [3, 4])?;
        let a = loss::cross_entropy(
            b,
            x,
            t,
            &loss::CrossEntropyOptions::default().label_smoothing(0.1),
        )?;
        let w = loss::cross_entropy(
            b,
            x,
            t,
            &loss::CrossEntropyOptions::default()
                .weight(vec![0.5, 1.0, 2.0, 1.5])
                .sum(),
        )?;
        Ok(b.add(a, w)?)
    });
}

/// A shape error names the op, the node and its type.
fn assert_names(err: kiln::Error, what: &str, node: NodeId, ty: &str) {
    let m = err.to_string();
    for part in [what, &node.to_string(), ty] {
        assert!(m.contains(part), "error `{m}` does not mention `{part}`");
    }
}

#[test]
fn shape_errors_name_the_op_node_and_shapes() {
    let mut s = ParamStore::new(12);
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([2, 3, 5, 5])).unwrap();
    let x3 = b.input("x3", f32_shape([2, 5])).unwrap();
    let t = nn::ConvTranspose2d::new(&mut s, "up", 4, 2, 2).unwrap();
    assert_names(
        t.forward(&mut b, x).unwrap_err(),
        "conv_transpose2d `up`",
        x,
        "f32[2,3,5,5]",
    );
    let t1 = nn::ConvTranspose1d::new(&mut s, "up1", 4, 2, 2).unwrap();
    assert_names(
        t1.forward(&mut b, x).unwrap_err(),
        "conv_transpose1d `up1`",
        x,
        "f32[2,3,5,5]",
    );
    assert_names(
        nn::MaxPool2d::new(7).forward(&mut b, x).unwrap_err(),
        "max_pool2d",
        x,
        "f32[2,3,5,5]",
    );
    assert_names(
        nn::AvgPool2d::new(3)
            .padding(2)
            .ceil_mode(true)
            .forward(&mut b, x)
            .unwrap_err(),
        "avg_pool2d",
        x,
        "f32[2,3,5,5]",
    );
    assert_names(
        nn::ReflectionPad2d([5, 0, 0, 0])
            .forward(&mut b, x)
            .unwrap_err(),
        "reflect pad",
        x,
        "f32[2,3,5,5]",
    );
    assert_names(
        nn::Upsample::nearest(2.0).forward(&mut b, x3).unwrap_err(),
        "interpolate",
        x3,
        "f32[2,5]",
    );
    assert_names(
        nn::LocalResponseNorm::new(3)
            .forward(&mut b, x3)
            .unwrap_err(),
        "local_response_norm",
        x3,
        "f32[2,5]",
    );
    assert_names(
        nn::adaptive_max_pool2d(&mut b, x3, [2, 2]).unwrap_err(),
        "adaptive_max_pool2d",
        x3,
        "f32[2,5]",
    );
    let m = nn::MultiheadAttention::config(4, 2)
        .batch_first(true)
        .build(&mut s, "att")
        .unwrap();
    assert_names(
        m.forward(&mut b, x).unwrap_err(),
        "multihead_attention `att`",
        x,
        "f32[2,3,5,5]",
    );
    let q = b.input("q", f32_shape([2, 3, 4])).unwrap();
    let k = b.input("k", f32_shape([2, 6, 4])).unwrap();
    let v = b.input("v", f32_shape([2, 5, 4])).unwrap();
    let err = m
        .forward_qkv(&mut b, q, k, v, &nn::AttentionOptions::default())
        .unwrap_err();
    assert_names(err, "multihead_attention `att`", v, "f32[2,5,4]");
    let bad_mask = b.input("mask", f32_shape([3, 5])).unwrap();
    let opts = nn::AttentionOptions {
        attn_mask: Some(bad_mask),
        ..Default::default()
    };
    assert_names(
        m.forward_qkv(&mut b, q, k, k, &opts).unwrap_err(),
        "attn_mask",
        bad_mask,
        "f32[3,5]",
    );
    let cell = nn::LstmCell::new(&mut s, "cell", 5, 3).unwrap();
    let h = b.input("h", f32_shape([2, 4])).unwrap();
    assert_names(
        cell.step(&mut b, x3, Some(h), None).unwrap_err(),
        "lstm_cell `cell`",
        h,
        "f32[2,4]",
    );
    let tgt = b.input("tgt", f32_shape([2, 4])).unwrap();
    let err =
        loss::cross_entropy(&mut b, x3, tgt, &loss::CrossEntropyOptions::default()).unwrap_err();
    assert_names(err, "cross_entropy", tgt, "f32[2,4]");
    let up = nn::ConvTranspose2d::config(3, 2, 3).stride(2).padding(1).build(&mut s, "os").unwrap();
    let y = up.forward_with_output_size(&mut b, x, [10, 9]).unwrap();
    assert_eq!(b.ty(y).shape.0, vec![2, 2, 10, 9]);
    assert_names(up.forward_with_output_size(&mut b, x, [11, 9]).unwrap_err(), "conv_transpose2d `os`", x, "f32[2,3,5,5]");
    // Invalid settings are errors at build time.
    assert!(
        nn::ConvTranspose2d::config(2, 2, 3)
            .stride(2)
            .output_padding(2)
            .build(&mut s, "op")
            .is_err()
    );
    assert!(nn::MultiheadAttention::new(&mut s, "odd", 5, 2).is_err());
}

/// PyTorch's parameter names and shapes.
#[test]
fn parameter_names_follow_pytorch() {
    let mut s = ParamStore::new(13);
    let layer = nn::TransformerEncoderLayer::config(8, 2).dim_feedforward(16);
    nn::TransformerEncoder::new(&mut s, "encoder", &layer, 2, true).unwrap();
    nn::MultiheadAttention::config(8, 2)
        .kdim(3)
        .vdim(5)
        .build(&mut s, "x")
        .unwrap();
    nn::ConvTranspose2d::config(4, 6, 3)
        .groups(2)
        .build(&mut s, "up")
        .unwrap();
    nn::GruCell::new(&mut s, "gru", 5, 3).unwrap();
    let shapes: BTreeMap<String, Vec<usize>> = s
        .state_dict()
        .into_iter()
        .map(|(k, v)| (k, v.shape().0.clone()))
        .collect();
    for (n, shape) in [
        ("encoder.layers.0.self_attn.in_proj_weight", vec![24, 8]),
        ("encoder.layers.0.self_attn.in_proj_bias", vec![24]),
        ("encoder.layers.1.self_attn.out_proj.weight", vec![8, 8]),
        ("encoder.layers.1.self_attn.out_proj.bias", vec![8]),
        ("encoder.layers.0.linear1.weight", vec![16, 8]),
        ("encoder.layers.0.linear2.weight", vec![8, 16]),
        ("encoder.layers.1.norm1.weight", vec![8]),
        ("encoder.layers.1.norm2.bias", vec![8]),
        ("encoder.norm.weight", vec![8]),
        ("x.q_proj_weight", vec![8, 8]),
        ("x.k_proj_weight", vec![8, 3]),
        ("x.v_proj_weight", vec![8, 5]),
        ("up.weight", vec![4, 3, 3, 3]),
        ("up.bias", vec![6]),
        ("gru.weight_ih", vec![9, 5]),
        ("gru.weight_hh", vec![9, 3]),
        ("gru.bias_ih", vec![9]),
    ] {
        assert_eq!(shapes.get(n), Some(&shape), "{n}");
    }
    assert_eq!(shapes.len(), 2 * 12 + 2 + 6 + 2 + 4);
}

/// Ties in a dilated (or ceil-mode) max pool send the whole gradient to
/// the first maximum of each window, as PyTorch's max pooling does.
#[test]
fn max_pool_ties_go_to_the_first_maximum() {
    for (dilation, ceil) in [(2, false), (1, true)] {
        let mut b = Builder::train();
        let x = b.input("x", f32_shape([1, 1, 4, 4])).unwrap();
        let y = nn::MaxPool2d::new(2)
            .stride(1 + usize::from(ceil))
            .dilation(dilation)
            .ceil_mode(ceil)
            .forward(&mut b, x)
            .unwrap();
        let j = b.sum_all(y).unwrap();
        let mut g = b.graph().clone();
        let gx = kiln::grad(&mut g, j, &[x]).unwrap()[0];
        g.set_output("gx", gx).unwrap();
        for backend in [kiln::BackendKind::Interp, kiln::BackendKind::Cpu] {
            let mut p = kiln::compile(
                &Spec::bare(g.clone()),
                CompileOptions::default().backend(backend),
            )
            .unwrap();
            let out = p
                .run(&[(
                    "x",
                    &HostTensor::from_f32([1, 1, 4, 4], vec![1.0; 16]).unwrap(),
                )])
                .unwrap();
            let got = out["gx"].to_f32_vec();
            // Each window's first element is its top-left one.
            let want: Vec<f32> = (0..16)
                .map(|i| {
                    let (r, c) = (i / 4, i % 4);
                    if dilation == 2 {
                        f32::from(u8::from(r < 2 && c < 2))
                    } else {
                        f32::from(u8::from(r % 2 == 0 && c % 2 == 0))
                    }
                })
                .collect();
            assert_eq!(got, want, "dilation {dilation} ceil {ceil} on {backend:?}");
        }
    }
}

/// A training step through an encoder with dropout (train mode) and a
/// transposed conv + upsampling decoder: the CPU backend (and the GPU
/// backend where an adapter exists) takes the same steps as the
/// interpreter (same dropout masks, same updates).
#[test]
fn encoder_with_dropout_trains_the_same_on_cpu_and_interpreter() {
    let build = || {
        let mut s = ParamStore::new(21);
        let layer = nn::TransformerEncoderLayer::config(4, 2).dim_feedforward(8).batch_first(true);
        let enc = nn::TransformerEncoder::new(&mut s, "enc", &layer, 2, false).unwrap();
        let up = nn::ConvTranspose2d::config(2, 1, 2).stride(2).build(&mut s, "up").unwrap();
        let mut b = Builder::train();
        let x = b.input("x", f32_shape([2, 3, 4])).unwrap();
        let t = b.input("t", f32_shape([2, 1, 6, 4])).unwrap();
        let h = enc.forward(&mut b, x).unwrap();
        let h = b.reshape(h, [2, 2, 3, 2]).unwrap();
        let h = nn::Upsample::bilinear(2.0, false).forward(&mut b, h).unwrap();
        let h = nn::MaxPool2d::new(3).stride(2).ceil_mode(true).forward(&mut b, h).unwrap();
        let y = up.forward(&mut b, h).unwrap();
        let l = loss::mse(&mut b, y, t, loss::Reduction::Mean).unwrap();
        kiln::train_step(&b, l, &s, kiln::optim::Sgd::new(0.1)).unwrap()
    };
    let mut rng = Rng::new(3);
    let x = randn(&mut rng, &[2, 3, 4]).cast(kiln::DType::F32);
    let t = randn(&mut rng, &[2, 1, 6, 4]).cast(kiln::DType::F32);
    let mut losses = Vec::new();
    let mut backends = vec![kiln::BackendKind::Interp, kiln::BackendKind::Cpu];
    if kiln::wgpu_adapter().is_ok() {
        backends.push(kiln::BackendKind::Wgpu);
    }
    for &backend in &backends {
        let mut p = kiln::compile(&build(), CompileOptions::default().backend(backend)).unwrap();
        let l: Vec<f64> = (0..3).map(|_| p.run(&[("x", &x), ("t", &t)]).unwrap()["loss"].scalar().unwrap()).collect();
        assert!(l.iter().all(|v| v.is_finite()), "{backend:?}: {l:?}");
        losses.push(l);
    }
    for (other, backend) in losses[1..].iter().zip(&backends[1..]) {
        for (a, c) in losses[0].iter().zip(other) {
            assert!((a - c).abs() <= 1e-5 + 3e-4 * a.abs(), "interp {:?} vs {backend:?} {other:?}", losses[0]);
        }
    }
    assert_ne!(losses[0][0], losses[0][1], "the step changes the loss");
}

/// The value and the gradients (input and parameters) of J = sum(y * w)
/// on the CPU backend (and the GPU backend where an adapter exists) match
/// the f32 interpreter, for the layer settings the golden cases do not
/// cover.
fn backend_parity(name: &str, x_shape: &[usize], store: ParamStore, forward: impl Fn(&mut Builder, NodeId) -> kiln::Result<NodeId>) {
    let mut rng = Rng::new(17);
    let Objective { grads: spec, y_shape, .. } = objective(Mode::Train, x_shape, &store, forward);
    let feed = BTreeMap::from([
        ("x".to_string(), randn(&mut rng, x_shape).cast(kiln::DType::F32)),
        ("w".to_string(), randn(&mut rng, &y_shape).cast(kiln::DType::F32)),
    ]);
    let want = kiln::compile(&spec, CompileOptions::default().backend(kiln::BackendKind::Interp)).unwrap().run_map(&feed).unwrap();
    let mut backends = vec![kiln::BackendKind::Cpu];
    if kiln::wgpu_adapter().is_ok() {
        backends.push(kiln::BackendKind::Wgpu);
    }
    for backend in backends {
        let got = kiln::compile(&spec, CompileOptions::default().backend(backend)).unwrap().run_map(&feed).unwrap();
        for (k, wv) in &want {
            let (gv, wv) = (got[k].to_f64_vec(), wv.to_f64_vec());
            let scale = wv.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (i, (a, e)) in gv.iter().zip(&wv).enumerate() {
                assert!((a - e).abs() <= 1e-4 * scale, "{name} on {backend:?}: {k}[{i}] = {a}, interpreter {e}");
            }
        }
    }
}

#[test]
fn uncovered_layer_settings_match_the_interpreter_on_every_backend() {
    let mut s = ParamStore::new(31);
    let t1 = nn::ConvTranspose1d::config(4, 6, 3).stride(3).padding(1).output_padding(2).groups(2).dilation(2).build(&mut s, "t1").unwrap();
    let circ = nn::Conv2d::config(2, 3, 3).padding2([2, 1]).stride(2).padding_mode(nn::PaddingMode::Circular).build(&mut s, "circ").unwrap();
    let mha = nn::MultiheadAttention::config(4, 2).kdim(3).vdim(5).build(&mut s, "mha").unwrap();
    s.reinit("mha.in_proj_bias", Init::Uniform { low: -0.5, high: 0.5 }).unwrap();
    extra(&mut s, "key", &[5, 2, 3]);
    extra(&mut s, "value", &[5, 2, 5]);
    let gru = nn::GruCell::with(&mut s, "gru", 4, 3, false).unwrap();
    backend_parity("uncovered", &[2, 2, 5, 6], s, move |b, x| {
        let mut parts = vec![
            nn::adaptive_max_pool2d(b, x, [2, 4])?,
            nn::AvgPool2d::new(2).stride(2).padding(1).ceil_mode(true).forward(b, x)?,
            nn::MaxPool2d::new(3).stride(2).padding(1).dilation2([1, 2]).ceil_mode(true).forward(b, x)?,
            nn::CircularPad2d([2, 1, 1, 3]).forward(b, x)?,
            circ.forward(b, x)?,
        ];
        let up = nn::Upsample { size: None, scale_factor: Some(vec![1.7, 0.6]), mode: nn::UpsampleMode::Linear { align_corners: false } };
        parts.push(up.forward(b, x)?);
        parts.push(nn::Upsample::size(&[3, 11], nn::UpsampleMode::Nearest).forward(b, x)?);
        parts.push(nn::LocalResponseNorm::with(4, 0.2, 0.6, 1.5).forward(b, x)?);
        let x1 = b.reshape(x, [2, 4, 15])?;
        parts.push(t1.forward(b, x1)?);
        let q = b.reshape(x, [6, 2, 10])?;
        let q = b.slice_axis(q, 2, 0, 4)?;
        let k = b.param("key", [5, 2, 3])?;
        let v = b.param("value", [5, 2, 5])?;
        let cm: Vec<f64> = (0..30).map(|i| f64::from(u8::from(i % 5 > i / 5))).collect();
        let cm = b.constant(HostTensor::from_f64_values(&kiln::ir::TensorType::new(kiln::DType::Bool, [6, 5]), &cm))?;
        let o = mha.forward_qkv(b, q, k, v, &nn::AttentionOptions { attn_mask: Some(cm), ..Default::default() })?;
        parts.push(o.y);
        parts.push(o.weights.unwrap());
        let q2 = b.reshape(q, [12, 4])?;
        let h = gru.step(b, q2, None)?;
        parts.push(h);
        let mut acc: Option<NodeId> = None;
        for p in parts {
            let q = b.mul(p, p)?;
            let q = b.sum_all(q)?;
            acc = Some(match acc {
                Some(a) => b.add(a, q)?,
                None => q,
            });
        }
        let q = b.slice_axis(x, 3, 0, 1)?;
        let acc = acc.unwrap();
        Ok(b.add(q, acc)?)
    });
}
