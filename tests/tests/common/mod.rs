//! The example models of `examples/`, shrunk so that a debug build runs a
//! dozen training steps of each on the interpreter in milliseconds, with
//! deterministic data. Each keeps its example's structure (layers, loss,
//! layouts) and only cuts widths, image sizes and batch sizes; sizes are
//! chosen off multiples of 4 where the structure allows, so the CPU
//! backend's f32x4 loops run their scalar tails too.

use kiln::nn::{self, Module};
use kiln::{f32_shape, i64_shape, loss, Builder, HostTensor, NodeId, ParamStore};

/// How many distinct batches a model's data cycles through.
pub const BATCHES: usize = 3;

/// The inputs of one step, by input name.
pub type Batch = Vec<(&'static str, HostTensor)>;

/// A forward graph ending in a scalar loss, its parameters (with their
/// seeded init) and the `BATCHES` batches that the steps cycle through
/// (step `s` feeds `batches[s % BATCHES]`, as an epoch over a tiny data
/// set would).
pub struct Model {
    pub name: &'static str,
    pub builder: Builder,
    pub loss: NodeId,
    pub store: ParamStore,
    pub batches: Vec<Batch>,
}

/// Deterministic values in [-scale/2, scale/2): a stride through a prime
/// cycle, so neighbouring elements differ and no pattern lines up with
/// the vector width; `k` picks one of several such tensors.
pub fn ramp(shape: &[usize], scale: f32, k: usize) -> HostTensor {
    let n: usize = shape.iter().product();
    HostTensor::from_f32(shape.to_vec(), (0..n).map(|i| (((i * 7919 + k * 31) % 97) as f32 / 97.0 - 0.5) * scale).collect()).unwrap()
}

/// Class labels that cover every class; `k` shifts them.
pub fn labels(n: usize, classes: usize, k: usize) -> HostTensor {
    HostTensor::from_i64([n], (0..n).map(|i| ((i * 7 + k) % classes) as i64).collect()).unwrap()
}

fn classifier(name: &'static str, b: Builder, logits: NodeId, store: ParamStore, xshape: &[usize], classes: usize) -> Model {
    let mut b = b;
    let batch = b.ty(logits).shape.dims()[0];
    let y = b.input("y", i64_shape([batch])).unwrap();
    let loss = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
    let batches = (0..BATCHES).map(|k| vec![("x", ramp(xshape, 3.0, k)), ("y", labels(batch, classes, k))]).collect();
    Model { name, builder: b, loss, store, batches }
}

/// `linear_regression`: `Linear(1, 1)`, MSE, full batch of y = 3x + 2.
pub fn linear_regression() -> Model {
    const N: usize = 19;
    let mut store = ParamStore::new(0);
    let lin = nn::Linear::new(&mut store, "lin", 1, 1).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([N, 1])).unwrap();
    let y = b.input("y", f32_shape([N, 1])).unwrap();
    let pred = lin.forward(&mut b, x).unwrap();
    let loss = loss::mse(&mut b, pred, y, loss::Reduction::Mean).unwrap();
    let batches = (0..BATCHES)
        .map(|k| {
            let xs = ramp(&[N, 1], 2.0, k);
            let ys = HostTensor::from_f32([N, 1], xs.to_f32_vec().iter().map(|v| 3.0 * v + 2.0).collect()).unwrap();
            vec![("x", xs), ("y", ys)]
        })
        .collect();
    Model { name: "linear_regression", builder: b, loss, store, batches }
}

/// `logistic_regression`: `Linear(2, 1)` logit, BCE with logits, two
/// separable-ish clouds.
pub fn logistic_regression() -> Model {
    const N: usize = 18;
    let mut store = ParamStore::new(1);
    let lin = nn::Linear::new(&mut store, "lin", 2, 1).unwrap();
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([N, 2])).unwrap();
    let y = b.input("y", f32_shape([N, 1])).unwrap();
    let logit = lin.forward(&mut b, x).unwrap();
    let loss = loss::bce_with_logits(&mut b, logit, y, None, loss::Reduction::Mean).unwrap();
    let batches = (0..BATCHES)
        .map(|k| {
            let noise = ramp(&[N, 2], 1.5, k).to_f32_vec();
            let cls: Vec<f32> = (0..N).map(|i| ((i + k) % 2) as f32).collect();
            let xs: Vec<f32> = (0..2 * N).map(|i| (2.0 * cls[i / 2] - 1.0) + noise[i]).collect();
            vec![("x", HostTensor::from_f32([N, 2], xs).unwrap()), ("y", HostTensor::from_f32([N, 1], cls).unwrap())]
        })
        .collect();
    Model { name: "logistic_regression", builder: b, loss, store, batches }
}

