//! A small ResNet-style CNN with BatchNorm on the shipped MNIST subset:
//! conv3x3(1->16)+BN+ReLU, max-pool to 14x14, two residual blocks
//! [conv3x3+BN+ReLU+conv3x3+BN, +skip, ReLU], max-pool to 7x7, linear
//! 784->10; SGD lr 0.01 momentum 0.9, batch 64. BatchNorm trains on batch
//! statistics and evaluates with its running statistics. Validated on 10% of
//! the training digits; the test digits are measured once, at the end.
//!
//! `cargo run --release --example resnet_cnn`

use kiln::nn::{self, Module};
use kiln::{optim, ParamStore};
use kiln_examples::mnist::{self, compile_classifier, Programs};
use kiln_examples::{args, fit, test_once, Fit, OrDie};

const BATCH: usize = 64;
const EVAL_BATCH: usize = 500;
const TARGET: f64 = 0.97;
const C: usize = 16;

fn conv_bn(store: &mut ParamStore, conv: &str, bn: &str, cin: usize, c: usize) -> kiln::Result<nn::Sequential> {
    Ok(nn::Sequential::new()
        .add(nn::Conv2d::config(cin, c, 3).padding(1).bias(false).build(store, conv)?)
        .add(nn::BatchNorm::new2d(store, bn, c)?))
}

fn resnet(store: &mut ParamStore) -> kiln::Result<nn::Sequential> {
    let mut net = nn::Sequential::new().add(conv_bn(store, "stem", "bn", 1, C)?).add(nn::ReLU).add(nn::MaxPool2d::new(2));
    for i in 0..2 {
        let p = format!("blocks.{i}");
        let body = nn::Sequential::new()
            .add(conv_bn(store, &format!("{p}.conv1"), &format!("{p}.bn1"), C, C)?)
            .add(nn::ReLU)
            .add(conv_bn(store, &format!("{p}.conv2"), &format!("{p}.bn2"), C, C)?);
        net = net.add(nn::Residual::new(body)).add(nn::ReLU);
    }
    // A global average pool over 16 channels throws away where the strokes
    // are, which digits need: pool to 7x7 and classify the whole map.
    Ok(net.add(nn::MaxPool2d::new(2)).add(nn::Flatten::new()).add(nn::Linear::new(store, "fc", C * 7 * 7, 10)?))
}

fn main() {
    let a = args();
    let epochs = a.epochs.unwrap_or(4);
    let (train_set, val_set, test_set) = mnist::splits(&a, None);

    let mut store = ParamStore::new(0);
    let net = resnet(&mut store).or_die("model");
    let Programs { mut train, mut eval, .. } =
        compile_classifier(&a, &store, optim::Sgd::new(0.01).momentum(0.9), &[1, 28, 28], BATCH, EVAL_BATCH, |b, x, _| net.forward(b, x));
    println!("ResNet-style CNN ({C} channels, 2 residual blocks, BatchNorm), {} train / {} validation / {} test, backend {}", train_set.len(), val_set.len(), test_set.len(), a.backend_name());

    let report = fit(Fit {
        name: "resnet_cnn",
        train: &mut train,
        eval: &mut eval,
        train_set: train_set.clone(),
        val_set: val_set.clone(),
        batch: BATCH,
        eval_batch: EVAL_BATCH,
        epochs,
        seed: 1,
        target: TARGET,
        transform: None,
        num_workers: a.workers.unwrap_or(0),
        early_stopping: None,
        lr_schedule: None,
        out: a.out.clone(),
    });
    test_once(&report, &mut eval, &test_set, EVAL_BATCH, TARGET);
}
