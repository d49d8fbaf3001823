//! The kernels a program's steps call: native Rust for the ops that are not
//! loops over elements: GEMM (the `gemm` crate, `matrixmultiply`, and the
//! no-pack kernels of `gemv.rs` and `small_gemm.rs`), indexing, data
//! movement, softmax cross-entropy and random numbers here; convolution in
//! `conv.rs`, pooling in `pooling.rs`; and `program.rs`, the portable
//! evaluator of loop programs over non-f32 data. f32 elementwise and
//! reduction work is generated code (`lower/jit.rs`).

pub(crate) mod conv;
// Public (hidden, re-exported at the crate root) only for
// `examples/small_m_probe.rs`, which times them against `matrixmultiply`.
pub mod gemv;
pub(crate) mod pooling;
pub(crate) mod program;
pub mod small_gemm;

use kiln_ir::{Activation, DType, NodeId, Op, RunError, TensorType};

use crate::runtime::buffers::{load, store};
use crate::runtime::pool::Pool;

/// One non-loop op with its operand and result slots.
#[derive(Debug, Clone)]
pub struct NativeOp {
    pub node: NodeId,
    pub op: Op,
    pub ins: Vec<(usize, TensorType)>,
    pub out: (usize, TensorType),
    /// Code generated for this op's shape (conv packing and epilogue,
    /// pooling; see `conv.rs`, `pooling.rs`); empty: the Rust path.
    pub code: Vec<crate::lower::jit::JitFn>,
}

