//! Graph -> the device-free plan of a GPU program: partition and memory
//! plan (kiln-passes, the same kernels the CPU gets), the buffer layout,
//! and every kernel lowered to WGSL and validated by naga. Nothing here
//! touches a device, so it runs (and is tested) on machines without one,
//! and a loaded program's stored WGSL is checked against it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use kiln_ir::{verify, DType, Graph, NodeId, Op};
use kiln_passes::memory_plan::plan_memory_with;
use kiln_passes::partition::partition;

use crate::layout::{Layout, WORD};
use crate::lower::{self, validate::validate, Cx, Shader};
use crate::runtime::words::to_words;
use crate::WgpuError;

/// Everything a GPU program is, before a device exists.
#[derive(Debug, Clone)]
pub struct Lowered {
    /// Every dispatch of a step, in order.
    pub shaders: Vec<Shader>,
    pub layout: Layout,
    /// Constant values, written once: (word, words).
    pub constants: Vec<(u64, Vec<u32>)>,
    /// Whether a shader can report an index out of range (then the step
    /// saves params/state first and restores them on failure).
    pub fallible: bool,
    /// For each node that checks indices: the bound its error names.
    pub index_bounds: BTreeMap<u32, (NodeId, usize)>,
    pub partition_text: String,
    pub memory_text: String,
    pub peak_bytes: usize,
}

pub fn lower_graph(g: &Graph) -> Result<Lowered, WgpuError> {
    verify(g).map_err(|e| WgpuError::Plan(e.to_string()))?;
    if !g.grad_requests().is_empty() {
        return Err(WgpuError::Plan("the graph still has grad requests; run the autodiff pass first".into()));
    }
    if let Some(n) = g.live_nodes().into_iter().find(|&n| g.ty(n).dtype == DType::F64) {
        return Err(WgpuError::Unsupported(format!("{n} is f64 ({}); the GPU computes in f32: build the graph in f32", g.ty(n))));
    }
    let part = partition(g).map_err(|e| WgpuError::Plan(e.to_string()))?;
    let plan = plan_memory_with(g, &part, &|_| 0, &|_| WORD).map_err(|e| WgpuError::Plan(e.to_string()))?;
    let layout = Layout::build(g, &part, &plan)?;
    let cx = Cx { g, layout: &layout };

    let mut shaders = Vec::new();
    for k in &part.kernels {
        // Its operands were computed in place inside its buffer.
        if k.anchor.is_some_and(|a| plan.concats_in_place.contains(&a)) {
            continue;
        }
        for mut s in lower::lower_kernel(&cx, k)? {
            if !s.name.starts_with(&format!("k{}-", k.id)) {
                s.name = format!("k{}-{}", k.id, s.name);
            }
            shaders.push(s);
        }
    }
    for (name, n) in &plan.copied {
        let dst = layout.persistent.iter().find(|r| &r.name == name).ok_or_else(|| WgpuError::Internal(format!("update of unknown `{name}`")))?;
        shaders.push(lower::copy(&cx, format!("update-{name}"), layout.word(*n)?, dst.word, g.ty(*n).numel() as u64)?);
    }
    shaders.retain(|s| s.invocations > 0);
    for s in &shaders {
        validate(s)?;
    }

    let mut constants = Vec::new();
    for (n, w) in &layout.constants {
        let Op::Constant(t) = g.op(*n) else { return Err(WgpuError::Internal(format!("{n} laid out as a constant"))) };
        constants.push((*w, to_words(&format!("constant {n}"), t)?));
    }
    let mut index_bounds = BTreeMap::new();
    for &n in &part.order {
        let ops = g.operands(n);
        let bound = match g.op(n) {
            Op::Gather { axis } => Some(g.ty(ops[0]).shape.0[*axis]),
            Op::ScatterAdd { size, .. } => Some(*size),
            Op::OneHot { classes } => Some(*classes),
            Op::SoftmaxCrossEntropy => Some(g.ty(ops[0]).shape.0[1]),
            _ => None,
        };
        if let Some(b) = bound {
            index_bounds.insert(n.index() as u32, (n, b));
        }
    }
    let fallible = shaders.iter().any(|s| s.wgsl.contains("fail("));
    let mut memory_text = plan.to_text(g);
    let _ = writeln!(
        memory_text,
        "device buffer: {} words ({} bytes): params/state at 0..{}, arena at {}, error flag at {}",
        layout.total_words,
        layout.bytes(),
        layout.persistent_words,
        layout.arena_word,
        layout.err_word()
    );
    if fallible {
        memory_text.push_str("params/state saved before each run, restored if an index check fails\n");
    }
    Ok(Lowered {
        shaders,
        constants,
        fallible,
        index_bounds,
        partition_text: part.to_text(g),
        memory_text,
        peak_bytes: layout.bytes() as usize,
        layout,
    })
}

impl Lowered {
    /// The dispatch list: one line per shader with its work items.
    pub fn dispatch_text(&self, max_x: u32) -> String {
        let mut s = String::new();
        for (i, sh) in self.shaders.iter().enumerate() {
            let (x, y) = crate::runtime::program::grid(sh.invocations, max_x).unwrap_or((0, 0));
            let _ = writeln!(s, "{i:4} {:<40} items {:>10}  workgroups [{x}, {y}, 1]", sh.name, sh.invocations);
        }
        s
    }
}