/// `mnist_mlp`: Linear-ReLU-Dropout twice, then the classifier head,
/// cross-entropy. The dropout masks come from Philox keyed by the
/// `rng.step` state, so both backends draw the same masks every step.
pub fn mlp_dropout() -> Model {
    let mut store = ParamStore::new(2);
    let net = nn::Sequential::new()
        .add(nn::Linear::new(&mut store, "fc1", 13, 11).unwrap())
        .add(nn::ReLU)
        .add(nn::Dropout::new(&mut store, 0.2).unwrap())
        .add(nn::Linear::new(&mut store, "fc2", 11, 9).unwrap())
        .add(nn::ReLU)
        .add(nn::Dropout::new(&mut store, 0.2).unwrap())
        .add(nn::Linear::new(&mut store, "fc3", 9, 5).unwrap());
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([6, 13])).unwrap();
    let logits = net.forward(&mut b, x).unwrap();
    classifier("mlp_dropout", b, logits, store, &[6, 13], 5)
}

/// `mnist_lenet`: conv5x5(pad 2)-ReLU-maxpool, conv5x5-ReLU-maxpool, three
/// linear layers, on 16x16 images instead of 28x28.
pub fn lenet5() -> Model {
    let mut store = ParamStore::new(3);
    let net = nn::Sequential::new()
        .add(nn::Conv2d::config(1, 3, 5).padding(2).build(&mut store, "conv1").unwrap())
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Conv2d::new(&mut store, "conv2", 3, 5, 5).unwrap())
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Flatten::new())
        .add(nn::Linear::new(&mut store, "fc1", 20, 12).unwrap())
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut store, "fc2", 12, 7).unwrap())
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut store, "fc3", 7, 5).unwrap());
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([2, 1, 16, 16])).unwrap();
    let logits = net.forward(&mut b, x).unwrap();
    classifier("lenet5", b, logits, store, &[2, 1, 16, 16], 5)
}

fn conv_bn(store: &mut ParamStore, conv: &str, bn: &str, cin: usize, c: usize) -> nn::Sequential {
    nn::Sequential::new()
        .add(nn::Conv2d::config(cin, c, 3).padding(1).bias(false).build(store, conv).unwrap())
        .add(nn::BatchNorm::new2d(store, bn, c).unwrap())
}

/// `resnet_cnn`: conv+BatchNorm+ReLU stem, max-pool, one residual block
/// [conv+BN+ReLU+conv+BN, + skip, ReLU], max-pool, linear head. BatchNorm
/// trains on batch statistics and updates its running statistics, which
/// are state compared like the parameters.
pub fn resnet() -> Model {
    const C: usize = 3;
    let mut store = ParamStore::new(4);
    let body = nn::Sequential::new()
        .add(conv_bn(&mut store, "block.conv1", "block.bn1", C, C))
        .add(nn::ReLU)
        .add(conv_bn(&mut store, "block.conv2", "block.bn2", C, C));
    let net = nn::Sequential::new()
        .add(conv_bn(&mut store, "stem", "bn", 1, C))
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Residual::new(body))
        .add(nn::ReLU)
        .add(nn::MaxPool2d::new(2))
        .add(nn::Flatten::new())
        .add(nn::Linear::new(&mut store, "fc", C * 2 * 2, 5).unwrap());
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([3, 1, 8, 8])).unwrap();
    let logits = net.forward(&mut b, x).unwrap();
    classifier("resnet", b, logits, store, &[3, 1, 8, 8], 5)
}

/// A recurrent classifier in the shape of `lstm_mnist`: the last hidden
/// state of the sequence through a linear head. `batch_first` decides the
/// input layout ([B, T, F] or [T, B, F]).
fn recurrent(name: &'static str, seed: u64, cfg: nn::RnnConfig, batch_first: bool) -> Model {
    const B: usize = 3;
    const T: usize = 4;
    const F: usize = 5;
    const H: usize = 6;
    const K: usize = 4;
    let mut store = ParamStore::new(seed);
    let rnn = cfg.batch_first(batch_first).build(&mut store, "rnn").unwrap();
    let layers = rnn.cfg.num_layers;
    let head = nn::Linear::new(&mut store, "fc", H, K).unwrap();
    let xshape = if batch_first { [B, T, F] } else { [T, B, F] };
    let mut b = Builder::train();
    let x = b.input("x", f32_shape(xshape)).unwrap();
    let out = rnn.forward_seq(&mut b, x, None, None).unwrap();
    // h_n is [layers, B, H]; the head reads the top layer.
    let last = if layers == 1 {
        b.reshape(out.h_n, [B, H]).unwrap()
    } else {
        let top = b.slice_axis(out.h_n, 0, layers - 1, layers).unwrap();
        b.reshape(top, [B, H]).unwrap()
    };
    let logits = head.forward(&mut b, last).unwrap();
    classifier(name, b, logits, store, &xshape, K)
}

/// `lstm_mnist`: LSTM, batch-first sequences.
pub fn lstm() -> Model {
    recurrent("lstm", 5, nn::Lstm::config(5, 6), true)
}

/// A two-layer GRU (the layer-to-layer path is covered too).
pub fn gru() -> Model {
    recurrent("gru", 6, nn::Gru::config(5, 6).num_layers(2), true)
}

/// A plain tanh RNN on sequence-first input.
pub fn rnn_tanh() -> Model {
    recurrent("rnn_tanh", 7, nn::Rnn::config(5, 6), false)
}
