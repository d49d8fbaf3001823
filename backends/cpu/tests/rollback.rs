//! A run that fails part-way changes no state: parameters already updated
//! in place before the failing step are restored, as the interpreter (which
//! applies updates only on success) does.

use std::collections::BTreeMap;

use kiln_cpu::CpuBackend;
use kiln_ir::{f32_shape, i64_shape, Backend, Executable, Graph, HostTensor};

/// `w <- w + 1`, and the output gathers from the *updated* `w`, so the
/// update is scheduled (and written in place) before the gather that checks
/// the indices.
fn update_then_gather() -> Graph {
    let mut g = Graph::new();
    let w = g.param("w", f32_shape([4])).unwrap();
    let idx = g.input("idx", i64_shape([2])).unwrap();
    let one = g.scalar_f32(1.0).unwrap();
    let w_new = g.add(w, one).unwrap();
    g.set_update("w", w_new).unwrap();
    let y = g.gather(w_new, idx, 0).unwrap();
    g.set_output("y", y).unwrap();
    g
}

fn inputs(idx: [i64; 2]) -> BTreeMap<String, HostTensor> {
    [("idx".to_string(), HostTensor::from_i64([2], idx.to_vec()).unwrap())].into_iter().collect()
}

#[test]
fn a_failing_run_leaves_the_updated_parameter_as_it_was() {
    let g = update_then_gather();
    let interp = kiln_interp::Interpreter::new(kiln_interp::Precision::F32);
    let mut backends: Vec<(&str, Box<dyn Executable>)> = vec![("cpu", Box::new(CpuBackend::new().compile_cpu(&g).unwrap())), ("cpu-portable", Box::new(CpuBackend::new().with_jit(false).compile_cpu(&g).unwrap())), ("interp", interp.compile(&g).unwrap())];
    for (name, exe) in &mut backends {
        exe.set_state("w", HostTensor::from_f32([4], vec![0.0, 10.0, 20.0, 30.0]).unwrap()).unwrap();
        let y = exe.run(&inputs([3, 1])).unwrap();
        assert_eq!(y["y"].as_f32().unwrap(), &[31.0, 11.0], "{name}");
        assert_eq!(exe.state("w").unwrap().as_f32().unwrap(), &[1.0, 11.0, 21.0, 31.0], "{name}");
        let err = exe.run(&inputs([0, 7])).unwrap_err().to_string();
        assert!(err.contains('7') && err.contains('%'), "{name}: the error names the index and the node: {err}");
        assert_eq!(exe.state("w").unwrap().as_f32().unwrap(), &[1.0, 11.0, 21.0, 31.0], "{name}: a failed run changed `w`");
        // And the program still works afterwards.
        let y = exe.run(&inputs([0, 0])).unwrap();
        assert_eq!(y["y"].as_f32().unwrap(), &[2.0, 2.0], "{name}");
    }
}

#[test]
fn the_plan_names_what_it_saves_and_plain_training_saves_nothing() {
    let exe = CpuBackend::new().compile_cpu(&update_then_gather()).unwrap();
    assert!(exe.memory_plan_text().contains("restored if it fails: w"), "{}", exe.memory_plan_text());
    // Here the gather reads the old `w`, so it runs before the in-place
    // update (which must wait for every reader of the old value): nothing
    // is written before the last check and nothing is saved.
    let mut g = Graph::new();
    let w = g.param("w", f32_shape([4])).unwrap();
    let idx = g.input("idx", i64_shape([2])).unwrap();
    let y = g.gather(w, idx, 0).unwrap();
    g.set_output("y", y).unwrap();
    let one = g.scalar_f32(1.0).unwrap();
    let w_new = g.add(w, one).unwrap();
    g.set_update("w", w_new).unwrap();
    let exe = CpuBackend::new().compile_cpu(&g).unwrap();
    assert!(!exe.memory_plan_text().contains("restored if it fails"), "{}", exe.memory_plan_text());
}
