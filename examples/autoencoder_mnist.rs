//! A convolutional autoencoder on the shipped MNIST digits (pixels in
//! [0, 1]): the encoder halves the image twice with strided convs
//! (1x28x28 -> 16x14x14 -> 32x7x7), the decoder doubles it back with
//! transposed convs (`ConvTranspose2d` stride 2, output_padding 1) to a
//! sigmoid image; MSE between the image and its reconstruction, Adam 2e-3
//! with cosine decay, batch 64. 10% of the training digits are held out
//! and their reconstruction error printed per epoch; the test digits are
//! measured once, at the end. Writes `autoencoder_mnist.png` to `--out`:
//! twelve test digits (top row) above their reconstructions.
//!
//! `cargo run --release --example autoencoder_mnist`

use std::sync::Arc;

use kiln::data::transforms::save_grid;
use kiln::data::{DataLoader, LastBatch, Mnist, TensorDataset};
use kiln::nn::{self, Module};
use kiln::{f32_shape, loss, optim, Builder, ParamStore, Program};
use kiln_examples::{args, holdout, limit, train_epochs, OrDie, VAL_FRACTION};

const BATCH: usize = 64;
const EVAL_BATCH: usize = 400;
const SHOWN: usize = 12;

fn autoencoder(store: &mut ParamStore) -> kiln::Result<nn::Sequential> {
    let up = |cin, cout| nn::ConvTranspose2d::config(cin, cout, 3).stride(2).padding(1).output_padding(1);
    Ok(nn::Sequential::new()
        .add(nn::Conv2d::config(1, 16, 3).stride(2).padding(1).build(store, "enc1")?)
        .add(nn::ReLU)
        .add(nn::Conv2d::config(16, 32, 3).stride(2).padding(1).build(store, "enc2")?)
        .add(nn::ReLU)
        .add(up(32, 16).build(store, "dec1")?)
        .add(nn::ReLU)
        .add(up(16, 1).build(store, "dec2")?)
        .add(nn::Sigmoid))
}

/// Mean reconstruction MSE over `data` (the padded tail batch excluded).
fn mean_mse(eval: &mut Program, data: &Arc<TensorDataset>) -> f64 {
    let loader = DataLoader::new(data.clone(), EVAL_BATCH).or_die("loader").last_batch(LastBatch::Pad);
    let (mut sum, mut n) = (0.0, 0usize);
    for b in loader.epoch(0) {
        let b = b.or_die("batch");
        let out = eval.run(&[("x", &b.x)]).or_die("eval");
        let (x, r) = (b.x.to_f32_vec(), out["recon"].to_f32_vec());
        let per = 28 * 28;
        for i in 0..b.len {
            sum += x[i * per..(i + 1) * per].iter().zip(&r[i * per..(i + 1) * per]).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>();
        }
        n += b.len * per;
    }
    sum / n as f64
}

fn main() {
    let a = args();
    let epochs = a.epochs.unwrap_or(15);
    let mnist = Mnist::shipped().or_die("MNIST");
    let (train_set, val_set) = holdout(limit(mnist.train, a.train_limit), VAL_FRACTION, 0);
    let test_set = Arc::new(mnist.test);

    let mut store = ParamStore::new(0);
    let net = autoencoder(&mut store).or_die("model");
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([BATCH, 1, 28, 28])).or_die("graph");
    let r = net.forward(&mut b, x).or_die("forward");
    let l = loss::mse(&mut b, r, x, loss::Reduction::Mean).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Adam::new(2e-3)).or_die("train step");
    let mut train = kiln::compile(&step, a.compile_options()).or_die("compile");
    let mut e = Builder::eval();
    let x = e.input("x", f32_shape([EVAL_BATCH, 1, 28, 28])).or_die("graph");
    let r = net.forward(&mut e, x).or_die("forward");
    e.output("recon", r).or_die("graph");
    let mut eval = kiln::compile(&kiln::inference(&e, &store).or_die("inference"), a.compile_options()).or_die("compile");
    println!(
        "conv autoencoder ({} parameters), {} train / {} validation / {} test digits, backend {}",
        store.num_params(),
        train_set.len(),
        val_set.len(),
        test_set.len(),
        a.backend_name()
    );

    let schedule = kiln_examples::cosine(2e-3, epochs);
    let train_s = train_epochs(&mut train, &mut eval, train_set, BATCH, epochs, schedule, false, |epoch, train_mse, train_s, eval| {
        println!("epoch {:>2}/{epochs}  train mse {train_mse:.5}  validation mse {:.5}  {train_s:.1} s", epoch + 1, mean_mse(eval, &val_set));
    });

    let test_mse = mean_mse(&mut eval, &test_set);
    let shown = Arc::new(test_set.take(EVAL_BATCH));
    let (xs, _) = shown.to_tensors();
    let recon = eval.run(&[("x", &xs)]).or_die("eval")["recon"].to_f32_vec();
    let per = 28 * 28;
    let mut items: Vec<Vec<f32>> = (0..SHOWN).map(|i| shown.item(i).to_vec()).collect();
    items.extend((0..SHOWN).map(|i| recon[i * per..(i + 1) * per].to_vec()));
    let png = a.out.join("autoencoder_mnist.png");
    save_grid(&items, &[1, 28, 28], SHOWN, 3, (0.0, 1.0), &png).or_die("grid");
    println!("test digits (top) and their reconstructions (bottom): {}", png.display());
    println!("trained {epochs} epochs in {train_s:.1} s; test reconstruction mse (measured once) {test_mse:.5}");
    println!("test_mse={test_mse:.5}");
}
