//! Files made by an attacker, checksums and all: stored machine code that
//! is not sealed with the user's key is never run, and no length, count or
//! shape makes a load panic or allocate without bound.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::container;
use super::tests::{keyed, lenet_step, load_opts, lower_sealed, saved_bytes_for, step, test_key, tmp, train_program};
use super::*;
use crate::data::SplitMix64;
use crate::{f32_shape, CompileOptions, HostTensor};

/// Every `mcode` entry's bytes replaced by `int3` (0xCC) of the same
/// length, seals left as they were, the file re-encoded with fresh CRCs.
fn with_int3_code(f: &ProgramFile) -> ProgramFile {
    let mut g = f.clone();
    for e in g.plan.iter_mut().filter(|e| e.kind == "mcode") {
        let text = e.as_text();
        let lines: Vec<String> = text
            .lines()
            .map(|l| match l.strip_prefix("code ") {
                Some(hex) => format!("code {}", "cc".repeat(hex.len() / 2)),
                None => l.to_string(),
            })
            .collect();
        e.data = format!("{}\n", lines.join("\n")).into_bytes();
    }
    g
}

fn bits(out: &BTreeMap<String, HostTensor>) -> Vec<(String, Vec<u64>)> {
    out.iter().map(|(k, t)| (k.clone(), t.to_f64_vec().iter().map(|v| v.to_bits()).collect())).collect()
}

/// The attack of issue #13: a saved program's machine code replaced by
/// `int3`, CRCs recomputed. Loaded with the user's own key, the seals do
/// not verify, every kernel is compiled from the graph, and the results
/// are the in-memory program's to the bit (an installed `int3` would have
/// killed this process with SIGTRAP).
#[test]
fn int3_machine_code_with_valid_crcs_is_compiled_not_run() {
    let mut p = train_program(CompileOptions::cpu());
    step(&mut p, 0);
    let f = to_file_with(&p, &keyed()).unwrap();
    let kernels = f.plan.iter().filter(|e| e.kind == "mcode").count();
    assert!(kernels > 0);
    let hostile = with_int3_code(&f);
    assert_ne!(hostile.plan, f.plan);
    let mut unsealed = hostile.clone();
    unsealed.plan.retain(|e| e.kind != "seal");
    for (what, h) in [("stale seals", hostile), ("no seals", unsealed)] {
        let path = tmp(&format!("int3-{}", what.replace(' ', "-")));
        h.write(&path).unwrap();
        let back = ProgramFile::read(&path).expect("CRCs and trailer are valid");
        assert_eq!(lower_sealed(&back, Some(&test_key())).codegen_counts(), (kernels, 0), "{what}: nothing installed");
        let mut q = load_with(&path, &load_opts()).unwrap();
        // The in-memory program as it was saved.
        let mut p = train_program(CompileOptions::cpu());
        step(&mut p, 0);
        for s in 1..4 {
            assert_eq!(bits(&step(&mut q, s)), bits(&step(&mut p, s)), "{what}: step {s}");
        }
        let _ = std::fs::remove_file(&path);
    }
    // Sealed under the right key, the untouched file installs everything:
    // the test above would have seen the int3 bytes had they been sealed.
    assert_eq!(lower_sealed(&f, Some(&test_key())).codegen_counts(), (0, kernels));
}

