//! A quick look at augmentation: ten training digits (top row) and what a
//! `Compose` of random resized crops, rotations, affine shifts/scaling and
//! brightness/contrast jitter makes of them in four epochs (one row each),
//! drawn by the same loader that feeds training. Each (epoch, digit) pair
//! draws its own parameters, so a row is reproducible on its own.
//!
//! `cargo run --release --example augment_grid` -> `augment-grid.png` in `--out`

use std::sync::Arc;

use kiln::data::transforms::{save_grid, ColorJitter, Compose, RandomAffine, RandomResizedCrop, RandomRotation};
use kiln::data::{DataLoader, Mnist};
use kiln_examples::{args, OrDie};

const DIGITS: usize = 10;
const EPOCHS: u64 = 4;

fn main() {
    let a = args();
    let digits = Arc::new(Mnist::shipped().or_die("MNIST").train.take(DIGITS));
    let pipeline = Compose::new()
        .add(RandomResizedCrop::new(28).scale(0.6, 1.0).ratio(0.8, 1.25))
        .add(RandomRotation::new(15.0))
        .add(RandomAffine::new(0.0).translate(0.1, 0.1).scale(0.9, 1.1))
        .add(ColorJitter::new().brightness(0.3).contrast(0.3));
    let loader = DataLoader::new(digits.clone(), DIGITS).or_die("loader").transform(pipeline, 3).or_die("transform");
    let mut items: Vec<Vec<f32>> = (0..DIGITS).map(|i| digits.item(i).to_vec()).collect();
    for epoch in 0..EPOCHS {
        for b in loader.epoch(epoch) {
            let x = b.or_die("batch").x.to_f32_vec();
            items.extend(x.chunks(28 * 28).map(<[f32]>::to_vec));
        }
    }
    let path = a.out.join("augment-grid.png");
    save_grid(&items, &[1, 28, 28], DIGITS, 3, (0.0, 1.0), &path).or_die("grid");
    println!("{} originals and {} augmented digits ({EPOCHS} epochs): {}", DIGITS, items.len() - DIGITS, path.display());
    println!("grid_items={}", items.len());
}
