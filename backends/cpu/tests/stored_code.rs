//! Installing stored machine code instead of running Cranelift codegen.

use kiln_cpu::{CpuBackend, KernelCode, MachineCode};
use kiln_ir::*;

fn graph() -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", f32_shape([5, 37])).unwrap();
    let b = g.input("b", f32_shape([37])).unwrap();
    let y = g.add(x, b).unwrap();
    let a = g.abs(y).unwrap();
    let l = g.log(a).unwrap(); // a per-lane helper call: an absolute relocation
    let e = g.exp(l).unwrap();
    let s = g.sum(e, &[1], false).unwrap();
    g.set_output("l", l).unwrap();
    g.set_output("s", s).unwrap();
    g
}

fn inputs() -> std::collections::BTreeMap<String, HostTensor> {
    let x: Vec<f32> = (0..5 * 37).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let b: Vec<f32> = (0..37).map(|i| i as f32 * 0.1 - 1.5).collect();
    [("x".to_string(), HostTensor::from_f32([5, 37], x).unwrap()), ("b".to_string(), HostTensor::from_f32([37], b).unwrap())].into_iter().collect()
}

fn bits(t: &HostTensor) -> Vec<u32> {
    t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn stored_code_is_installed_without_codegen_and_runs_identically() {
    let g = graph();
    let mut first = CpuBackend::new().compile_cpu(&g).unwrap();
    let code: Vec<KernelCode> = first.kernel_code().to_vec();
    assert!(!code.is_empty());
    assert_eq!(first.codegen_counts(), (code.len(), 0));
    assert!(code.iter().all(|k| k.machine.is_some()), "every kernel's code is storable");
    assert!(code.iter().any(|k| k.machine.as_ref().unwrap().relocs.iter().any(|r| r.symbol == "kiln_log")), "log goes through a relocated helper call");
    // Through the text form, as the file stores it.
    let stored: Vec<KernelCode> = code
        .iter()
        .map(|k| KernelCode { machine: Some(MachineCode::from_text(&k.machine.as_ref().unwrap().to_text()).unwrap()), ..k.clone() })
        .collect();
    assert_eq!(stored, code);
    // SAFETY: `stored` is what this backend just compiled from these CLIFs.
    let mut again = unsafe { CpuBackend::new().compile_cpu_with_code(&g, &stored) }.unwrap();
    assert_eq!(again.codegen_counts(), (0, code.len()), "no kernel went through Cranelift codegen");
    assert_eq!(again.kernel_code(), &code[..]);
    let (a, b) = (first.run(&inputs()).unwrap(), again.run(&inputs()).unwrap());
    for k in ["l", "s"] {
        assert_eq!(bits(&a[k]), bits(&b[k]), "{k}");
    }
}

#[test]
fn mismatching_stored_code_is_compiled_not_installed() {
    let g = graph();
    let code = CpuBackend::new().compile_cpu(&g).unwrap().kernel_code().to_vec();
    // Another kernel's CLIF, or another ISA: never installed.
    let mut wrong_clif = code.clone();
    wrong_clif[0].clif.push_str("; different\n");
    let mut wrong_isa = code.clone();
    for k in &mut wrong_isa {
        k.machine.as_mut().unwrap().isa.push_str(";has_avx9=true");
    }
    for stored in [wrong_clif, wrong_isa] {
        // SAFETY: the code is this backend's own, only its CLIF or ISA key altered.
        let exe = unsafe { CpuBackend::new().compile_cpu_with_code(&g, &stored) }.unwrap();
        let (compiled, installed) = exe.codegen_counts();
        assert!(compiled >= 1 && compiled + installed == code.len(), "{compiled} {installed}");
        assert_eq!(exe.kernel_code(), &code[..]);
    }
}

#[test]
fn malformed_machine_code_text_is_an_error() {
    let good = CpuBackend::new().compile_cpu(&graph()).unwrap().kernel_code()[0].machine.clone().unwrap().to_text();
    for bad in [
        String::new(),
        good.replace("code ", "code 0"),
        good.replace("code ", "code zz"),
        good.replace("align ", "align x"),
        good.replace("align ", "align 3"),
        good.replace("isa ", "junk "),
        format!("{good}reloc 999999 kiln_log 0\n"),
        format!("{good}reloc 0 kiln_log\n"),
    ] {
        assert!(MachineCode::from_text(&bad).is_err(), "{bad}");
    }
    assert!(MachineCode::from_text(&good).is_ok());
}

/// A memory limit refuses a program before anything is allocated, with
/// the bytes it needs; one it fits compiles as usual.
#[test]
fn memory_limit_refuses_a_plan_that_does_not_fit() {
    use kiln_cpu::CpuError;
    let g = graph();
    let need = CpuBackend::new().compile_cpu(&g).unwrap().peak_bytes() as u64;
    match CpuBackend::new().with_max_memory(need - 1).compile_cpu(&g) {
        Err(CpuError::MemoryLimit { needed, limit }) => assert_eq!((needed, limit), (need, need - 1)),
        other => panic!("{:?}", other.map(|_| "compiled")),
    }
    assert!(CpuBackend::new().with_max_memory(need).compile_cpu(&g).is_ok());
    // A conv whose per-thread im2col scratch alone is far past the limit.
    let mut c = Graph::new();
    let x = c.input("x", f32_shape([4, 64, 512, 512])).unwrap();
    let w = c.input("w", f32_shape([64, 64, 7, 7])).unwrap();
    let y = c.apply(Op::Conv2d(Conv2dAttrs::default()), &[x, w]).unwrap();
    c.set_output("y", y).unwrap();
    assert!(matches!(CpuBackend::new().with_max_memory(1 << 20).compile_cpu(&c), Err(CpuError::MemoryLimit { .. })));
}
