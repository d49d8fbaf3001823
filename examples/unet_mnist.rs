//! A small U-Net that segments digit strokes out of noisy digits: the
//! input is a shipped MNIST digit plus Gaussian noise (sigma 0.6) and a few
//! random bright scratches; the target is the clean digit's stroke mask
//! (pixel > 0.5). Encoder: two 3x3 conv+ReLU pairs at 28x28 (16 ch) and
//! 14x14 (32 ch) with 2x2 max pools, a 7x7 bottleneck (64 ch); decoder:
//! `ConvTranspose2d` (2x2, stride 2) upsampling, the encoder's feature map
//! at the same scale concatenated on channels (the skip connections),
//! 3x3 conv+ReLU; a 1x1 conv gives one logit per pixel. Per-pixel
//! `bce_with_logits`, Adam 2e-3 with cosine decay, batch 32. 10% of the
//! training digits are held out (validation IoU per epoch); the test
//! digits are measured once: pixel IoU of the predicted mask (logit > 0)
//! with the true one, beside the IoU of simply thresholding the noisy
//! input at 0.5.
//!
//! `cargo run --release --example unet_mnist`

use std::sync::Arc;

use kiln::data::transforms::save_grid;
use kiln::data::{DataLoader, LastBatch, Mnist, SplitMix64, TensorDataset};
use kiln::nn::{self, Module};
use kiln::{f32_shape, loss, optim, Builder, NodeId, ParamStore, Program};
use kiln_examples::{args, holdout, limit, train_epochs, OrDie, VAL_FRACTION};

const BATCH: usize = 32;
const EVAL_BATCH: usize = 400;
const PIX: usize = 28 * 28;
const SIGMA: f64 = 0.6;

struct UNet {
    enc1: nn::Sequential,
    enc2: nn::Sequential,
    mid: nn::Sequential,
    up2: nn::ConvTranspose2d,
    dec2: nn::Sequential,
    up1: nn::ConvTranspose2d,
    dec1: nn::Sequential,
    head: nn::Conv2d,
}

fn double_conv(store: &mut ParamStore, name: &str, cin: usize, c: usize) -> kiln::Result<nn::Sequential> {
    Ok(nn::Sequential::new()
        .add(nn::Conv2d::config(cin, c, 3).padding(1).build(store, &format!("{name}.0"))?)
        .add(nn::ReLU)
        .add(nn::Conv2d::config(c, c, 3).padding(1).build(store, &format!("{name}.2"))?)
        .add(nn::ReLU))
}

impl UNet {
    fn new(store: &mut ParamStore) -> kiln::Result<UNet> {
        Ok(UNet {
            enc1: double_conv(store, "enc1", 1, 16)?,
            enc2: double_conv(store, "enc2", 16, 32)?,
            mid: double_conv(store, "mid", 32, 64)?,
            up2: nn::ConvTranspose2d::config(64, 32, 2).stride(2).build(store, "up2")?,
            dec2: double_conv(store, "dec2", 64, 32)?,
            up1: nn::ConvTranspose2d::config(32, 16, 2).stride(2).build(store, "up1")?,
            dec1: double_conv(store, "dec1", 32, 16)?,
            head: nn::Conv2d::new(store, "head", 16, 1, 1)?,
        })
    }
}

impl Module for UNet {
    fn forward(&self, b: &mut Builder, x: NodeId) -> kiln::Result<NodeId> {
        let pool = nn::MaxPool2d::new(2);
        let e1 = self.enc1.forward(b, x)?; // 16 x 28 x 28
        let p1 = pool.forward(b, e1)?;
        let e2 = self.enc2.forward(b, p1)?; // 32 x 14 x 14
        let p2 = pool.forward(b, e2)?;
        let m = self.mid.forward(b, p2)?; // 64 x 7 x 7
        let u2 = self.up2.forward(b, m)?; // 32 x 14 x 14
        let c2 = b.concat(&[u2, e2], 1)?;
        let d2 = self.dec2.forward(b, c2)?;
        let u1 = self.up1.forward(b, d2)?; // 16 x 28 x 28
        let c1 = b.concat(&[u1, e1], 1)?;
        let d1 = self.dec1.forward(b, c1)?;
        self.head.forward(b, d1)
    }
}

