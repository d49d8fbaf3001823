//! A two-layer graph convolutional network (Kipf & Welling) on Zachary's
//! karate club: 34 members, 78 friendships, two factions. Only member 0
//! (the instructor, faction 0) and member 33 (the administrator, faction
//! 1) are labelled; the network predicts the faction of the other 32.
//!
//! Each layer is `Â H W + b` with `Â = D^-1/2 (A + I) D^-1/2` the
//! normalized adjacency (self loops added), fed as a constant input; the
//! node features are one-hot member ids (X = I), so the first layer learns
//! an embedding per member that the graph then smooths over friends.
//! `Linear(34 -> 16)` + ReLU, then `Linear(16 -> 2)`; cross-entropy on the
//! two labelled members only (the others carry `ignore_index`); Adam 0.01.
//! With one label per class there is nothing to hold out for validation:
//! the 32 unlabelled members are the test set, measured once at the end.
//!
//! Data: `examples/data/karate-club/` (see its README).
//!
//! `cargo run --release --example gcn_karate`

use std::path::Path;

use kiln::nn::{self, Module};
use kiln::{f32_shape, i64_shape, loss, optim, Builder, HostTensor, NodeId, ParamStore};
use kiln_examples::{args, die, scalar, OrDie};

const N: usize = 34;
const HIDDEN: usize = 16;
const IGNORE: i64 = -100;
const LABELLED: [usize; 2] = [0, 33];

/// Rows of a two-column integer CSV with a header.
fn read_pairs(path: &Path) -> Vec<(usize, usize)> {
    let text = std::fs::read_to_string(path).or_die(&path.display().to_string());
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let mut it = l.split(',').map(|c| c.trim().parse::<usize>());
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(a)), Some(Ok(b)), None) => (a, b),
                _ => die(&format!("{}:{}: expected two integers, got `{l}`", path.display(), i + 1)),
            }
        })
        .collect()
}

/// `D^-1/2 (A + I) D^-1/2` as a dense [N, N] tensor.
fn normalized_adjacency(edges: &[(usize, usize)]) -> HostTensor {
    let mut a = vec![0f64; N * N];
    for i in 0..N {
        a[i * N + i] = 1.0;
    }
    for &(s, t) in edges {
        if s >= N || t >= N {
            die(&format!("edge {s}-{t}: members are numbered 0..{N}"));
        }
        a[s * N + t] = 1.0;
        a[t * N + s] = 1.0;
    }
    let d: Vec<f64> = (0..N).map(|i| a[i * N..(i + 1) * N].iter().sum::<f64>().powf(-0.5)).collect();
    let v = (0..N * N).map(|k| (a[k] * d[k / N] * d[k % N]) as f32).collect();
    HostTensor::from_f32([N, N], v).or_die("adjacency")
}

fn gcn(b: &mut Builder, adj: NodeId, x: NodeId, l1: &nn::Linear, l2: &nn::Linear) -> kiln::Result<NodeId> {
    let h = b.matmul(adj, x)?;
    let h = l1.forward(b, h)?;
    let h = b.relu(h)?;
    let h = b.matmul(adj, h)?;
    l2.forward(b, h)
}

fn main() {
    let a = args();
    let epochs = a.epochs.unwrap_or(200);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/karate-club");
    let edges = read_pairs(&dir.join("edges.csv"));
    let mut faction = vec![-1i64; N];
    for (m, f) in read_pairs(&dir.join("factions.csv")) {
        if m >= N || f > 1 {
            die(&format!("factions.csv: member {m}, faction {f}"));
        }
        faction[m] = f as i64;
    }
    if faction.contains(&-1) {
        die("factions.csv: some member has no faction");
    }
    let adj = normalized_adjacency(&edges);
    let mut eye = vec![0f32; N * N];
    for i in 0..N {
        eye[i * N + i] = 1.0;
    }
    let features = HostTensor::from_f32([N, N], eye).or_die("features");
    let mut train_labels = vec![IGNORE; N];
    for m in LABELLED {
        train_labels[m] = faction[m];
    }
    let train_labels = HostTensor::from_i64([N], train_labels).or_die("labels");

    let mut store = ParamStore::new(0);
    let l1 = nn::Linear::new(&mut store, "gc1", N, HIDDEN).or_die("model");
    let l2 = nn::Linear::new(&mut store, "gc2", HIDDEN, 2).or_die("model");
    let mut b = Builder::train();
    let adj_in = b.input("adj", f32_shape([N, N])).or_die("graph");
    let x = b.input("x", f32_shape([N, N])).or_die("graph");
    let y = b.input("y", i64_shape([N])).or_die("graph");
    let logits = gcn(&mut b, adj_in, x, &l1, &l2).or_die("forward");
    b.output("logits", logits).or_die("graph");
    let l = loss::cross_entropy(&mut b, logits, y, &loss::CrossEntropyOptions::default().ignore_index(IGNORE)).or_die("loss");
    let step = kiln::train_step(&b, l, &store, optim::Adam::new(0.01)).or_die("train step");
    let mut train = kiln::compile(&step, a.compile_options()).or_die("compile");

    let mut e = Builder::eval();
    let adj_in = e.input("adj", f32_shape([N, N])).or_die("graph");
    let x = e.input("x", f32_shape([N, N])).or_die("graph");
    let logits = gcn(&mut e, adj_in, x, &l1, &l2).or_die("forward");
    e.output("logits", logits).or_die("graph");
    let mut infer = kiln::compile(&kiln::inference(&e, &store).or_die("inference"), a.compile_options()).or_die("compile");
    println!("GCN on the karate club: {N} members, {} friendships, members {LABELLED:?} labelled, backend {}", edges.len(), a.backend_name());

    let t0 = std::time::Instant::now();
    for epoch in 0..epochs {
        let out = train.run(&[("adj", &adj), ("x", &features), ("y", &train_labels)]).or_die("train step");
        if epoch % 20 == 0 || epoch + 1 == epochs {
            println!("epoch {:>3}  loss on the two labelled members {:.5}", epoch + 1, scalar(&out["loss"]));
        }
    }
    println!("trained {epochs} full-graph steps in {:.3} s", t0.elapsed().as_secs_f64());
    infer.load_from(&train).or_die("copy weights");
    let logits = infer.run(&[("adj", &adj), ("x", &features)]).or_die("inference")["logits"].to_f32_vec();
    let pred: Vec<i64> = logits.chunks(2).map(|r| (r[1] > r[0]) as i64).collect();
    let others: Vec<usize> = (0..N).filter(|m| !LABELLED.contains(m)).collect();
    let correct = others.iter().filter(|&&m| pred[m] == faction[m]).count();
    let wrong: Vec<usize> = others.iter().copied().filter(|&m| pred[m] != faction[m]).collect();
    println!("predicted factions: {}", pred.iter().map(|p| p.to_string()).collect::<String>());
    println!("true factions:      {}", faction.iter().map(|p| p.to_string()).collect::<String>());
    println!("{correct} of {} unlabelled members right; wrong: {wrong:?}", others.len());
    println!("accuracy={:.4}", correct as f64 / others.len() as f64);
}
