//! Convolution and its gradients as im2col/col2im + GEMM, per block of
//! `block_images` images (one GEMM per block and group), blocks split across
//! the pool. f32 runs the generated packing and epilogue functions
//! (`lower/conv.rs`), and a conv whose column matrix per image exceeds L2
//! splits each image's GEMM into blocks of output rows; f64 runs the Rust
//! im2col/col2im below.

use kiln_ir::{Conv2dAttrs, DType, Op, RunError, TensorType};

use crate::kernels::{bias_act, Float, NativeOp};
use crate::lower::jit::JitFn;
use crate::runtime::pool::{Pool, Sp};

/// Which generated function (`lower/conv.rs`) sits at each index of a
/// conv op's `code`.
pub const IM2COL: usize = 0;
/// Forward: the move out of the GEMM block (`conv_out`); gradients: the
/// move of dy into the GEMM block (`conv_pack`).
pub const MOVE: usize = 1;
/// Input gradient: col2im (index 0 is its `conv_pack`).
pub const COL2IM: usize = 1;
pub const PACK: usize = 0;

/// The fewest images per im2col block (one GEMM per block and group; see
/// `block_images`). Small enough that a batch of 32 gives 8 blocks, so two
/// threads stay balanced when one starts late.
pub const CONV_BATCH: usize = 4;

/// Column-matrix elements of a block (768 KiB: past a Zen 3 core's
/// 512 KiB L2, the GEMM's packing reads it from L3). Measured on one
/// thread with the `gemm` crate's GEMMs: W4 1.25-1.4x and ResNet-18 1.1x
/// faster than with 48 Ki elements (the L2-sized blocks tuned for
/// `matrixmultiply`), and no change from 384 Ki up to no limit.
const COL_BUDGET: usize = 192 * 1024;

/// Output rows per GEMM block when one image's column matrix is larger
/// than `COL_BUDGET` (a 32-channel 3x3 conv on 28x28: 900 KiB): blocks are
/// then runs of output rows of one image, so im2col writes and the GEMM
/// packing reads stay in cache. `None`: blocks of `CONV_BATCH` images.
///
/// A block keeps at least `MIN_BLOCK_COLS` columns even past the budget:
/// with many channels (ResNet-18's 256- and 512-channel 3x3 convs: 2304
/// and 4608 rows per column) the budget alone gave GEMMs 8-16 columns
/// wide, which re-packed the whole weight matrix for every few columns
/// and made each weight-gradient block a rank-8 update of all of dW.
/// When that many rows cover the image, blocks are whole images again.
pub(crate) fn row_block(gm: &ConvGeom) -> Option<usize> {
    let per_row = gm.kdim() * gm.wo;
    if per_row * gm.ho <= COL_BUDGET {
        return None;
    }
    let rows = (COL_BUDGET / per_row.max(1)).max(MIN_BLOCK_COLS.div_ceil(gm.wo.max(1))).max(1);
    (rows < gm.ho).then_some(rows)
}

/// The fewest GEMM columns a row block has (see `row_block`).
const MIN_BLOCK_COLS: usize = 128;

/// Columns of a GEMM block (the column matrix's row stride): `block_images`
/// images, or `row_block` output rows.
pub(crate) fn block_cols(gm: &ConvGeom) -> usize {
    row_block(gm).map_or(block_images(gm.pix()) * gm.pix(), |r| r * gm.wo)
}

/// Images per block (the unit split across threads) for outputs of `pix`
/// pixels: `CONV_BATCH`, or more when images are small so that a GEMM
/// block still has `MIN_BLOCK_COLS` columns (torchvision's ResNet-18 on
/// 32x32 inputs ends at 2x2 and 1x1 outputs: blocks of 4 images gave its
/// 512-channel convs GEMMs 4 columns wide), up to `MAX_BLOCK_IMAGES`. It
/// depends on the shape alone, never on the thread count, so results are
/// the same on any number of threads.
pub(crate) fn block_images(pix: usize) -> usize {
    MIN_BLOCK_COLS.div_ceil(pix.max(1)).clamp(CONV_BATCH, MAX_BLOCK_IMAGES)
}

/// The most images in one block (see `block_images`): a batch of 32 still
/// gives two blocks for two threads.
const MAX_BLOCK_IMAGES: usize = 16;

