//! Round trips, resume, and corruption of real saved programs.

use std::collections::BTreeMap;

use super::container::{self, boundaries};
use super::*;
use crate::data::SplitMix64;
use crate::nn::Module;
use crate::{f32_shape, i64_shape, loss, nn, optim, Builder, CompileOptions, HostTensor, ParamStore, Program};

pub(super) fn batch(step: u64) -> (HostTensor, HostTensor) {
    let mut r = SplitMix64::derive(11, step, 0);
    let x = (0..8 * 4).map(|_| r.unit() as f32 * 2.0 - 1.0).collect();
    let y = (0..8).map(|_| r.below(3) as i64).collect();
    (HostTensor::from_f32([8, 4], x).unwrap(), HostTensor::from_i64([8], y).unwrap())
}

pub(super) fn train_program(opts: CompileOptions) -> Program {
    let mut store = ParamStore::new(3);
    let mlp = nn::Sequential::new()
        .add(nn::Linear::new(&mut store, "fc1", 4, 8).unwrap())
        .add(nn::ReLU)
        .add(nn::Linear::new(&mut store, "fc2", 8, 3).unwrap());
    let mut b = Builder::train();
    let x = b.input("x", f32_shape([8, 4])).unwrap();
    let y = b.input("y", i64_shape([8])).unwrap();
    let logits = mlp.forward(&mut b, x).unwrap();
    b.output("logits", logits).unwrap();
    let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
    let step = crate::train_step(&b, l, &store, optim::Adam::new(0.01)).unwrap();
    crate::compile(&step, opts).unwrap()
}

pub(super) fn step(p: &mut Program, s: u64) -> BTreeMap<String, HostTensor> {
    let (x, y) = batch(s);
    p.run(&[("x", &x), ("y", &y)]).unwrap()
}

/// The key these tests seal with: never the user's own key file.
pub(super) fn test_key() -> CodeKey {
    CodeKey::from_bytes([0x5a; 32])
}

pub(super) fn keyed() -> KeyChoice {
    KeyChoice::Key(test_key())
}

pub(super) fn load_opts() -> LoadOptions {
    LoadOptions::new().key(keyed())
}

/// The CPU executable of a decoded file, with the code sealed under `key` installed.
pub(super) fn lower_sealed(f: &ProgramFile, key: Option<&CodeKey>) -> kiln_cpu::CpuExecutable {
    let sealed = seal::verified(&f.backend, &f.plan, key);
    program_io::lower_cpu(&f.graph, &f.options, &sealed, None).unwrap()
}

pub(super) fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("kiln-format-{name}-{}.kiln", std::process::id()))
}

pub(super) fn saved_bytes_for(opts: CompileOptions) -> Vec<u8> {
    let mut p = train_program(opts);
    step(&mut p, 0);
    to_file_with(&p, &keyed()).unwrap().to_bytes().unwrap()
}

fn saved_bytes() -> Vec<u8> {
    saved_bytes_for(CompileOptions::interp())
}