/// A file sealed under another user's (or machine's) key loads by
/// compiling every kernel, with the in-memory program's results to the bit.
#[test]
fn a_file_sealed_under_another_key_loads_by_recompiling() {
    let mut p = lenet_step();
    let path = tmp("foreign-key");
    save_with(&p, &path, &KeyChoice::Key(CodeKey::from_bytes([0xA1; 32]))).unwrap();
    let f = ProgramFile::read(&path).unwrap();
    let kernels = f.plan.iter().filter(|e| e.kind == "clif").count();
    assert_eq!(f.plan.iter().filter(|e| e.kind == "seal").count(), kernels);
    let mine = CodeKey::from_bytes([0xB2; 32]);
    assert_eq!(lower_sealed(&f, Some(&mine)).codegen_counts(), (kernels, 0));
    let mut q = load_with(&path, &LoadOptions::new().key(KeyChoice::Key(mine))).unwrap();
    let mut r = SplitMix64::new(9);
    let x = HostTensor::from_f32([64, 1, 28, 28], (0..64 * 784).map(|_| r.unit() as f32).collect()).unwrap();
    let y = HostTensor::from_i64([64], (0..64).map(|_| r.below(10) as i64).collect()).unwrap();
    for s in 0..2 {
        let (a, b) = (p.run(&[("x", &x), ("y", &y)]).unwrap(), q.run(&[("x", &x), ("y", &y)]).unwrap());
        assert_eq!(bits(&a), bits(&b), "step {s}");
    }
    assert_eq!(p.state_dict(), q.state_dict());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_save_without_a_key_stores_no_machine_code() {
    let mut p = train_program(CompileOptions::cpu());
    step(&mut p, 0);
    let f = to_file_with(&p, &KeyChoice::None).unwrap();
    assert!(f.plan.iter().any(|e| e.kind == "clif"));
    assert!(!f.plan.iter().any(|e| e.kind == "mcode" || e.kind == "seal"), "{:?}", f.plan.iter().map(|e| &e.kind).collect::<Vec<_>>());
    let mut q = ProgramFile::from_bytes(&f.to_bytes().unwrap()).unwrap().instantiate_with(&load_opts()).unwrap();
    assert_eq!(bits(&step(&mut q, 1)), bits(&step(&mut p, 1)));
}

#[test]
fn the_key_file_is_created_owner_only_and_then_reused() {
    let dir = tmp("keydir").with_extension("d");
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("kiln").join("code-key");
    assert_eq!(CodeKey::read(&path).unwrap(), None);
    // Several processes' first saves at once agree on one key.
    let keys: Vec<CodeKey> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| CodeKey::read_or_create(&path).unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.iter().all(|k| *k == keys[0]));
    assert_eq!(CodeKey::read(&path).unwrap().as_ref(), Some(&keys[0]));
    assert_eq!(std::fs::read(&path).unwrap().len(), 32);
    assert_ne!(keys[0], CodeKey::read_or_create(&dir.join("other")).unwrap(), "random keys");
    assert!(!format!("{:?}", keys[0]).contains(|c: char| c.is_ascii_digit()), "Debug shows no key bytes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        match CodeKey::read(&path) {
            Err(FormatError::Key { reason, .. }) => assert!(reason.contains("chmod 600"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // A load with that key file is refused, not silently trusted.
        let bytes = saved_bytes_for(CompileOptions::cpu());
        let f = ProgramFile::from_bytes(&bytes).unwrap();
        assert!(matches!(f.instantiate_with(&LoadOptions::new().key(KeyChoice::File(path.clone()))), Err(FormatError::Key { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(&path, b"short").unwrap();
    assert!(matches!(CodeKey::read(&path), Err(FormatError::Key { .. })));
    // Saving through a key file seals with it; loading through it installs.
    let file_key = dir.join("k2");
    let mut p = train_program(CompileOptions::cpu());
    step(&mut p, 0);
    let f = to_file_with(&p, &KeyChoice::File(file_key.clone())).unwrap();
    let key = CodeKey::read(&file_key).unwrap().expect("created by the save");
    let kernels = f.plan.iter().filter(|e| e.kind == "mcode").count();
    assert_eq!(lower_sealed(&f, Some(&key)).codegen_counts(), (0, kernels));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A program file around `g` with no weights (its params come at run time).
fn file_of(g: kiln_ir::Graph, backend: &str) -> Vec<u8> {
    ProgramFile {
        backend: backend.into(),
        options: BTreeMap::from([("threads".to_string(), "2".to_string())]),
        extra: BTreeMap::new(),
        writer: "attacker".into(),
        signature: kiln_ir::Signature::of(&g),
        graph: g,
        report: Default::default(),
        plan: Vec::new(),
        state: BTreeMap::new(),
        peak_bytes: None,
    }
    .to_bytes()
    .unwrap()
}

/// A file of a few hundred bytes asking for gigabytes is refused before
/// anything is allocated: by the graph's value sizes, or (for the CPU) by
/// the memory plan with its scratch.
#[test]
fn a_small_file_cannot_ask_for_gigabytes() {
    let mut g = kiln_ir::Graph::new();
    let x = g.input("x", f32_shape([100_000, 100_000])).unwrap();
    let y = g.relu(x).unwrap();
    g.set_output("y", y).unwrap();
    for backend in ["cpu", "interp"] {
        let bytes = file_of(g.clone(), backend);
        assert!(bytes.len() < 1024, "{}", bytes.len());
        match ProgramFile::from_bytes(&bytes) {
            Err(FormatError::TooLarge { needed, limit, .. }) => assert!(needed > limit && limit == DEFAULT_MAX_MEMORY, "{needed} {limit}"),
            other => panic!("{backend}: {:?}", other.map(|_| "loaded")),
        }
        // A user who trusts the file can raise the limit.
        assert!(ProgramFile::from_bytes_with(&bytes, &LoadOptions::new().max_memory(1 << 38)).is_ok());
    }
    // Empty, so zero bytes, but with extents whose strides overflow.
    let mut e = kiln_ir::Graph::new();
    let x = e.input("x", f32_shape([0, 1 << 62, 4])).unwrap();
    let y = e.relu(x).unwrap();
    e.set_output("y", y).unwrap();
    assert!(matches!(ProgramFile::from_bytes(&file_of(e, "cpu")), Err(FormatError::TooLarge { .. })));
    // Small values, but a conv whose im2col scratch is gigabytes.
    let mut c = kiln_ir::Graph::new();
    let x = c.input("x", f32_shape([4, 64, 256, 256])).unwrap();
    let w = c.input("w", f32_shape([64, 64, 7, 7])).unwrap();
    let y = c.apply(kiln_ir::Op::Conv2d(Default::default()), &[x, w]).unwrap();
    c.set_output("y", y).unwrap();
    let f = ProgramFile::from_bytes(&file_of(c, "cpu")).expect("the values fit");
    match f.instantiate_with(&load_opts()) {
        Err(FormatError::TooLarge { what, .. }) => assert!(what.contains("memory plan"), "{what}"),
        other => panic!("{:?}", other.map(|_| "loaded")),
    }
    // A splat constant of 4 GB from one line of text.
    let mut bytes = saved_bytes_for(CompileOptions::interp());
    let secs: Vec<([u8; 4], Vec<u8>)> = container::read(&bytes).unwrap().iter().map(|s| (s.tag, s.payload.to_vec())).collect();
    let secs: Vec<_> = secs
        .into_iter()
        .map(|(t, p)| if &t == b"GRPH" { (t, [b"%900 = const 0 : f32[1000000000]\n".to_vec(), p].concat()) } else { (t, p) })
        .collect();
    bytes = container::write(&secs);
    match ProgramFile::from_bytes(&bytes) {
        Err(FormatError::Corrupt { section, reason }) => assert!(section == "GRPH" && reason.contains("limit"), "{reason}"),
        other => panic!("{:?}", other.map(|_| "loaded")),
    }
    // A thread count that would spawn a million threads.
    let mut f = ProgramFile::from_bytes(&saved_bytes_for(CompileOptions::cpu())).unwrap();
    f.options.insert("threads".into(), "1000000".into());
    assert!(matches!(f.instantiate_with(&load_opts()), Err(FormatError::Corrupt { section, .. }) if section == "META"));
}

/// One mutation of one section's payload.
fn mutate(payload: &[u8], r: &mut SplitMix64) -> (String, Vec<u8>) {
    const NUMBERS: [&str; 12] = ["0", "1", "3", "255", "65536", "1048575", "4294967295", "4294967296", "100000000000", "18446744073709551615", "99999999999999999999999", "-1"];
    let mut p = payload.to_vec();
    let n = p.len();
    match r.below(5) {
        0 => {
            let cut = if n == 0 { 0 } else { r.below(n) };
            p.truncate(cut);
            (format!("truncated to {cut}"), p)
        }
        1 if n > 0 => {
            let k = 1 + r.below(8);
            for _ in 0..k {
                let bit = r.below(n * 8);
                p[bit / 8] ^= 1 << (bit % 8);
            }
            (format!("{k} bits flipped"), p)
        }
        2 | 3 => {
            // A decimal number in the text (shapes, counts, offsets, ids).
            let runs: Vec<(usize, usize)> = digit_runs(&p);
            if runs.is_empty() {
                return ("unchanged".into(), p);
            }
            let (s, e) = runs[r.below(runs.len())];
            let num = NUMBERS[r.below(NUMBERS.len())];
            let old = String::from_utf8_lossy(&p[s..e]).into_owned();
            p.splice(s..e, num.bytes());
            (format!("number {old} at {s} -> {num}"), p)
        }
        _ if n >= 8 => {
            // A binary length or count (PLAN's u32/u64 fields, the
            // safetensors header length).
            let at = r.below(n - 7) & !3;
            let v: u64 = [u32::MAX as u64, 1 << 31, 1 << 40, u64::MAX, 0, 17][r.below(6)];
            let w = if r.below(2) == 0 { 4 } else { 8 };
            p[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
            (format!("{w}-byte {v} at {at}"), p)
        }
        _ => ("unchanged".into(), p),
    }
}

fn digit_runs(p: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < p.len() {
        if p[i].is_ascii_digit() {
            let s = i;
            while i < p.len() && p[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((s, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// Mutated sections with recomputed CRCs, so the checks behind the CRCs
/// are what is tested: every outcome is a load or a typed error.
#[test]
fn mutated_sections_with_valid_crcs_load_or_fail_cleanly() {
    let mut r = SplitMix64::new(13);
    let (mut loaded, mut refused) = (0, 0);
    for (name, bytes) in [("cpu", saved_bytes_for(CompileOptions::cpu())), ("interp", saved_bytes_for(CompileOptions::interp()))] {
        let secs: Vec<([u8; 4], Vec<u8>)> = container::read(&bytes).unwrap().iter().map(|s| (s.tag, s.payload.to_vec())).collect();
        for case in 0..600 {
            let i = r.below(secs.len());
            let (what, payload) = mutate(&secs[i].1, &mut r);
            let mut m = secs.clone();
            m[i].1 = payload;
            let file = container::write(&m);
            let desc = format!("{name} case {case}: section {}: {what}", String::from_utf8_lossy(&secs[i].0));
            let outcome = catch_unwind(AssertUnwindSafe(|| ProgramFile::from_bytes(&file).and_then(|f| f.instantiate_with(&load_opts()).map(|_| ()))));
            match outcome {
                Ok(Ok(())) => loaded += 1,
                Ok(Err(_)) => refused += 1,
                Err(_) => panic!("{desc}: panicked"),
            }
        }
    }
    assert!(refused > 100 && loaded > 10, "loaded {loaded}, refused {refused}: the mutations exercise both outcomes");
}