/// The f32/f64 arithmetic the contraction kernels are written over.
pub trait Float: Send + Sync + Copy + Default + PartialOrd + std::ops::Add<Output = Self> + std::ops::AddAssign + std::ops::Mul<Output = Self> + 'static {
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
    /// C = alpha * A B + beta * C with arbitrary strides (in elements).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(m: usize, k: usize, n: usize, a: *const Self, rsa: isize, csa: isize, b: *const Self, rsb: isize, csb: isize, beta: Self, c: *mut Self, rsc: isize, csc: isize);
    /// `gemm` on a block of a `whole.0` x `whole.1` product, with the kernel
    /// the whole product would get: kernels sum in different orders, so a
    /// thread's block must not pick its own by its smaller shape, or the
    /// bits would depend on the thread count.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_part(whole: (usize, usize), m: usize, k: usize, n: usize, a: *const Self, rsa: isize, csa: isize, b: *const Self, rsb: isize, csb: isize, beta: Self, c: *mut Self, rsc: isize, csc: isize) {
        let _ = whole;
        unsafe { Self::gemm(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

/// Below this many columns a product with a transposed B is done as dot
/// products: `matrixmultiply`'s 8-wide panels are mostly padding there.
const DOT_MAX_N: usize = 16;

/// Up to this many rows the no-pack kernels of `small_gemm.rs` beat
/// `matrixmultiply` (and `gemv::dot_gemm` below 16 columns) on every
/// product W1-W5 make in that range (`examples/small_m_probe.rs`, one
/// thread, per-thread shares): 1.05-1.4x at 32-64 rows (W5's recurrent
/// products 1.1-1.2x), 1.6-3.8x for LeNet's 6- and 16-channel convolutions,
/// where `matrixmultiply` packs all of B for one or two row blocks. With
/// more rows, packing pays off (W1's 128-row layers stay on
/// `matrixmultiply`).
const SMALL_M_MAX: usize = 64;

/// With a transposed B, the dot-product tiles win from this depth on
/// (1.15-1.4x at k = 256-400); at k = 128 they lose 10% to
/// `matrixmultiply`, whose 8x8 tiles reuse each load more than a 3x4 tile
/// of dot products when there is little depth to amortize the folds.
const DOT_TILES_MIN_K: usize = 256;

impl Float for f32 {
    fn of(v: f64) -> f32 {
        v as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    unsafe fn gemm(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, beta: f32, c: *mut f32, rsc: isize, csc: isize) {
        unsafe { Self::gemm_part((m, n), m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
    unsafe fn gemm_part(whole: (usize, usize), m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, beta: f32, c: *mut f32, rsc: isize, csc: isize) {
        if m == 0 || n == 0 {
            return;
        }
        // The kernel is picked by the whole product's shape (`wm` x `wn`);
        // every kernel below takes any block of it.
        let (wm, wn) = whole;
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        #[cfg(target_arch = "x86_64")]
        if avx2 && (5..=SMALL_M_MAX).contains(&wm) && k >= DOT_TILES_MIN_K && csc == 1 && rsb == 1 && csa == 1 && rsa >= 0 && csb >= 0 && rsc >= 0 {
            // A few dozen rows times a transposed B (an LSTM's recurrent
            // weight at batch 32): tiles of dot products, nothing packed.
            // SAFETY: the features were just detected; matrices as below.
            unsafe { crate::kernels::small_gemm::dot_tiles(m, k, n, a, rsa as usize, b, csb as usize, beta, c, rsc as usize) };
            return;
        }
        if (wm <= 4 || wn < DOT_MAX_N) && csc == 1 && rsb == 1 && csa == 1 && rsa >= 0 && csb >= 0 && rsc >= 0 {
            // Few rows or few columns times a transposed B (a dense layer's
            // [out, in] weight at small batch, or a narrow output layer):
            // dot products of contiguous rows, nothing packed.
            // SAFETY: as below.
            unsafe { crate::kernels::gemv::dot_gemm(m, k, n, a, rsa as usize, b, csb as usize, beta, c, rsc as usize) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2 && wm <= 4 && csc == 1 && csb == 1 && rsb >= 0 && rsc >= 0 {
            // Few rows times B's contiguous rows ([in, out] weight at small
            // batch): stream B once, nothing packed.
            // SAFETY: the features were just detected; matrices as below.
            unsafe { crate::kernels::gemv::axpy_gemm(m, k, n, a, rsa, csa, b, rsb as usize, beta, c, rsc as usize) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2 && wm <= SMALL_M_MAX && csc == 1 && csb == 1 && rsb >= 0 && rsc >= 0 {
            // A few dozen rows times B's contiguous rows (an LSTM's backward
            // product with its recurrent weight, a convolution's output
            // channels): B read in place a panel at a time, nothing of A
            // packed.
            // SAFETY: as above.
            unsafe { crate::kernels::small_gemm::panel_gemm(m, k, n, a, rsa, csa, b, rsb as usize, beta, c, rsc as usize) };
            return;
        }
        if wm <= 4 && csc == 1 && (csb == 1 || rsb == 1) {
            // Few rows (inference at batch 1): packing B would cost more than
            // the product; stream B once instead.
            // SAFETY: as below.
            unsafe { small_m_gemm(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc) };
            return;
        }
        if !uses_gemm_crate(whole) {
            // SAFETY: the caller passes valid matrices for these strides.
            unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) };
            return;
        }
        // `gemm` computes dst = alpha dst + beta A B, reading dst only when
        // asked (a beta of 0 here must not read what C held: it may be NaN).
        // Its depth blocking depends on k alone once a block has a side over
        // 64 (`par_gemm_epi` keeps every part that large), so a thread's
        // block sums in the order the whole product would.
        // SAFETY: the caller passes valid matrices for these strides.
        unsafe { gemm::gemm(m, n, k, c, csc, rsc, beta != 0.0, a, csa, rsa, b, csb, rsb, beta, 1.0, false, false, false, gemm::Parallelism::None) }
    }
}

/// Whether `f32::gemm_part` runs a `whole` product (past the no-pack
/// kernels) through the `gemm` crate rather than `matrixmultiply`.
/// Measured in one sitting (2-core AVX2, median ms per step, matrixmultiply
/// -> gemm): R18 618 -> 509, Z1 147 -> 138, W2 b1024 8.8 -> 7.8, W1 SGD
/// 3.61 -> 3.44, W1 Adam 4.26 -> 4.12, W4 unchanged.
fn uses_gemm_crate(whole: (usize, usize)) -> bool {
    whole.0 > SMALL_M_MAX && whole.1 >= DOT_MAX_N
}

/// The fewest rows or columns a part of a product split across threads
/// gets: parts of a `gemm` crate product stay over 64 after rounding to 16.
fn min_part(whole: (usize, usize)) -> usize {
    if uses_gemm_crate(whole) {
        96
    } else {
        16
    }
}

/// C = A B + beta C for a handful of rows: axpy over B's rows when they
/// are contiguous, dot products over B's columns when those are. The
/// fallback of `gemv.rs` (no AVX2/FMA, or strides it does not take).
#[allow(clippy::too_many_arguments)]
unsafe fn small_m_gemm(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, beta: f32, c: *mut f32, rsc: isize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            unsafe { small_m_gemm_avx2(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc) };
            return;
        }
    }
    unsafe { small_m_gemm_body(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_m_gemm_avx2(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, beta: f32, c: *mut f32, rsc: isize) {
    unsafe { small_m_gemm_body(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc) }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn small_m_gemm_body(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, beta: f32, c: *mut f32, rsc: isize) {
    for i in 0..m {
        let crow = unsafe { std::slice::from_raw_parts_mut(c.offset(i as isize * rsc), n) };
        if beta == 0.0 {
            crow.fill(0.0);
        } else if beta != 1.0 {
            crow.iter_mut().for_each(|v| *v *= beta);
        }
        if csb == 1 {
            for kk in 0..k {
                let av = unsafe { *a.offset(i as isize * rsa + kk as isize * csa) };
                let brow = unsafe { std::slice::from_raw_parts(b.offset(kk as isize * rsb), n) };
                for (cv, &bv) in crow.iter_mut().zip(brow) {
                    *cv += av * bv;
                }
            }
        } else {
            // rsb == 1: column j of B is contiguous.
            if csa != 1 {
                for (j, cv) in crow.iter_mut().enumerate() {
                    let mut sum = 0f32;
                    for kk in 0..k {
                        sum += unsafe { *a.offset(i as isize * rsa + kk as isize * csa) * *b.offset(j as isize * csb + kk as isize) };
                    }
                    *cv += sum;
                }
                continue;
            }
            let arow = unsafe { std::slice::from_raw_parts(a.offset(i as isize * rsa), k) };
            for (j, cv) in crow.iter_mut().enumerate() {
                let bcol = unsafe { std::slice::from_raw_parts(b.offset(j as isize * csb), k) };
                let mut acc = [0f32; 8];
                let chunks = k / 8;
                for q in 0..chunks {
                    for l in 0..8 {
                        acc[l] += arow[q * 8 + l] * bcol[q * 8 + l];
                    }
                }
                let mut sum: f32 = acc.iter().sum();
                for kk in chunks * 8..k {
                    sum += arow[kk] * bcol[kk];
                }
                *cv += sum;
            }
        }
    }
}

impl Float for f64 {
    fn of(v: f64) -> f64 {
        v
    }
    fn f64(self) -> f64 {
        self
    }
    unsafe fn gemm(m: usize, k: usize, n: usize, a: *const f64, rsa: isize, csa: isize, b: *const f64, rsb: isize, csb: isize, beta: f64, c: *mut f64, rsc: isize, csc: isize) {
        if m == 0 || n == 0 {
            return;
        }
        // SAFETY: as above.
        unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

fn oob(node: NodeId, index: i64, bound: usize) -> RunError {
    RunError::IndexOutOfRange { node: node.to_string(), index, bound }
}

pub(crate) fn unsupported(n: &NativeOp) -> RunError {
    RunError::Backend(format!("{}: {} on {} is not supported by the CPU backend", n.node, n.op.name(), n.ins[0].1.dtype))
}

/// Scratch elements (of the op's dtype) a native op needs when it runs on
/// `threads` threads (one region per thread).
pub fn scratch_elems(op: &Op, ins: &[TensorType], out: &TensorType, threads: usize) -> usize {
    crate::kernels::conv::scratch_elems(op, ins, out, threads)
}

/// Runs one native op.
///
/// # Safety
/// Slots must point at buffers of the types in `n`; `scratch` must hold
/// `scratch_elems` elements.
pub unsafe fn run(n: &NativeOp, slots: &[*mut u8], scratch: *mut u8, pool: &Pool) -> Result<(), RunError> {
    let p = |i: usize| slots[n.ins[i].0];
    let t = |i: usize| &n.ins[i].1;
    let out = slots[n.out.0];
    let oty = &n.out.1;
    let float = t(0).dtype;
    match &n.op {
        Op::MatMul { trans_a, trans_b } => by_float!(float, n, matmul(pool, p(0), t(0), p(1), t(1), *trans_a, *trans_b, out, oty)),
        Op::FusedDense { trans_b, bias, act } => {
            let x = t(0);
            let k = *x.shape.0.last().expect("rank >= 2");
            let m = x.numel() / k.max(1);
            let nn = *oty.shape.0.last().expect("rank >= 2");
            let bias_p = if *bias { Some(p(2)) } else { None };
            by_float!(float, n, dense(pool, p(0), p(1), m, k, nn, *trans_b, bias_p, *act, out))
        }
        Op::Conv2d(_) | Op::FusedConv2d { .. } | Op::Conv1d(_) | Op::Conv2dGradInput { .. } | Op::Conv2dGradWeight { .. } => unsafe { crate::kernels::conv::run(n, slots, scratch, pool)? },
        Op::MaxPool2d(_) | Op::MaxPool2dGrad(_) | Op::AvgPool2d { .. } | Op::AvgPool2dGrad { .. } => unsafe { crate::kernels::pooling::run(n, slots, pool)? },
        Op::SoftmaxCrossEntropy => unsafe { softmax_ce(n.node, p(0), t(0), p(1), t(1), out)? },
        Op::ArgMax { axis, .. } => unsafe { argmax(p(0), t(0), *axis, out) },
        Op::Permute(perm) => unsafe { permute(p(0), t(0), perm, out) },
        Op::Slice { start, step, .. } => unsafe { slice(p(0), t(0), start, step, out, oty) },
        Op::Concat { axis } => {
            let parts: Vec<(*mut u8, &TensorType)> = (0..n.ins.len()).map(|i| (p(i), t(i))).collect();
            unsafe { concat(&parts, *axis, out, oty) }
        }
        Op::Pad { lo, value, .. } => unsafe { pad(pool, p(0), t(0), lo, *value, out, oty) },
        Op::Gather { axis } => unsafe { gather(n.node, p(0), t(0), p(1), t(1), *axis, out)? },
        Op::ScatterAdd { axis, size } => unsafe { scatter_add(n.node, p(0), t(0), p(1), t(1), *axis, *size, out, oty)? },
        Op::OneHot { classes } => unsafe { one_hot(n.node, p(0), t(0), *classes, out)? },
        Op::RandomUniform { seed, low, high, .. } => unsafe {
            let step = *(p(0) as *const i64) as u64;
            let o = out as *mut f32;
            for i in 0..oty.numel() {
                *o.add(i) = kiln_ir::random::uniform(*seed, step, i as u64, *low, *high);
            }
        },
        Op::BroadcastTo(_) => unsafe { broadcast(p(0), t(0), out, oty) },
        other => return Err(RunError::Backend(format!("{}: {} has no native kernel", n.node, other.name()))),
    }
    Ok(())
}

// ---- contractions ------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
unsafe fn matmul<F: Float>(pool: &Pool, a: *mut u8, at: &TensorType, b: *mut u8, bt: &TensorType, ta: bool, tb: bool, c: *mut u8, ct: &TensorType) {
    let (ra, rb, rc) = (at.shape.rank(), bt.shape.rank(), ct.shape.rank());
    let (m, n) = (ct.shape.0[rc - 2], ct.shape.0[rc - 1]);
    let k = if ta { at.shape.0[ra - 2] } else { at.shape.0[ra - 1] };
    let (a, b, c) = (a as *const F, b as *const F, c as *mut F);
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let batch_dims = &ct.shape.0[..rc - 2];
    let nb: usize = batch_dims.iter().product();
    // Element offset of batch index `bi` in an operand whose batch dims
    // broadcast against the output's (computed per batch: no allocation).
    let boff = |t: &TensorType, r: usize, bi: usize| -> usize {
        let dims = &t.shape.0[..r - 2];
        let mat = t.shape.0[r - 2] * t.shape.0[r - 1];
        let off = batch_dims.len() - dims.len();
        let (mut rem, mut o, mut stride) = (bi, 0usize, 1usize);
        for d in (0..batch_dims.len()).rev() {
            let i = rem % batch_dims[d];
            rem /= batch_dims[d];
            if d >= off {
                let e = dims[d - off];
                if e != 1 {
                    o += i * stride;
                }
                stride *= e;
            }
        }
        o * mat
    };
    for bi in 0..nb {
        let (oa, ob) = (boff(at, ra, bi), boff(bt, rb, bi));
        unsafe { par_gemm(pool, m, k, n, a.add(oa), rsa, csa, b.add(ob), rsb, csb, F::default(), c.add(bi * m * n), n as isize, 1) };
    }
}

/// out[r, c] = act(out[r, c] + bias[c]) over rows of `inner`-sized runs.
pub(crate) unsafe fn bias_act<F: Float>(out: *mut u8, nb: usize, ch: usize, inner: usize, bias: Option<*mut u8>, act: Activation) {
    let o = out as *mut F;
    for b in 0..nb {
        for c in 0..ch {
            let bv = bias.map(|p| unsafe { *(p as *const F).add(c) }).unwrap_or_default();
            for i in 0..inner {
                let q = unsafe { o.add((b * ch + c) * inner + i) };
                let v = unsafe { *q } + bv;
                unsafe { *q = if matches!(act, Activation::None) { v } else { F::of(kiln_ir::scalar::activate(act, v.f64())) } };
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn dense<F: Float>(pool: &Pool, x: *mut u8, w: *mut u8, m: usize, k: usize, n: usize, tb: bool, bias: Option<*mut u8>, act: Activation, out: *mut u8) {
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let (o, bias) = (Sp(out as *mut F), bias.map(|p| Sp(p as *mut F)));
    // Bias and activation run on each block right after its GEMM, by the
    // thread that computed it (the block is still in its cache).
    let epi = move |r0: usize, r1: usize, c0: usize, c1: usize| unsafe { dense_epilogue(o.get(), n, r0..r1, c0..c1, bias.map(Sp::get), act) };
    let has_epi = bias.is_some() || !matches!(act, Activation::None);
    let epi = has_epi.then_some(&epi as BlockEpilogue);
    unsafe { par_gemm_epi(pool, m, k, n, x as *const F, k as isize, 1, w as *const F, rsb, csb, F::default(), out as *mut F, n as isize, 1, epi) };
}

/// out[r, c] = act(out[r, c] + bias[c]) over a block of a row-major matrix
/// with rows `n` apart. ReLU and the identity stay in F (a vectorizable
/// loop); sigmoid and tanh go through the shared f64 definitions.
unsafe fn dense_epilogue<F: Float>(out: *mut F, n: usize, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>, bias: Option<*mut F>, act: Activation) {
    let zero = F::default();
    let bias = bias.map(|b| unsafe { std::slice::from_raw_parts(b.add(cols.start), cols.len()) });
    for r in rows {
        let row = unsafe { std::slice::from_raw_parts_mut(out.add(r * n + cols.start), cols.len()) };
        if let Some(b) = bias {
            row.iter_mut().zip(b).for_each(|(v, &bv)| *v += bv);
        }
        match act {
            Activation::None => {}
            // NaN passes through, as in `kiln_ir::scalar::relu`.
            #[allow(clippy::eq_op)]
            Activation::Relu => row.iter_mut().for_each(|v| *v = if *v > zero || *v != *v { *v } else { zero }),
            _ => row.iter_mut().for_each(|v| *v = F::of(kiln_ir::scalar::activate(act, v.f64()))),
        }
    }
}

/// Raw pointers shared by the chunks of one parallel kernel.
#[derive(Clone, Copy)]
pub(crate) struct Sp<T>(pub(crate) *mut T);
unsafe impl<T> Send for Sp<T> {}
unsafe impl<T> Sync for Sp<T> {}
impl<T> Sp<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// C = A B + beta C split across the pool along the larger of m and n
/// (each part packs only its share of the split operand).
#[allow(clippy::too_many_arguments)]
pub unsafe fn par_gemm<F: Float>(pool: &Pool, m: usize, k: usize, n: usize, a: *const F, rsa: isize, csa: isize, b: *const F, rsb: isize, csb: isize, beta: F, c: *mut F, rsc: isize, csc: isize) {
    unsafe { par_gemm_epi(pool, m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, None) }
}

/// A block's epilogue: `epi(r0, r1, c0, c1)` over rows `[r0, r1)` and
/// columns `[c0, c1)` of C.
pub type BlockEpilogue<'a> = &'a (dyn Fn(usize, usize, usize, usize) + Sync);

/// `par_gemm`, running `epi` on each part's block of C right after the
/// part's product.
#[allow(clippy::too_many_arguments)]
pub unsafe fn par_gemm_epi<F: Float>(pool: &Pool, m: usize, k: usize, n: usize, a: *const F, rsa: isize, csa: isize, b: *const F, rsb: isize, csb: isize, beta: F, c: *mut F, rsc: isize, csc: isize, epi: Option<BlockEpilogue>) {
    let split_n = m < n;
    let ext = if split_n { n } else { m };
    let small = m * n * k < 48 * 48 * 48 || (m < 16 && n < 16);
    let t = if small { 1 } else { pool.threads().min(ext / min_part((m, n))).max(1) };
    if t == 1 {
        unsafe { F::gemm(m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) };
        if let Some(e) = epi {
            e(0, m, 0, n);
        }
        return;
    }
    let (a, b, c) = (Sp(a as *mut F), Sp(b as *mut F), Sp(c));
    let align = 16;
    let bound = |i: usize| (ext * i / t).div_ceil(align) * align;
    pool.run(t, &|part, _| {
        let (lo, hi) = (bound(part).min(ext), bound(part + 1).min(ext));
        if lo >= hi {
            return;
        }
        let (a, b, c) = (a, b, c);
        unsafe {
            if split_n {
                F::gemm_part((m, n), m, k, hi - lo, a.0, rsa, csa, b.0.offset(lo as isize * csb), rsb, csb, beta, c.0.offset(lo as isize * csc), rsc, csc);
            } else {
                F::gemm_part((m, n), hi - lo, k, n, a.0.offset(lo as isize * rsa), rsa, csa, b.0, rsb, csb, beta, c.0.offset(lo as isize * rsc), rsc, csc);
            }
        }
        if let Some(e) = epi {
            if split_n { e(0, m, lo, hi) } else { e(lo, hi, 0, n) }
        }
    });
}

/// A 2-D f32 GEMM whose elementwise epilogue runs on each block of rows
/// right after the block is computed (while it is in cache). `epi(r0, r1)`
/// runs the epilogue over rows `[r0, r1)`. Returns `false` (nothing done)
/// when the op or its shapes do not suit this path.
///
/// # Safety
/// As `run`.
pub unsafe fn gemm_with_epilogue(n: &NativeOp, slots: &[*mut u8], pool: &Pool, epi: &(dyn Fn(usize, usize) + Sync)) -> bool {
    let (at, bt, ct) = (&n.ins[0].1, &n.ins[1].1, &n.out.1);
    if ct.dtype != DType::F32 || ct.shape.rank() != 2 || at.shape.rank() != 2 || bt.shape.rank() != 2 {
        return false;
    }
    let (ta, tb) = match n.op {
        Op::MatMul { trans_a, trans_b } => (trans_a, trans_b),
        Op::FusedDense { trans_b, bias: false, act: Activation::None } => (false, trans_b),
        _ => return false,
    };
    let (m, nn) = (ct.shape.0[0], ct.shape.0[1]);
    let k = if ta { at.shape.0[0] } else { at.shape.0[1] };
    if m < nn || m < 64 {
        return false;
    }
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (nn as isize, 1) };
    let (a, b, c) = (Sp(slots[n.ins[0].0] as *mut f32), Sp(slots[n.ins[1].0] as *mut f32), Sp(slots[n.out.0] as *mut f32));
    let t = pool.threads();
    // Row blocks of about 256 rows keep a block's output in L2 for the
    // epilogue; each block re-packs B, so a large B gets one block per thread.
    let parts = if k * nn > 64 * 1024 { t } else { (m.div_ceil(256)).div_ceil(t).max(1) * t };
    // Blocks of a `gemm` crate product keep a side over 64 (see `min_part`).
    let parts = if nn <= 64 { parts.min(m / min_part((m, nn))).max(1) } else { parts };
    let bound = |i: usize| ((m * i / parts).div_ceil(8) * 8).min(m);
    pool.run(parts, &|part, _| {
        let (a, b, c) = (a, b, c);
        let (lo, hi) = (bound(part), bound(part + 1));
        if lo >= hi {
            return;
        }
        unsafe { f32::gemm_part((m, nn), hi - lo, k, nn, a.0.offset(lo as isize * rsa), rsa, csa, b.0, rsb, csb, 0.0, c.0.add(lo * nn), nn as isize, 1) };
        epi(lo, hi);
    });
    true
}

// ---- indexing and data movement -------------------------------------------------

fn index_at(node: NodeId, v: f64, bound: usize) -> Result<usize, RunError> {
    if v < 0.0 || v >= bound as f64 {
        return Err(oob(node, v as i64, bound));
    }
    Ok(v as usize)
}

unsafe fn softmax_ce(node: NodeId, lg: *mut u8, lt: &TensorType, lb: *mut u8, lbt: &TensorType, out: *mut u8) -> Result<(), RunError> {
    let (n, c) = (lt.shape.0[0], lt.shape.0[1]);
    for r in 0..n {
        let label = index_at(node, unsafe { load(lbt.dtype, lb, r) }, c)?;
        let at = |j: usize| unsafe { load(lt.dtype, lg, r * c + j) };
        let m = (0..c).map(at).fold(f64::NEG_INFINITY, f64::max);
        let lse = m + (0..c).map(|j| (at(j) - m).exp()).sum::<f64>().ln();
        unsafe { store(lt.dtype, out, r, lse - at(label)) };
    }
    Ok(())
}

unsafe fn argmax(x: *mut u8, xt: &TensorType, axis: usize, out: *mut u8) {
    let d = &xt.shape.0;
    let (outer, ext, inner): (usize, usize, usize) = (d[..axis].iter().product(), d[axis], d[axis + 1..].iter().product());
    let o = out as *mut i64;
    for a in 0..outer {
        for i in 0..inner {
            let mut best = 0usize;
            let mut bv = f64::NAN;
            for e in 0..ext {
                let v = unsafe { load(xt.dtype, x, (a * ext + e) * inner + i) };
                if e == 0 {
                    bv = v;
                    continue;
                }
                if bv.is_nan() {
                    break;
                }
                if v.is_nan() || v > bv {
                    best = e;
                    bv = v;
                }
            }
            unsafe { *o.add(a * inner + i) = best as i64 };
        }
    }
}

/// Copies elements with a strided source walk: out[i] = x[offset(i)].
/// Copies `dims` elements from `x` (element strides `src_strides`, start
/// `base`) into contiguous row-major `out`.
unsafe fn strided_copy(x: *const u8, esz: usize, odims: &[usize], src_strides: &[isize], base: isize, out: *mut u8) {
    let dst = crate::kernels::program::row_major(odims);
    unsafe { strided_move(x.offset(base * esz as isize), src_strides, out, &dst, odims, esz) }
}

/// Copies the `dims`-shaped block at `src` (element strides `ss`) to `dst`
/// (element strides `ds`). Dims of extent 1 are dropped and dims contiguous
/// in both are merged, so the innermost loop is one `memcpy` per run when
/// both sides are contiguous there: a time-step slice or a pad interior is a
/// handful of row copies rather than a per-element index walk.
unsafe fn strided_move(src: *const u8, ss: &[isize], dst: *mut u8, ds: &[isize], dims: &[usize], esz: usize) {
    if dims.contains(&0) {
        return;
    }
    // (extent, src stride, dst stride), outermost first, coalesced.
    let mut v: Vec<(usize, isize, isize)> = Vec::with_capacity(dims.len());
    for d in 0..dims.len() {
        if dims[d] == 1 {
            continue;
        }
        if let Some(last) = v.last_mut() {
            if last.1 == ss[d] * dims[d] as isize && last.2 == ds[d] * dims[d] as isize {
                *last = (last.0 * dims[d], ss[d], ds[d]);
                continue;
            }
        }
        v.push((dims[d], ss[d], ds[d]));
    }
    let (run, run_bytes, rs, rd) = match v.last() {
        Some(&(e, 1, 1)) => {
            v.pop();
            (1usize, e * esz, 0isize, 0isize)
        }
        Some(&(e, s, d)) => {
            v.pop();
            (e, esz, s, d)
        }
        None => (1, esz, 0, 0),
    };
    let outer: usize = v.iter().map(|t| t.0).product();
    let r = v.len();
    let mut idx = vec![0usize; r];
    let (es, ed) = (esz as isize, esz as isize);
    for _ in 0..outer {
        let mut so = 0isize;
        let mut dof = 0isize;
        for d in 0..r {
            so += idx[d] as isize * v[d].1;
            dof += idx[d] as isize * v[d].2;
        }
        unsafe {
            let (s0, d0) = (src.offset(so * es), dst.offset(dof * ed));
            if run == 1 {
                std::ptr::copy_nonoverlapping(s0, d0, run_bytes);
            } else if esz == 4 {
                for j in 0..run as isize {
                    *(d0.offset(j * rd * 4) as *mut u32) = *(s0.offset(j * rs * 4) as *const u32);
                }
            } else {
                for j in 0..run as isize {
                    std::ptr::copy_nonoverlapping(s0.offset(j * rs * es), d0.offset(j * rd * ed), esz);
                }
            }
        }
        for d in (0..r).rev() {
            idx[d] += 1;
            if idx[d] < v[d].0 {
                break;
            }
            idx[d] = 0;
        }
    }
}

unsafe fn permute(x: *mut u8, xt: &TensorType, perm: &[usize], out: *mut u8) {
    let s = crate::kernels::program::row_major(&xt.shape.0);
    let odims: Vec<usize> = perm.iter().map(|&p| xt.shape.0[p]).collect();
    let ss: Vec<isize> = perm.iter().map(|&p| s[p]).collect();
    unsafe { strided_copy(x, xt.dtype.size_bytes(), &odims, &ss, 0, out) }
}

unsafe fn broadcast(x: *mut u8, xt: &TensorType, out: *mut u8, ot: &TensorType) {
    let s = crate::kernels::program::row_major(&xt.shape.0);
    let off = ot.shape.rank() - xt.shape.rank();
    let ss: Vec<isize> = (0..ot.shape.rank()).map(|j| if j < off || xt.shape.0[j - off] == 1 { 0 } else { s[j - off] }).collect();
    unsafe { strided_copy(x, xt.dtype.size_bytes(), &ot.shape.0, &ss, 0, out) }
}

unsafe fn slice(x: *mut u8, xt: &TensorType, start: &[usize], step: &[usize], out: *mut u8, ot: &TensorType) {
    let s = crate::kernels::program::row_major(&xt.shape.0);
    let base: isize = (0..s.len()).map(|d| start[d] as isize * s[d]).sum();
    let ss: Vec<isize> = (0..s.len()).map(|d| s[d] * step[d] as isize).collect();
    unsafe { strided_copy(x, xt.dtype.size_bytes(), &ot.shape.0, &ss, base, out) }
}

unsafe fn concat(parts: &[(*mut u8, &TensorType)], axis: usize, out: *mut u8, ot: &TensorType) {
    let esz = ot.dtype.size_bytes();
    let outer: usize = ot.shape.0[..axis].iter().product();
    let inner: usize = ot.shape.0[axis + 1..].iter().product();
    let orow = ot.shape.0[axis] * inner;
    let mut col = 0;
    for (p, t) in parts {
        let run = t.shape.0[axis] * inner;
        for o in 0..outer {
            unsafe { std::ptr::copy_nonoverlapping(p.add(o * run * esz), out.add((o * orow + col) * esz), run * esz) };
        }
        col += run;
    }
}

unsafe fn pad(pool: &Pool, x: *mut u8, xt: &TensorType, lo: &[usize], value: f64, out: *mut u8, ot: &TensorType) {
    let n = ot.numel();
    // The fill is pure memory traffic (LSTM gradients pad each time step to
    // the whole sequence: 4 MiB per pad), so large ones use every thread.
    let t = pool.threads();
    let chunks = if n * ot.dtype.size_bytes() >= 256 * 1024 { t * 2 } else { 1 };
    let o = Sp(out);
    pool.run(chunks, &|part, _| {
        let out = o.get();
        let (a, b) = (n * part / chunks, n * (part + 1) / chunks);
        let m = b - a;
        unsafe {
            match ot.dtype {
                DType::F32 => std::slice::from_raw_parts_mut((out as *mut f32).add(a), m).fill(value as f32),
                DType::F64 => std::slice::from_raw_parts_mut((out as *mut f64).add(a), m).fill(value),
                DType::I64 => std::slice::from_raw_parts_mut((out as *mut i64).add(a), m).fill(value as i64),
                DType::I32 => std::slice::from_raw_parts_mut((out as *mut i32).add(a), m).fill(value as i32),
                DType::Bool => std::ptr::write_bytes(out.add(a), (value != 0.0) as u8, m),
            }
        }
    });
    let os = crate::kernels::program::row_major(&ot.shape.0);
    let base: isize = (0..os.len()).map(|d| lo[d] as isize * os[d]).sum();
    let esz = xt.dtype.size_bytes();
    let xs = crate::kernels::program::row_major(&xt.shape.0);
    unsafe { strided_move(x, &xs, out.offset(base * esz as isize), &os, &xt.shape.0, esz) }
}

#[allow(clippy::too_many_arguments)]
unsafe fn gather(node: NodeId, data: *mut u8, dt: &TensorType, idx: *mut u8, it: &TensorType, axis: usize, out: *mut u8) -> Result<(), RunError> {
    let d = &dt.shape.0;
    let (outer, ext, inner): (usize, usize, usize) = (d[..axis].iter().product(), d[axis], d[axis + 1..].iter().product());
    let esz = dt.dtype.size_bytes();
    let cols: Vec<usize> = (0..it.numel()).map(|i| index_at(node, unsafe { load(it.dtype, idx, i) }, ext)).collect::<Result<_, _>>()?;
    let mut o = 0;
    for a in 0..outer {
        for &c in &cols {
            unsafe { std::ptr::copy_nonoverlapping(data.add((a * ext + c) * inner * esz), out.add(o * esz), inner * esz) };
            o += inner;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
unsafe fn scatter_add(node: NodeId, idx: *mut u8, it: &TensorType, upd: *mut u8, ut: &TensorType, axis: usize, size: usize, out: *mut u8, ot: &TensorType) -> Result<(), RunError> {
    let ni = it.numel();
    let outer: usize = ut.shape.0[..axis].iter().product();
    let inner: usize = ut.shape.0[axis + it.shape.rank()..].iter().product();
    let rows: Vec<usize> = (0..ni).map(|i| index_at(node, unsafe { load(it.dtype, idx, i) }, size)).collect::<Result<_, _>>()?;
    for i in 0..ot.numel() {
        unsafe { store(ot.dtype, out, i, 0.0) };
    }
    for o in 0..outer {
        for (j, &r) in rows.iter().enumerate() {
            let src = (o * ni + j) * inner;
            let dst = (o * size + r) * inner;
            for e in 0..inner {
                unsafe {
                    let v = load(ot.dtype, out, dst + e) + load(ut.dtype, upd, src + e);
                    store(ot.dtype, out, dst + e, v);
                }
            }
        }
    }
    Ok(())
}

unsafe fn one_hot(node: NodeId, idx: *mut u8, it: &TensorType, classes: usize, out: *mut u8) -> Result<(), RunError> {
    let o = out as *mut f32;
    for i in 0..it.numel() * classes {
        unsafe { *o.add(i) = 0.0 };
    }
    for i in 0..it.numel() {
        let c = index_at(node, unsafe { load(it.dtype, idx, i) }, classes)?;
        unsafe { *o.add(i * classes + c) = 1.0 };
    }
    Ok(())
}