fn check_roundtrip_and_resume(opts: CompileOptions, name: &str) {
    // Uninterrupted: 6 steps.
    let mut a = train_program(opts.clone());
    let full: Vec<BTreeMap<String, HostTensor>> = (0..6).map(|s| step(&mut a, s)).collect();
    // Interrupted: 3 steps, save, load, 3 more.
    let mut b = train_program(opts);
    for s in 0..3 {
        assert_eq!(step(&mut b, s), full[s as usize]);
    }
    let path = tmp(name);
    save_with(&b, &path, &keyed()).unwrap();
    let mut c = load_with(&path, &load_opts()).unwrap();
    assert_eq!(c.backend(), b.backend());
    assert_eq!(c.signature(), b.signature());
    assert_eq!(c.state_dict(), b.state_dict(), "weights and optimizer state restored bit for bit");
    for s in 3..6 {
        let out_c = step(&mut c, s);
        let out_b = step(&mut b, s);
        assert_eq!(out_c, out_b, "loaded vs in-memory at step {s}");
        assert_eq!(out_c, full[s as usize], "resumed vs uninterrupted at step {s}");
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn interp_roundtrip_is_bit_identical_and_resumes() {
    check_roundtrip_and_resume(CompileOptions::interp(), "interp");
}

#[test]
fn cpu_roundtrip_is_bit_identical_and_resumes() {
    check_roundtrip_and_resume(CompileOptions::cpu(), "cpu");
}

#[test]
fn cpu_file_stores_the_plan() {
    let f = ProgramFile::from_bytes(&saved_bytes_for(CompileOptions::cpu())).unwrap();
    assert_eq!(f.backend, "cpu");
    assert!(f.plan_entry("partition").is_some() && f.plan_entry("memory").is_some(), "{:?}", f.plan.iter().map(|e| &e.name).collect::<Vec<_>>());
    assert!(f.plan.iter().any(|e| e.kind == "clif"), "at least one JIT kernel");
    assert!(f.peak_bytes.unwrap() > 0);
    // A plan that no longer matches what the backend generates is refused.
    let mut g = f.clone();
    g.plan.retain(|e| e.kind != "clif");
    let back = ProgramFile::from_bytes(&g.to_bytes().unwrap()).unwrap();
    assert_eq!(back.instantiate_with(&load_opts()).unwrap_err(), FormatError::PlanMismatch { backend: "cpu".into() });
}

#[test]
fn file_decodes_to_what_was_saved() {
    let mut p = train_program(CompileOptions::interp());
    step(&mut p, 0);
    let f = to_file(&p).unwrap();
    let back = ProgramFile::from_bytes(&f.to_bytes().unwrap()).unwrap();
    assert_eq!(back.backend, "interp");
    assert_eq!(back.signature, f.signature);
    assert_eq!(kiln_ir::text::print(&back.graph), kiln_ir::text::print(p.graph()));
    assert_eq!(back.state, p.state_dict());
    assert_eq!(back.report, *p.report());
    assert_eq!(back.extra["kind"], "train-step");
    let s = back.summary();
    assert!(s.contains("fc1.weight") && s.contains("backend: interp"), "{s}");
}

#[test]
fn truncation_anywhere_is_a_typed_error() {
    for bytes in [saved_bytes(), saved_bytes_for(CompileOptions::cpu())] {
        truncations(&bytes);
    }
}

fn truncations(bytes: &[u8]) {
    let mut cuts = boundaries(&bytes);
    // Cut one byte either side of every boundary too.
    cuts.extend(boundaries(&bytes).iter().flat_map(|&b| [b.saturating_sub(1), b + 1]));
    let mut r = SplitMix64::new(1);
    cuts.extend((0..300).map(|_| r.below(bytes.len())));
    for cut in cuts.into_iter().filter(|&c| c < bytes.len()) {
        match ProgramFile::from_bytes(&bytes[..cut]) {
            Err(FormatError::Truncated { .. }) => {}
            Err(FormatError::NotKiln) if cut == 0 => {}
            other => panic!("cut at {cut} of {}: {:?}", bytes.len(), other.map(|_| "loaded")),
        }
    }
}

#[test]
fn bit_flips_are_typed_errors() {
    for bytes in [saved_bytes(), saved_bytes_for(CompileOptions::cpu())] {
        bit_flips(&bytes);
    }
}

fn bit_flips(bytes: &[u8]) {
    let mut r = SplitMix64::new(2);
    // Every bit of the header and of each section header, plus random bits.
    let mut bits: Vec<usize> = boundaries(&bytes).iter().flat_map(|&b| (b * 8..(b + 16) * 8).filter(|&i| i < bytes.len() * 8)).collect();
    bits.extend((0..1500).map(|_| r.below(bytes.len() * 8)));
    for bit in bits {
        let mut g = bytes.to_vec();
        g[bit / 8] ^= 1 << (bit % 8);
        match ProgramFile::from_bytes(&g) {
            Err(FormatError::Checksum { .. } | FormatError::Truncated { .. } | FormatError::NotKiln | FormatError::Corrupt { .. }) => {}
            other => panic!("flip of bit {bit} (byte {}): {:?}", bit / 8, other.map(|_| "loaded")),
        }
    }
    // Several flips at once.
    for _ in 0..300 {
        let mut g = bytes.to_vec();
        for _ in 0..1 + r.below(8) {
            let bit = r.below(bytes.len() * 8);
            g[bit / 8] ^= 1 << (bit % 8);
        }
        if g != bytes {
            assert!(ProgramFile::from_bytes(&g).is_err());
        }
    }
}

#[test]
fn non_kiln_wrong_version_and_wrong_backend() {
    assert_eq!(ProgramFile::from_bytes(b"").unwrap_err(), FormatError::NotKiln);
    let st = kiln_ir::safetensors_to_bytes(&BTreeMap::from([("a".to_string(), HostTensor::scalar_f32(1.0))])).unwrap();
    assert_eq!(ProgramFile::from_bytes(&st).unwrap_err(), FormatError::NotKiln);
    assert_eq!(ProgramFile::from_bytes(b"%0 = input \"x\" : f32[2]\n").unwrap_err(), FormatError::NotKiln);

    // A well-formed file of another version.
    let bytes = saved_bytes();
    let secs = container::read(&bytes).unwrap();
    let mut v2 = container::write(&secs.iter().map(|s| (s.tag, s.payload.to_vec())).collect::<Vec<_>>());
    v2[8..12].copy_from_slice(&7u32.to_le_bytes());
    let v2 = rechecksum(&v2);
    assert_eq!(ProgramFile::from_bytes(&v2).unwrap_err(), FormatError::Version { found: 7, supported: VERSION });

    let path = tmp("backend");
    std::fs::write(&path, &bytes).unwrap();
    let e = load_expecting(&path, crate::BackendKind::Cpu).unwrap_err();
    assert_eq!(e, FormatError::WrongBackend { found: "interp".into(), expected: "cpu".into() });
    assert!(load_expecting(&path, crate::BackendKind::Interp).is_ok());
    let _ = std::fs::remove_file(&path);
    assert!(matches!(load(tmp("does-not-exist")), Err(FormatError::Io { .. })));
}

/// Recomputes the whole-file CRC of a file whose header was edited.
pub(super) fn rechecksum(f: &[u8]) -> Vec<u8> {
    let body = f.len() - 20;
    let mut out = f[..body].to_vec();
    let whole = crc32fast::hash(&out).to_le_bytes();
    out.extend_from_slice(b"END!");
    out.extend_from_slice(&4u64.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&whole).to_le_bytes());
    out.extend_from_slice(&whole);
    out
}

#[test]
fn unknown_sections_required_or_optional() {
    let bytes = saved_bytes();
    let secs = container::read(&bytes).unwrap();
    let mut list: Vec<([u8; 4], Vec<u8>)> = secs.iter().map(|s| (s.tag, s.payload.to_vec())).collect();
    list.push((*b"wgpu", b"optional data a newer kiln wrote".to_vec()));
    assert!(ProgramFile::from_bytes(&container::write(&list)).is_ok(), "lowercase tags are skippable");
    list.push((*b"XTRA", vec![1, 2, 3]));
    assert_eq!(ProgramFile::from_bytes(&container::write(&list)).unwrap_err(), FormatError::UnknownSection("XTRA".into()));
    let without_graph: Vec<_> = secs.iter().filter(|s| &s.tag != b"GRPH").map(|s| (s.tag, s.payload.to_vec())).collect();
    assert_eq!(ProgramFile::from_bytes(&container::write(&without_graph)).unwrap_err(), FormatError::MissingSection("GRPH".into()));
    // Consistent checksums but a graph that disagrees with the signature.
    let swapped: Vec<_> = secs
        .iter()
        .map(|s| if &s.tag == b"GRPH" { (s.tag, b"%0 = input \"z\" : f32[1]\noutput \"o\" = %0\n".to_vec()) } else { (s.tag, s.payload.to_vec()) })
        .collect();
    assert!(matches!(ProgramFile::from_bytes(&container::write(&swapped)), Err(FormatError::Corrupt { .. })));
}



/// The other way to resume: a safetensors checkpoint of the state dict
/// loaded into a freshly compiled program.
#[test]
fn checkpoint_resume_matches_uninterrupted() {
    use crate::train::{load_checkpoint, save_checkpoint, Checkpoint};
    let mut a = train_program(CompileOptions::cpu());
    let full: Vec<BTreeMap<String, HostTensor>> = (0..5).map(|s| step(&mut a, s)).collect();
    let mut b = train_program(CompileOptions::cpu());
    for s in 0..2 {
        step(&mut b, s);
    }
    let path = tmp("ckpt").with_extension("safetensors");
    save_checkpoint(&path, &Checkpoint { state: b.state_dict(), epoch: 0, step: 2 }).unwrap();
    let c = load_checkpoint(&path).unwrap();
    let mut fresh = train_program(CompileOptions::cpu());
    fresh.load_state_dict(&c.state).unwrap();
    for s in c.step..5 {
        assert_eq!(step(&mut fresh, s), full[s as usize], "step {s}");
    }
    let _ = std::fs::remove_file(&path);
}

/// LeNet-5's training step (SGD with momentum), compiled for the CPU.
pub(super) fn lenet_step() -> Program {
    {
        let mut store = ParamStore::new(0);
        let net = nn::Sequential::new()
            .add(nn::Conv2d::config(1, 6, 5).padding(2).build(&mut store, "conv1").unwrap())
            .add(nn::ReLU).add(nn::MaxPool2d::new(2))
            .add(nn::Conv2d::new(&mut store, "conv2", 6, 16, 5).unwrap())
            .add(nn::ReLU).add(nn::MaxPool2d::new(2)).add(nn::Flatten::new())
            .add(nn::Linear::new(&mut store, "fc1", 400, 120).unwrap()).add(nn::ReLU)
            .add(nn::Linear::new(&mut store, "fc2", 120, 10).unwrap());
        let mut b = Builder::train();
        let x = b.input("x", f32_shape([64, 1, 28, 28])).unwrap();
        let y = b.input("y", i64_shape([64])).unwrap();
        let logits = net.forward(&mut b, x).unwrap();
        let l = loss::cross_entropy_mean(&mut b, logits, y).unwrap();
        let step = crate::train_step(&b, l, &store, optim::Sgd::new(0.01).momentum(0.9)).unwrap();
        crate::compile(&step, CompileOptions::cpu()).unwrap()
    }
}

/// Bit-identical save/load needs a deterministic backend: two compiles of
/// LeNet's training step, fed the same batches, must agree to the bit.
#[test]
fn cpu_lenet_training_is_deterministic() {
    let build = lenet_step;
    let mut r = SplitMix64::new(5);
    let x = HostTensor::from_f32([64, 1, 28, 28], (0..64 * 784).map(|_| r.unit() as f32).collect()).unwrap();
    let y = HostTensor::from_i64([64], (0..64).map(|_| r.below(10) as i64).collect()).unwrap();
    let mut a = build();
    let mut b = build();
    for s in 0..20 {
        let la = a.run(&[("x", &x), ("y", &y)]).unwrap()["loss"].scalar().unwrap();
        let lb = b.run(&[("x", &x), ("y", &y)]).unwrap()["loss"].scalar().unwrap();
        assert_eq!(la.to_bits(), lb.to_bits(), "step {s}: {la} vs {lb}");
    }
    assert_eq!(a.state_dict(), b.state_dict());
}

pub(super) fn run_exe(exe: &mut dyn kiln_ir::Executable, state: &BTreeMap<String, HostTensor>, s: u64) -> Vec<Vec<u64>> {
    for (k, v) in state {
        exe.set_state(k, v.clone()).unwrap();
    }
    let (x, y) = batch(s);
    let out = exe.run(&BTreeMap::from([("x".to_string(), x), ("y".to_string(), y)])).unwrap();
    out.values().map(|t| t.to_f64_vec().iter().map(|v| v.to_bits()).collect()).collect()
}

/// Loading installs the stored machine code: no kernel goes through
/// Cranelift codegen, and the results are bit-identical to a compile.
#[test]
fn cpu_load_installs_stored_machine_code() {
    let f = ProgramFile::from_bytes(&saved_bytes_for(CompileOptions::cpu())).unwrap();
    let kernels = f.plan.iter().filter(|e| e.kind == "clif").count();
    assert!(kernels > 0);
    assert_eq!(f.plan.iter().filter(|e| e.kind == "mcode").count(), kernels, "every kernel's machine code is stored");
    assert_eq!(f.plan.iter().filter(|e| e.kind == "seal").count(), kernels, "and sealed");
    let mut loaded = lower_sealed(&f, Some(&test_key()));
    assert_eq!(loaded.codegen_counts(), (0, kernels));
    // A file without machine code (written before it was stored) still loads, by codegen.
    let mut old = f.clone();
    old.plan.retain(|e| e.kind != "mcode" && e.kind != "seal");
    let mut compiled = lower_sealed(&old, Some(&test_key()));
    assert_eq!(compiled.codegen_counts(), (kernels, 0));
    assert_eq!(loaded.kernel_code(), compiled.kernel_code());
    for s in 0..3 {
        assert_eq!(run_exe(&mut loaded, &f.state, s), run_exe(&mut compiled, &f.state, s), "step {s}");
    }
    let back = ProgramFile::from_bytes(&old.to_bytes().unwrap()).unwrap();
    back.instantiate_with(&load_opts()).unwrap();
}

/// Compile vs load times of LeNet's training step (printed, not asserted).
#[test]
fn cpu_lenet_load_skips_codegen() {
    let t = std::time::Instant::now();
    let mut p = lenet_step();
    let compile_s = t.elapsed().as_secs_f64();
    let bytes = to_file_with(&p, &keyed()).unwrap().to_bytes().unwrap();
    let t = std::time::Instant::now();
    let f = ProgramFile::from_bytes(&bytes).unwrap();
    let read_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let mut q = f.instantiate_with(&load_opts()).unwrap();
    let load_s = t.elapsed().as_secs_f64();
    let exe = lower_sealed(&f, Some(&test_key()));
    let (compiled, installed) = exe.codegen_counts();
    assert_eq!(compiled, 0);
    assert_eq!(installed, f.plan.iter().filter(|e| e.kind == "clif").count());
    let t = std::time::Instant::now();
    f.instantiate_with(&LoadOptions::new().key(KeyChoice::None)).unwrap();
    let old_s = t.elapsed().as_secs_f64();
    eprintln!(
        "lenet train step: compile {:.1} ms, read {:.1} ms, instantiate {:.1} ms ({installed} kernels installed), instantiate without the key {:.1} ms, file {} bytes",
        compile_s * 1e3, read_s * 1e3, load_s * 1e3, old_s * 1e3, bytes.len()
    );
    let mut r = SplitMix64::new(5);
    let x = HostTensor::from_f32([64, 1, 28, 28], (0..64 * 784).map(|_| r.unit() as f32).collect()).unwrap();
    let y = HostTensor::from_i64([64], (0..64).map(|_| r.below(10) as i64).collect()).unwrap();
    for _ in 0..2 {
        assert_eq!(p.run(&[("x", &x), ("y", &y)]).unwrap(), q.run(&[("x", &x), ("y", &y)]).unwrap());
    }
}