/// Noisy copies of `clean`'s digits and their stroke masks, as a dataset
/// with 784 float targets per item (seeded per split).
fn noisy(clean: &TensorDataset, seed: u64) -> Arc<TensorDataset> {
    let mut r = SplitMix64::new(seed);
    let (mut xs, mut ms) = (Vec::with_capacity(clean.len() * PIX), Vec::with_capacity(clean.len() * PIX));
    for i in 0..clean.len() {
        let img = clean.item(i);
        let mut x: Vec<f32> = img.to_vec();
        // Two or three bright scratches: short horizontal or vertical runs.
        for _ in 0..2 + r.below(2) {
            let (len, at, vertical) = (6 + r.below(8), r.below(PIX), r.below(2) == 1);
            let (row, col) = (at / 28, at % 28);
            for k in 0..len {
                let (rr, cc) = if vertical { (row + k, col) } else { (row, col + k) };
                if rr < 28 && cc < 28 {
                    x[rr * 28 + cc] = 1.0;
                }
            }
        }
        for v in &mut x {
            let (u1, u2) = (r.unit().max(1e-12), r.unit());
            *v += (SIGMA * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
        }
        xs.extend(x);
        ms.extend(img.iter().map(|&p| if p > 0.5 { 1.0f32 } else { 0.0 }));
    }
    Arc::new(TensorDataset::with_float_targets(xs, ms, vec![1, 28, 28], PIX).or_die("noisy digits"))
}

/// Pixel IoU of the predicted masks over `data`; also returns the first
/// batch's logits (for the picture).
fn iou(eval: &mut Program, data: &Arc<TensorDataset>) -> (f64, Vec<f32>) {
    let loader = DataLoader::new(data.clone(), EVAL_BATCH).or_die("loader").last_batch(LastBatch::Pad);
    let (mut inter, mut union) = (0usize, 0usize);
    let mut first = Vec::new();
    for b in loader.epoch(0) {
        let b = b.or_die("batch");
        let logits = eval.run(&[("x", &b.x)]).or_die("eval")["logits"].to_f32_vec();
        let masks = b.y.to_f32_vec();
        for (p, m) in logits.iter().zip(&masks).take(b.len * PIX) {
            let (p, m) = (*p > 0.0, *m > 0.5);
            inter += (p && m) as usize;
            union += (p || m) as usize;
        }
        if first.is_empty() {
            first = logits;
        }
    }
    (inter as f64 / union.max(1) as f64, first)
}

fn main() {
    let a = args();
    let epochs = a.epochs.unwrap_or(8);
    let mnist = Mnist::shipped().or_die("MNIST");
    let (train_clean, val_clean) = holdout(limit(mnist.train, a.train_limit), VAL_FRACTION, 0);
    let (train_set, val_set, test_set) = (noisy(&train_clean, 1), noisy(&val_clean, 2), noisy(&mnist.test, 3));

    let mut store = ParamStore::new(0);
    let net = UNet::new(&mut store).or_die("model");
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([BATCH, 1, 28, 28])).or_die("graph");
    let y = b.input("y", f32_shape([BATCH, PIX])).or_die("graph");
    let logits = net.forward(&mut b, x).or_die("forward");
    let logits = b.reshape(logits, [BATCH, PIX]).or_die("graph");
    let l = loss::bce_with_logits(&mut b, logits, y, None, loss::Reduction::Mean).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Adam::new(2e-3)).or_die("train step");
    let mut train = kiln::compile(&step, a.compile_options()).or_die("compile");
    let mut e = Builder::eval();
    let x = e.input("x", f32_shape([EVAL_BATCH, 1, 28, 28])).or_die("graph");
    let logits = net.forward(&mut e, x).or_die("forward");
    e.output("logits", logits).or_die("graph");
    let mut eval = kiln::compile(&kiln::inference(&e, &store).or_die("inference"), a.compile_options()).or_die("compile");
    println!(
        "U-Net ({} parameters) on noisy digits (sigma {SIGMA} + scratches), {} train / {} validation / {} test, backend {}",
        store.num_params(),
        train_set.len(),
        val_set.len(),
        test_set.len(),
        a.backend_name()
    );

    let schedule = kiln_examples::cosine(2e-3, epochs);
    let train_s = train_epochs(&mut train, &mut eval, train_set, BATCH, epochs, schedule, true, |epoch, train_bce, train_s, eval| {
        println!("epoch {:>2}/{epochs}  train bce {train_bce:.4}  validation IoU {:.4}  {train_s:.1} s", epoch + 1, iou(eval, &val_set).0);
    });

    let (test_iou, logits) = iou(&mut eval, &test_set);
    // The baseline: threshold the noisy input itself.
    let (mut inter, mut union) = (0usize, 0usize);
    for i in 0..test_set.len() {
        let masks = mnist.test.item(i);
        for (x, c) in test_set.item(i).iter().zip(masks) {
            let (p, m) = (*x > 0.5, *c > 0.5);
            inter += (p && m) as usize;
            union += (p || m) as usize;
        }
    }
    let shown = 12;
    let mut items: Vec<Vec<f32>> = (0..shown).map(|i| test_set.item(i).iter().map(|v| v.clamp(0.0, 1.0)).collect()).collect();
    items.extend((0..shown).map(|i| logits[i * PIX..(i + 1) * PIX].iter().map(|&z| if z > 0.0 { 1.0 } else { 0.0 }).collect()));
    items.extend((0..shown).map(|i| mnist.test.item(i).iter().map(|&p| if p > 0.5 { 1.0 } else { 0.0 }).collect()));
    let png = a.out.join("unet_mnist.png");
    save_grid(&items, &[1, 28, 28], shown, 3, (0.0, 1.0), &png).or_die("grid");
    println!("noisy test digits, predicted masks, true masks (rows): {}", png.display());
    println!("trained {epochs} epochs in {train_s:.1} s; thresholding the noisy input at 0.5 gives IoU {:.4}", inter as f64 / union.max(1) as f64);
    println!("test pixel IoU (measured once) {test_iou:.4}");
    println!("test_iou={test_iou:.4}");
}
