//! Shared by the lower_* tests: lower a graph the way the backend will
//! (partition, memory plan with 4-byte words, layout), validate every
//! shader with naga, and, where a wgpu adapter exists (lavapipe on CI),
//! run the shaders over one buffer and compare with the interpreter.
//!
//! The runner is the smallest thing that dispatches a kernel list: inputs
//! and constants written at their layout words, one compute pass per
//! shader in kernel order, outputs and the error flag read back.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kiln_ir::{DType, Graph, HostTensor, Op, TensorType};
use kiln_passes::memory_plan::plan_memory_with;
use kiln_passes::partition::partition;
use kiln_wgpu::layout::Layout;
use kiln_wgpu::lower::{lower_anchor, lower_kernel, validate::validate, Cx, Shader, WORKGROUP_SIZE};

pub struct Lowered {
    pub layout: Layout,
    pub shaders: Vec<Shader>,
}

/// Every kernel's shaders, each validated by naga.
pub fn lower(g: &Graph) -> Lowered {
    lower_with(g, false)
}

/// As [`lower`]; with `slices_alone`, a kernel that is one slice (which the
/// partition runs as a strided loop) is lowered as a standalone slice
/// instead, so that lowering is exercised too.
pub fn lower_with(g: &Graph, slices_alone: bool) -> Lowered {
    let part = partition(g).expect("partition");
    let plan = plan_memory_with(g, &part, &|_| 0, &|_| 4).expect("memory plan");
    let layout = Layout::build(g, &part, &plan).expect("layout");
    let cx = Cx { g, layout: &layout };
    let mut shaders = Vec::new();
    for k in &part.kernels {
        let alone = match k.fused[..] {
            [n] if slices_alone && k.anchor.is_none() && matches!(g.op(n), Op::Slice { .. }) => Some(n),
            _ => None,
        };
        let s = match alone {
            Some(n) => lower_anchor(&cx, n),
            None => lower_kernel(&cx, k),
        }
        .unwrap_or_else(|e| panic!("lowering kernel {}: {e}", k.id));
        for sh in &s {
            if let Err(e) = validate(sh) {
                panic!("{e}");
            }
        }
        shaders.extend(s);
    }
    Lowered { layout, shaders }
}

/// Lowers and checks that some shader has `name` (the op really became a
/// shader of its own rather than a view or a loop).
pub fn lower_expect(g: &Graph, name: &str) -> Lowered {
    let l = lower_with(g, true);
    assert!(l.shaders.iter().any(|s| s.name.contains(name)), "no `{name}` shader in {:?}", names(&l));
    l
}

pub fn names(l: &Lowered) -> Vec<String> {
    l.shaders.iter().map(|s| s.name.clone()).collect()
}

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    pub fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random values for every input of `g`: floats in [-1, 1), integers in
/// `0..int_bound`, bools at random.
pub fn inputs(g: &Graph, seed: u64, int_bound: u64) -> BTreeMap<String, HostTensor> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut m = BTreeMap::new();
    for (id, name, _) in g.inputs() {
        let ty = g.ty(id);
        let v: Vec<f64> = (0..ty.numel())
            .map(|_| match ty.dtype {
                DType::F32 | DType::F64 => r.f() as f64,
                DType::Bool => r.below(2) as f64,
                _ => r.below(int_bound) as f64,
            })
            .collect();
        m.insert(name.to_string(), HostTensor::from_f64_values(ty, &v));
    }
    m
}

/// A tensor as device words: f32 bits, integers as i32, bools as 0/1.
pub fn words(t: &HostTensor) -> Vec<u32> {
    let f = t.dtype() == DType::F32;
    t.to_f64_vec().iter().map(|&v| if f { (v as f32).to_bits() } else { v as i64 as i32 as u32 }).collect()
}

/// Device words back as a host tensor of type `ty`.
pub fn from_words(ty: &TensorType, w: &[u32]) -> HostTensor {
    let v: Vec<f64> = w
        .iter()
        .map(|&x| match ty.dtype {
            DType::F32 => f32::from_bits(x) as f64,
            _ => x as i32 as f64,
        })
        .collect();
    HostTensor::from_f64_values(ty, &v)
}

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
}

fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).ok()?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .ok()?;
        Some(Gpu { device, queue })
    })
    .as_ref()
}

/// What a run on the device gave: outputs by name, and the error flag
/// (node index + 1, offending index) if a shader set it.
pub struct GpuRun {
    pub outputs: BTreeMap<String, HostTensor>,
    pub error: Option<(u32, i32)>,
}

/// Runs `g` on the device, or `None` when this machine has no adapter.
pub fn run_gpu(g: &Graph, vals: &BTreeMap<String, HostTensor>) -> Option<GpuRun> {
    let gpu = gpu()?;
    let l = lower_with(g, true);
    let mut mem = vec![0u32; l.layout.total_words as usize];
    for r in l.layout.persistent.iter().chain(&l.layout.inputs) {
        let w = words(&vals[&r.name]);
        mem[r.word as usize..r.word as usize + w.len()].copy_from_slice(&w);
    }
    for &(n, at) in &l.layout.constants {
        let Op::Constant(t) = g.op(n) else { panic!("{n} is not a constant") };
        let w = words(t);
        mem[at as usize..at as usize + w.len()].copy_from_slice(&w);
    }
    let mem = run_words(gpu, &l.shaders, &mem);
    let err = l.layout.err_word() as usize;
    let error = (mem[err] != 0).then(|| (mem[err], mem[err + 1] as i32));
    let mut outputs = BTreeMap::new();
    for (name, n) in g.outputs() {
        let at = l.layout.word(*n).expect("output placed") as usize;
        let ty = g.ty(*n);
        outputs.insert(name.clone(), from_words(ty, &mem[at..at + ty.numel()]));
    }
    Some(GpuRun { outputs, error })
}

fn run_words(gpu: &Gpu, shaders: &[Shader], init: &[u32]) -> Vec<u32> {
    use wgpu::util::DeviceExt;
    let d = &gpu.device;
    let bytes: &[u8] = bytemuck::cast_slice(init);
    let buf = d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("mem"),
        contents: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let read = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read"),
        size: bytes.len() as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = d.create_command_encoder(&Default::default());
    for s in shaders {
        let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&s.name),
            source: wgpu::ShaderSource::Wgsl(s.wgsl.as_str().into()),
        });
        let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&s.name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[wgpu::BindGroupEntry { binding: 0, resource: buf.as_entire_binding() }],
        });
        let groups = s.invocations.div_ceil(WORKGROUP_SIZE as u64);
        if groups == 0 {
            continue;
        }
        let x = groups.min(65535);
        let y = groups.div_ceil(x);
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(x as u32, y as u32, 1);
    }
    enc.copy_buffer_to_buffer(&buf, 0, &read, 0, bytes.len() as u64);
    gpu.queue.submit([enc.finish()]);
    read.map_async(wgpu::MapMode::Read, .., |r| r.expect("map"));
    d.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
    let out = bytemuck::cast_slice(&read.get_mapped_range(..).expect("mapped")).to_vec();
    read.unmap();
    out
}

/// Runs `g` on the device (when there is one) and on the interpreter (f32)
/// with the same inputs; every output must agree to `atol + rtol * |want|`
/// (NaNs in the same places). Returns whether the device ran.
pub fn parity(g: &Graph, vals: &BTreeMap<String, HostTensor>, rtol: f64, atol: f64) -> bool {
    let want = kiln_interp::run_graph(g, vals, kiln_interp::Precision::F32).expect("interpreter");
    let Some(got) = run_gpu(g, vals) else {
        eprintln!("no wgpu adapter: device parity skipped");
        return false;
    };
    assert_eq!(got.error, None, "the device reported an index error");
    for (name, w) in &want {
        let gt = &got.outputs[name];
        let (a, b) = (gt.to_f64_vec(), w.to_f64_vec());
        assert_eq!(a.len(), b.len(), "{name}: length");
        for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
            let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= atol + rtol * y.abs();
            assert!(ok, "{name}[{i}]: device {x} vs interpreter {y}");
        }
    }
    true
}