/// Whether a weight gradient adds its image blocks into dW one after
/// another (each block's GEMM split across the pool by `DW_COLS` columns of
/// dW) instead of computing one partial dW per block in parallel and
/// summing them (`sum_partials`): when the partials outweigh a block's
/// column matrix. That is ResNet-18's 256- and 512-channel layers, where
/// 2-4 partials of 0.6-2.4 M elements and their sum cost more than the
/// extra synchronisation. It depends on the shape alone, so the sums are
/// the same on any number of threads.
pub(crate) fn dw_in_place(gm: &ConvGeom) -> bool {
    let partials = gm.chunks().saturating_mul(gm.o).saturating_mul(gm.kdim());
    let block = block_images(gm.pix()).saturating_mul(gm.pix()).saturating_mul(gm.kdim());
    row_block(gm).is_none() && gm.chunks() > 1 && partials > block
}

/// dW columns per GEMM when a weight gradient runs `dw_in_place`.
const DW_COLS: usize = 128;

/// Fewest dW elements per thread when the weight gradient's partials are
/// summed (`sum_partials`).
const SUM_GRAIN: usize = 16 * 1024;

/// Scratch elements (of the op's dtype) a conv op needs when it runs on
/// `threads` threads (one region per thread); 0 for any other op.
pub fn scratch_elems(op: &Op, ins: &[TensorType], out: &TensorType, threads: usize) -> usize {
    // Per thread: the im2col block of `block_images` images plus one GEMM-shaped
    // block of outputs (or output gradients).
    let mut per_thread = 0;
    let shared = match op {
        Op::Conv2d(_) | Op::FusedConv2d { .. } | Op::Conv2dGradInput { .. } | Op::Conv2dGradWeight { .. } | Op::Conv1d(_) => {
            let (w, y): (Vec<usize>, Vec<usize>) = match op {
                Op::Conv2dGradInput { .. } => (ins[1].shape.0.clone(), ins[0].shape.0.clone()),
                Op::Conv2dGradWeight { .. } => (out.shape.0.clone(), ins[1].shape.0.clone()),
                _ => (ins[1].shape.0.clone(), out.shape.0.clone()),
            };
            let (o, kd) = (w[0], w[1..].iter().product::<usize>());
            let pix: usize = y[2..].iter().product();
            let groups = match op {
                Op::Conv2d(a) | Op::FusedConv2d { attrs: a, .. } | Op::Conv2dGradInput { attrs: a, .. } | Op::Conv2dGradWeight { attrs: a, .. } => a.groups,
                Op::Conv1d(a) => a.groups,
                _ => 1,
            };
            // Saturating: a hostile file's shapes may not fit, and the
            // compile's memory limit refuses what this says.
            let bi = block_images(pix);
            per_thread = bi.saturating_mul(pix).saturating_mul(kd.saturating_add(o / groups.max(1)));
            // dW partials: one per block of images (not per thread), summed
            // in block order so results do not depend on scheduling (also
            // reserved where generated code adds the blocks into dW in
            // place: the Rust path, without generated code, sums partials).
            if matches!(op, Op::Conv2dGradWeight { .. }) { ins[0].shape.0[0].div_ceil(bi).saturating_mul(out.numel()) } else { 0 }
        }
        _ => 0,
    };
    per_thread.saturating_mul(threads.max(1)).saturating_add(shared)
}

/// Runs one conv op (`Conv2d`, `FusedConv2d`, `Conv1d` and the two 2-D
/// gradients).
///
/// # Safety
/// As `kernels::run`.
pub unsafe fn run(n: &NativeOp, slots: &[*mut u8], scratch: *mut u8, pool: &Pool) -> Result<(), RunError> {
    let p = |i: usize| slots[n.ins[i].0];
    let t = |i: usize| &n.ins[i].1;
    let out = slots[n.out.0];
    let oty = &n.out.1;
    let float = t(0).dtype;
    if let (false, Some(gm)) = (n.code.is_empty(), op_geom(n)) {
        unsafe { run_generated(n, &gm, slots, scratch as *mut f32, pool) };
        return Ok(());
    }
    match &n.op {
        Op::Conv2d(a) => by_float!(float, n, conv2d(pool, p(0), t(0), p(1), t(1), a, out, oty, scratch)),
        Op::FusedConv2d { attrs, bias, act } => {
            by_float!(float, n, conv2d(pool, p(0), t(0), p(1), t(1), attrs, out, oty, scratch));
            let (nb, o) = (oty.shape.0[0], oty.shape.0[1]);
            let hw = oty.shape.0[2] * oty.shape.0[3];
            let bias_p = if *bias { Some(p(2)) } else { None };
            by_float!(float, n, bias_act(out, nb, o, hw, bias_p, *act));
        }
        Op::Conv1d(a) => {
            let x4 = TensorType::new(t(0).dtype, [t(0).shape.0[0], t(0).shape.0[1], 1, t(0).shape.0[2]]);
            let w4 = TensorType::new(t(1).dtype, [t(1).shape.0[0], t(1).shape.0[1], 1, t(1).shape.0[2]]);
            let o4 = TensorType::new(oty.dtype, [oty.shape.0[0], oty.shape.0[1], 1, oty.shape.0[2]]);
            by_float!(float, n, conv2d(pool, p(0), &x4, p(1), &w4, &a.as_conv2d(), out, &o4, scratch))
        }
        Op::Conv2dGradInput { attrs, .. } => by_float!(float, n, conv2d_grad_input(pool, p(0), t(0), p(1), t(1), attrs, out, oty, scratch)),
        Op::Conv2dGradWeight { attrs, .. } => by_float!(float, n, conv2d_grad_weight(pool, p(0), t(0), p(1), t(1), attrs, out, oty, scratch)),
        other => return Err(RunError::Backend(format!("{}: {} is not a convolution", n.node, other.name()))),
    }
    Ok(())
}

