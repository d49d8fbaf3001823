//! The committed `examples/kir/*.inputs.safetensors` files are generated
//! here from fixed values; this test fails if they drift from the code, and
//! `KILN_BLESS=1 cargo test -p kiln-cli --test example_inputs` rewrites them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_ir::{safetensors_from_bytes, safetensors_to_bytes, HostTensor};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/kir")
}

/// Small deterministic values in [-scale, scale): integer arithmetic, one
/// correctly rounded division and one product, so every build on every
/// platform gives the same bits. (An `f32::sin` wave came out an ulp
/// different under `cargo test --release`, where the constant was folded
/// at compile time, and the test failed there.)
fn wave(n: usize, phase: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| scale * (((i * 7919 + phase * 1013) % 2000) as f32 / 1000.0 - 1.0)).collect()
}

fn f32t(shape: &[usize], v: Vec<f32>) -> HostTensor {
    HostTensor::from_f32(shape.to_vec(), v).unwrap()
}

pub fn mlp_grad_inputs() -> BTreeMap<String, HostTensor> {
    let mut m = BTreeMap::new();
    m.insert("x".into(), f32t(&[2, 4], wave(8, 0, 1.0)));
    m.insert("y".into(), HostTensor::from_i64([2], vec![0, 2]).unwrap());
    m.insert("w1".into(), f32t(&[4, 8], wave(32, 1, 0.5)));
    m.insert("b1".into(), f32t(&[8], wave(8, 2, 0.1)));
    m.insert("w2".into(), f32t(&[8, 3], wave(24, 3, 0.5)));
    m.insert("b2".into(), f32t(&[3], vec![0.0, 0.1, -0.1]));
    m
}

pub fn affine_inputs() -> BTreeMap<String, HostTensor> {
    let mut m = BTreeMap::new();
    m.insert("x".into(), f32t(&[3, 2], vec![1.0, 2.0, -1.0, 0.5, 0.0, -2.0]));
    m.insert("w".into(), f32t(&[2, 2], vec![0.5, -0.25, 0.125, 1.0]));
    m.insert("b".into(), f32t(&[2], vec![0.1, -0.2]));
    m
}

pub fn cnn_grad_inputs() -> BTreeMap<String, HostTensor> {
    let mut m = BTreeMap::new();
    m.insert("x".into(), f32t(&[2, 1, 6, 6], wave(72, 4, 1.0)));
    m.insert("y".into(), HostTensor::from_i64([2], vec![3, 1]).unwrap());
    m.insert("conv.weight".into(), f32t(&[3, 1, 3, 3], wave(27, 5, 0.4)));
    m.insert("conv.bias".into(), f32t(&[3], vec![0.05, -0.05, 0.0]));
    m.insert("fc.weight".into(), f32t(&[4, 27], wave(108, 6, 0.2)));
    m.insert("fc.bias".into(), f32t(&[4], vec![0.0, 0.01, -0.01, 0.02]));
    m
}

fn check_or_bless(file: &str, want: BTreeMap<String, HostTensor>) {
    let path = examples().join(file);
    let bytes = safetensors_to_bytes(&want).unwrap();
    if std::env::var_os("KILN_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &bytes).unwrap();
        return;
    }
    let have = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run with KILN_BLESS=1 to create it)", path.display()));
    assert_eq!(safetensors_from_bytes(&have).unwrap(), want, "{} is stale; rerun with KILN_BLESS=1", path.display());
}

#[test]
fn mlp_grad_inputs_are_current() {
    check_or_bless("mlp_grad.inputs.safetensors", mlp_grad_inputs());
}

#[test]
fn affine_inputs_are_current() {
    check_or_bless("affine.inputs.safetensors", affine_inputs());
}

#[test]
fn cnn_grad_inputs_are_current() {
    check_or_bless("cnn_grad.inputs.safetensors", cnn_grad_inputs());
}