/// The 2-D geometry of a conv op (a 1-D conv is 2-D with height 1).
pub(crate) fn op_geom(n: &NativeOp) -> Option<ConvGeom> {
    // Runs per step: a fixed-size array, no allocation.
    let s = |t: &TensorType| -> [usize; 4] {
        let d = &t.shape.0;
        if d.len() == 3 { [d[0], d[1], 1, d[2]] } else { [d[0], d[1], d[2], d[3]] }
    };
    if n.ins.len() < 2 {
        return None;
    }
    let (x, w, y) = (&n.ins[0].1, &n.ins[1].1, &n.out.1);
    Some(match &n.op {
        Op::Conv2d(a) | Op::FusedConv2d { attrs: a, .. } => ConvGeom::new(&s(x), &s(w), &s(y), a),
        Op::Conv1d(a) => ConvGeom::new(&s(x), &s(w), &s(y), &a.as_conv2d()),
        // (dy, w) -> dx
        Op::Conv2dGradInput { attrs: a, .. } => ConvGeom::new(&s(y), &s(w), &s(x), a),
        // (x, dy) -> dw
        Op::Conv2dGradWeight { attrs: a, .. } => ConvGeom::new(&s(x), &s(y), &s(w), a),
        _ => return None,
    })
}

/// A conv op through its generated packing/epilogue functions
/// (`lower/conv.rs`), f32: the same blocks, GEMMs and pool split as the Rust
/// path below, but column rows are always `block_cols` apart (the
/// functions' strides are constants) and the bias + activation run on each
/// block's output as it is moved out of the GEMM block, while it is hot.
unsafe fn run_generated(n: &NativeOp, gm: &ConvGeom, slots: &[*mut u8], scratch: *mut f32, pool: &Pool) {
    let p = |i: usize| Sp(slots[n.ins[i].0] as *mut f32);
    let out = Sp(slots[n.out.0] as *mut f32);
    let (kd, pix, og, cg) = (gm.kdim(), gm.pix(), gm.og(), gm.cg());
    let ld = block_cols(gm);
    let (plane, oplane, gplane) = (gm.c * gm.h * gm.w, gm.o * pix, cg * gm.h * gm.w);
    let (per, chunks) = (gm.per_thread(), gm.chunks());
    let scr = Sp(scratch);
    let code: &[JitFn] = &n.code;
    let call = |f: JitFn, args: &[*mut f32], lo: usize, hi: usize| unsafe { f(args.as_ptr() as *const *mut u8, lo as i64, hi as i64) };
    // The GEMM blocks of chunk `part` (its images), in order.
    let blocks = |part: usize, f: &mut dyn FnMut(Block)| {
        let (n0, cnt) = gm.images_of(part);
        match row_block(gm) {
            None => f(Block { img: n0, r0: 0, lo: 0, hi: cnt, units: cnt, cols: cnt * pix }),
            Some(rb) => {
                for img in n0..n0 + cnt {
                    for r0 in (0..gm.ho).step_by(rb) {
                        let r1 = (r0 + rb).min(gm.ho);
                        f(Block { img, r0, lo: r0, hi: r1, units: r1 - r0, cols: (r1 - r0) * gm.wo });
                    }
                }
            }
        }
    };
    match n.op {
        Op::Conv2d(_) | Op::Conv1d(_) | Op::FusedConv2d { .. } => {
            let (x, w) = (p(0), p(1));
            let bias = if matches!(n.op, Op::FusedConv2d { bias: true, .. }) { p(2) } else { Sp(std::ptr::null_mut()) };
            pool.run(chunks, &|part, th| {
                let (x, w, out, bias) = (x, w, out, bias);
                let col = unsafe { scr.get().add(th * per) };
                let tmp = unsafe { col.add(ld * kd) };
                blocks(part, &mut |k| {
                    for gi in 0..gm.g {
                        unsafe {
                            call(code[IM2COL], &[x.get().add(k.img * plane + gi * gplane), col.wrapping_sub(k.r0 * gm.wo)], k.lo, k.hi);
                            f32::gemm(og, kd, k.cols, w.get().add(gi * og * kd), kd as isize, 1, col, ld as isize, 1, 0.0, tmp, ld as isize, 1);
                            let b = if bias.get().is_null() { bias.get() } else { bias.get().add(gi * og) };
                            call(code[MOVE], &[tmp, out.get().add(k.img * oplane + gi * og * pix + k.r0 * gm.wo), b], 0, k.units);
                        }
                    }
                });
            });
        }
        Op::Conv2dGradInput { .. } => {
            let (dy, w) = (p(0), p(1));
            pool.run(chunks, &|part, th| {
                let (dy, w, dx) = (dy, w, out);
                let col = unsafe { scr.get().add(th * per) };
                let tmp = unsafe { col.add(ld * kd) };
                let (n0, cnt) = gm.images_of(part);
                // Row blocks of one image add into overlapping input rows:
                // they run in order on this chunk's thread.
                unsafe { std::slice::from_raw_parts_mut(dx.get().add(n0 * plane), cnt * plane).fill(0.0) };
                blocks(part, &mut |k| {
                    for gi in 0..gm.g {
                        unsafe {
                            call(code[PACK], &[dy.get().add(k.img * oplane + gi * og * pix + k.r0 * gm.wo), tmp], 0, k.units);
                            f32::gemm(kd, og, k.cols, w.get().add(gi * og * kd), 1, kd as isize, tmp, ld as isize, 1, 0.0, col, ld as isize, 1);
                            call(code[COL2IM], &[dx.get().add(k.img * plane + gi * gplane), col.wrapping_sub(k.r0 * gm.wo)], k.lo, k.hi);
                        }
                    }
                });
            });
        }
        Op::Conv2dGradWeight { .. } if dw_in_place(gm) => {
            // Blocks one after another, each added into dW by GEMMs over
            // fixed column ranges of dW split across the pool (the same
            // ranges on any thread count, so the same sums).
            let (x, dy) = (p(0), p(1));
            let (col, tmp) = (scr, Sp(unsafe { scr.get().add(gm.col_elems()) }));
            let ranges = kd.div_ceil(DW_COLS);
            let mut first = true;
            for part in 0..chunks {
                let (n0, cnt) = gm.images_of(part);
                for gi in 0..gm.g {
                    let (xb, dyb) = (Sp(unsafe { x.get().add(n0 * plane + gi * gplane) }), Sp(unsafe { dy.get().add(n0 * oplane + gi * og * pix) }));
                    // Each image's columns and dy rows are disjoint: split by image.
                    pool.run(cnt, &|img, _| {
                        let (xb, dyb, col, tmp) = (xb, dyb, col, tmp);
                        call(code[IM2COL], &[xb.get(), col.get()], img, img + 1);
                        call(code[MOVE], &[dyb.get(), tmp.get()], img, img + 1);
                    });
                    let beta = if first { 0.0 } else { 1.0 };
                    pool.run(ranges, &|r, _| {
                        let (col, tmp, out) = (col, tmp, out);
                        let (j0, j1) = (r * DW_COLS, ((r + 1) * DW_COLS).min(kd));
                        unsafe { f32::gemm_part((og, kd), og, cnt * pix, j1 - j0, tmp.get(), ld as isize, 1, col.get().add(j0 * ld), 1, ld as isize, beta, out.get().add(gi * og * kd + j0), kd as isize, 1) };
                    });
                }
                first = false;
            }
        }
        Op::Conv2dGradWeight { .. } => {
            let (x, dy) = (p(0), p(1));
            let nw = gm.o * kd;
            // One partial dW per image block, summed in block order (as below).
            let partials = Sp(unsafe { scr.get().add(pool.threads() * per) });
            pool.run(chunks, &|part, th| {
                let (x, dy) = (x, dy);
                let col = unsafe { scr.get().add(th * per) };
                let tmp = unsafe { col.add(ld * kd) };
                let acc = unsafe { partials.get().add(part * nw) };
                let mut beta = 0.0;
                blocks(part, &mut |k| {
                    for gi in 0..gm.g {
                        unsafe {
                            call(code[IM2COL], &[x.get().add(k.img * plane + gi * gplane), col.wrapping_sub(k.r0 * gm.wo)], k.lo, k.hi);
                            call(code[MOVE], &[dy.get().add(k.img * oplane + gi * og * pix + k.r0 * gm.wo), tmp], 0, k.units);
                            f32::gemm(og, k.cols, kd, tmp, ld as isize, 1, col, 1, ld as isize, beta, acc.add(gi * og * kd), kd as isize, 1);
                        }
                    }
                    beta = 1.0;
                });
            });
            unsafe { sum_partials(pool, partials, chunks, nw, out) };
        }
        _ => {}
    }
}

/// A GEMM block of a conv: images `img..` (or output rows `r0..` of image
/// `img`); `lo..hi` is the range of the column functions, `units` that of
/// the row moves, `cols` the GEMM's columns.
struct Block {
    img: usize,
    r0: usize,
    lo: usize,
    hi: usize,
    units: usize,
    cols: usize,
}

#[derive(Debug)]
pub(crate) struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub g: usize,
    pub a: Conv2dAttrs,
}

impl ConvGeom {
    pub fn new(x: &[usize], wt: &[usize], y: &[usize], a: &Conv2dAttrs) -> ConvGeom {
        ConvGeom { n: x[0], c: x[1], h: x[2], w: x[3], o: wt[0], kh: wt[2], kw: wt[3], ho: y[2], wo: y[3], g: a.groups, a: *a }
    }
    pub fn cg(&self) -> usize {
        self.c / self.g
    }
    pub fn og(&self) -> usize {
        self.o / self.g
    }
    pub fn kdim(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    pub fn pix(&self) -> usize {
        self.ho * self.wo
    }

    /// Image blocks (the units split across threads; `block_images` each).
    pub fn chunks(&self) -> usize {
        self.n.div_ceil(block_images(self.pix()))
    }

    /// The first image and the image count of block `part`.
    pub fn images_of(&self, part: usize) -> (usize, usize) {
        let bi = block_images(self.pix());
        let n0 = part * bi;
        (n0, bi.min(self.n - n0))
    }

    /// Scratch elements per thread: a block's column matrix (`col_elems`)
    /// then one GEMM-shaped block of outputs or output gradients
    /// (`scratch_elems` sizes the same regions from the op's shapes).
    pub fn per_thread(&self) -> usize {
        self.col_elems() + block_images(self.pix()) * self.pix() * self.og()
    }

    /// Elements of a block's column matrix, where the output block starts.
    pub fn col_elems(&self) -> usize {
        block_images(self.pix()) * self.pix() * self.kdim()
    }

    /// Output columns `[lo, hi)` whose input column `ow*stride + j*dil - pad`
    /// lies inside `0..w` (along `axis`).
    pub fn valid(&self, axis: usize, tap: usize, out: usize, bound: usize) -> (usize, usize) {
        let (s, d, p) = (self.a.stride[axis], self.a.dilation[axis], self.a.padding[axis]);
        let off = (tap * d) as isize - p as isize;
        // first o with o*s + off >= 0, first o with o*s + off >= bound
        let lo = if off >= 0 { 0 } else { ((-off) as usize).div_ceil(s) };
        let hi = if (bound as isize) <= off { 0 } else { ((bound as isize - off) as usize).div_ceil(s) };
        (lo.min(out), hi.min(out).max(lo.min(out)))
    }

    /// col[(c*kh+i)*kw+j, oh*wo+ow] = x[c0+c, ih, iw] (0 in the padding).
    /// Rows are `ld` elements apart (several images side by side).
    unsafe fn im2col<F: Float>(&self, x: *const F, c0: usize, col: *mut F, ld: usize) {
        let a = &self.a;
        for c in 0..self.cg() {
            let plane = unsafe { x.add((c0 + c) * self.h * self.w) };
            for i in 0..self.kh {
                let (oh_lo, oh_hi) = self.valid(0, i, self.ho, self.h);
                for j in 0..self.kw {
                    let row = unsafe { col.add(((c * self.kh + i) * self.kw + j) * ld) };
                    let (ow_lo, ow_hi) = self.valid(1, j, self.wo, self.w);
                    let col_off = (j * a.dilation[1]) as isize - a.padding[1] as isize;
                    for oh in 0..self.ho {
                        let dst = unsafe { std::slice::from_raw_parts_mut(row.add(oh * self.wo), self.wo) };
                        if oh < oh_lo || oh >= oh_hi {
                            dst.fill(F::default());
                            continue;
                        }
                        let ih = oh * a.stride[0] + i * a.dilation[0] - a.padding[0];
                        let src = unsafe { plane.add(ih * self.w) };
                        dst[..ow_lo].fill(F::default());
                        dst[ow_hi..].fill(F::default());
                        let s = a.stride[1];
                        if s == 1 {
                            // Unit stride: one contiguous run of the input row.
                            if ow_lo < ow_hi {
                                let run = unsafe { std::slice::from_raw_parts(src.offset(ow_lo as isize + col_off), ow_hi - ow_lo) };
                                dst[ow_lo..ow_hi].copy_from_slice(run);
                            }
                            continue;
                        }
                        for (ow, d) in dst.iter_mut().enumerate().take(ow_hi).skip(ow_lo) {
                            *d = unsafe { *src.offset((ow * s) as isize + col_off) };
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col`: dx[c0+c, ih, iw] += col[...].
    unsafe fn col2im<F: Float>(&self, col: *const F, c0: usize, dx: *mut F, ld: usize) {
        let a = &self.a;
        for c in 0..self.cg() {
            let plane = unsafe { dx.add((c0 + c) * self.h * self.w) };
            for i in 0..self.kh {
                let (oh_lo, oh_hi) = self.valid(0, i, self.ho, self.h);
                for j in 0..self.kw {
                    let row = unsafe { col.add(((c * self.kh + i) * self.kw + j) * ld) };
                    let (ow_lo, ow_hi) = self.valid(1, j, self.wo, self.w);
                    let col_off = (j * a.dilation[1]) as isize - a.padding[1] as isize;
                    let s = a.stride[1];
                    for oh in oh_lo..oh_hi {
                        let ih = oh * a.stride[0] + i * a.dilation[0] - a.padding[0];
                        let dst = unsafe { plane.add(ih * self.w) };
                        let src = unsafe { row.add(oh * self.wo) };
                        if s == 1 {
                            // Unit stride: slices over the two distinct buffers vectorize.
                            if ow_lo < ow_hi {
                                let len = ow_hi - ow_lo;
                                let d = unsafe { std::slice::from_raw_parts_mut(dst.offset(ow_lo as isize + col_off), len) };
                                let v = unsafe { std::slice::from_raw_parts(src.add(ow_lo), len) };
                                for (d, v) in d.iter_mut().zip(v) {
                                    *d += *v;
                                }
                            }
                            continue;
                        }
                        for ow in ow_lo..ow_hi {
                            unsafe { *dst.offset((ow * s) as isize + col_off) += *src.add(ow) };
                        }
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn conv2d<F: Float>(pool: &Pool, x: *mut u8, xt: &TensorType, w: *mut u8, wt: &TensorType, a: &Conv2dAttrs, y: *mut u8, yt: &TensorType, scratch: *mut u8) {
    let gm = ConvGeom::new(&xt.shape.0, &wt.shape.0, &yt.shape.0, a);
    let (x, w, y, scr) = (Sp(x as *mut F), Sp(w as *mut F), Sp(y as *mut F), Sp(scratch as *mut F));
    let (kd, pix, og) = (gm.kdim(), gm.pix(), gm.og());
    let (per, chunks) = (gm.per_thread(), gm.chunks());
    pool.run(chunks, &|part, th| {
        let (x, w, y) = (x, w, y);
        let col = unsafe { scr.get().add(th * per) };
        let tmp = unsafe { col.add(gm.col_elems()) };
        let (n0, cnt) = gm.images_of(part);
        let ld = cnt * pix;
        for gi in 0..gm.g {
            unsafe {
                for nn in 0..cnt {
                    gm.im2col(x.0.add((n0 + nn) * gm.c * gm.h * gm.w), gi * gm.cg(), col.add(nn * pix), ld);
                }
                F::gemm(og, kd, ld, w.0.add(gi * og * kd), kd as isize, 1, col, ld as isize, 1, F::default(), tmp, ld as isize, 1);
                for o in 0..og {
                    for nn in 0..cnt {
                        std::ptr::copy_nonoverlapping(tmp.add(o * ld + nn * pix), y.0.add(((n0 + nn) * gm.o + gi * og + o) * pix), pix);
                    }
                }
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
unsafe fn conv2d_grad_input<F: Float>(pool: &Pool, dy: *mut u8, dyt: &TensorType, w: *mut u8, wt: &TensorType, a: &Conv2dAttrs, dx: *mut u8, dxt: &TensorType, scratch: *mut u8) {
    let gm = ConvGeom::new(&dxt.shape.0, &wt.shape.0, &dyt.shape.0, a);
    let (dy, w, dx, scr) = (Sp(dy as *mut F), Sp(w as *mut F), Sp(dx as *mut F), Sp(scratch as *mut F));
    let (kd, pix, og) = (gm.kdim(), gm.pix(), gm.og());
    let (per, chunks) = (gm.per_thread(), gm.chunks());
    let plane = gm.c * gm.h * gm.w;
    pool.run(chunks, &|part, th| {
        let (dy, w, dx) = (dy, w, dx);
        let col = unsafe { scr.get().add(th * per) };
        let tmp = unsafe { col.add(gm.col_elems()) };
        let (n0, cnt) = gm.images_of(part);
        let ld = cnt * pix;
        unsafe { std::slice::from_raw_parts_mut(dx.0.add(n0 * plane), cnt * plane).fill(F::default()) };
        for gi in 0..gm.g {
            unsafe {
                for o in 0..og {
                    for nn in 0..cnt {
                        std::ptr::copy_nonoverlapping(dy.0.add(((n0 + nn) * gm.o + gi * og + o) * pix), tmp.add(o * ld + nn * pix), pix);
                    }
                }
                F::gemm(kd, og, ld, w.0.add(gi * og * kd), 1, kd as isize, tmp, ld as isize, 1, F::default(), col, ld as isize, 1);
                for nn in 0..cnt {
                    gm.col2im(col.add(nn * pix), gi * gm.cg(), dx.0.add((n0 + nn) * plane), ld);
                }
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
unsafe fn conv2d_grad_weight<F: Float>(pool: &Pool, x: *mut u8, xt: &TensorType, dy: *mut u8, dyt: &TensorType, a: &Conv2dAttrs, dw: *mut u8, dwt: &TensorType, scratch: *mut u8) {
    let gm = ConvGeom::new(&xt.shape.0, &dwt.shape.0, &dyt.shape.0, a);
    let (x, dy, dw) = (Sp(x as *mut F), Sp(dy as *mut F), dw as *mut F);
    let (kd, pix, og) = (gm.kdim(), gm.pix(), gm.og());
    let nw = dwt.numel();
    let (per, chunks) = (gm.per_thread(), gm.chunks());
    let t = pool.threads();
    let scr = Sp(scratch as *mut F);
    // One partial dW per image block, after the per-thread blocks.
    let partials = Sp(unsafe { scr.get().add(t * per) });
    pool.run(chunks, &|part, th| {
        let (x, dy) = (x, dy);
        let col = unsafe { scr.get().add(th * per) };
        let tmp = unsafe { col.add(gm.col_elems()) };
        let acc = unsafe { partials.get().add(part * nw) };
        unsafe { std::slice::from_raw_parts_mut(acc, nw).fill(F::default()) };
        let (n0, cnt) = gm.images_of(part);
        let ld = cnt * pix;
        for gi in 0..gm.g {
            unsafe {
                for nn in 0..cnt {
                    gm.im2col(x.0.add((n0 + nn) * gm.c * gm.h * gm.w), gi * gm.cg(), col.add(nn * pix), ld);
                }
                for o in 0..og {
                    for nn in 0..cnt {
                        std::ptr::copy_nonoverlapping(dy.0.add(((n0 + nn) * gm.o + gi * og + o) * pix), tmp.add(o * ld + nn * pix), pix);
                    }
                }
                F::gemm(og, ld, kd, tmp, ld as isize, 1, col, 1, ld as isize, F::default(), acc.add(gi * og * kd), kd as isize, 1);
            }
        }
    });
    unsafe { sum_partials(pool, partials, chunks, nw, Sp(dw)) };
}

/// dW = the sum of `chunks` partials of `nw` elements each (one per image
/// block, `nw` apart), added in block order for every element so the result
/// does not depend on the thread count. A slice of dW per thread, one
/// contiguous partial at a time (it vectorizes): ResNet-18's 512-channel dW
/// is 2.4 M elements, and a strided one-thread sum cost milliseconds per
/// conv.
///
/// # Safety
/// `partials` holds `chunks * nw` elements and `dw` `nw`, not overlapping.
unsafe fn sum_partials<F: Float>(pool: &Pool, partials: Sp<F>, chunks: usize, nw: usize, dw: Sp<F>) {
    let slices = pool.threads().min(nw.div_ceil(SUM_GRAIN)).max(1);
    pool.run(slices, &|sl, _| {
        let (lo, hi) = (nw * sl / slices, nw * (sl + 1) / slices);
        let d = unsafe { std::slice::from_raw_parts_mut(dw.get().add(lo), hi - lo) };
        d.fill(F::default());
        for part in 0..chunks {
            let p = unsafe { std::slice::from_raw_parts(partials.get().add(part * nw + lo), hi - lo) };
            for (v, x) in d.iter_mut().zip(p) {
                *v += *x;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(c: usize, hw: [usize; 2], k: usize, groups: usize, stride: usize, pad: usize, dil: usize) -> ConvGeom {
        let a = Conv2dAttrs { stride: [stride; 2], padding: [pad; 2], dilation: [dil; 2], groups };
        let out = |i: usize| (hw[i] + 2 * pad - dil * (k - 1) - 1) / stride + 1;
        ConvGeom::new(&[2, c, hw[0], hw[1]], &[5, c / groups, k, k], &[2, 5, out(0), out(1)], &a)
    }

    /// The shapes `tests/conv_pool_codegen.rs::row_blocked_convolutions`
    /// runs are row-blocked as its comments say (so that test keeps
    /// covering the row-block code when the budget moves).
    #[test]
    fn the_row_blocked_test_shapes_are_row_blocked() {
        assert_eq!(row_block(&geom(16, [40, 43], 3, 1, 1, 1, 1)), Some(31));
        assert_eq!(row_block(&geom(24, [57, 60], 5, 2, 2, 2, 1)), Some(21));
        assert_eq!(row_block(&geom(32, [33, 36], 3, 1, 1, 0, 2)), Some(21));
        // The budget alone would give 6 rows (102 columns).
        assert_eq!(row_block(&geom(192, [14, 17], 3, 1, 1, 1, 1)), Some(8));
        // ResNet-18's 512-channel convs on 4x4: whole images.
        assert_eq!(row_block(&geom(512, [4, 4], 3, 1, 1, 1, 1)), None);
    }

    /// The weight gradients that add their blocks into dW in place: the
    /// shapes of `tests/conv_pool_codegen.rs::weight_gradients_added_in_place`
    /// and ResNet-18's 256- and 512-channel layers, not its 64- and
    /// 128-channel ones (few partials, or row blocks).
    #[test]
    fn which_weight_gradients_run_in_place() {
        let gm = |n: usize, c: usize, o: usize, hw: usize, groups: usize| {
            let a = Conv2dAttrs { stride: [1; 2], padding: [1; 2], dilation: [1; 2], groups };
            ConvGeom::new(&[n, c, hw, hw], &[o, c / groups, 3, 3], &[n, o, hw, hw], &a)
        };
        for (n, c, o, hw, groups) in [(20, 16, 48, 4, 1), (24, 32, 64, 4, 2), (17, 64, 40, 2, 1), (16, 512, 512, 4, 1), (16, 256, 256, 8, 1)] {
            assert!(dw_in_place(&gm(n, c, o, hw, groups)), "{n}x{c}x{hw}x{hw} -> {o}");
        }
        for (n, c, o, hw, groups) in [(16, 128, 128, 16, 1), (16, 64, 64, 32, 1), (8, 512, 512, 4, 1), (37, 8, 6, 5, 1)] {
            assert!(!dw_in_place(&gm(n, c, o, hw, groups)), "{n}x{c}x{hw}x{hw} -> {o}");
        }
    }

    /// Small outputs get more images per block (the shapes of
    /// `tests/conv_pool_codegen.rs::small_image_blocks`), up to 16.
    #[test]
    fn small_images_get_wider_blocks() {
        assert_eq!(block_images(28 * 28), CONV_BATCH);
        assert_eq!(block_images(32), CONV_BATCH);
        assert_eq!(block_images(25), 6);
        assert_eq!(block_images(16), 8);
        assert_eq!(block_images(1), 16);
        assert_eq!(block_images(0), 16);
        let gm = geom(8, [5, 5], 3, 1, 1, 1, 1);
        assert_eq!(block_cols(&gm), 150);
    }
}
