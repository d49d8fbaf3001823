//! A compiled GPU program: one device and queue, one storage buffer laid
//! out by [`Layout`] (params and state persistent and updated in place,
//! intermediates in the planned arena), every pipeline and the one bind
//! group created at compile time, and a step recorded as one encoder with
//! one compute pass and submitted once. Only the outputs (and the error
//! flag) are copied back.

use std::collections::BTreeMap;

use kiln_ir::{Executable, HostTensor, RunError, Signature};

use crate::compile::Lowered;
use crate::layout::{Region, WORD};
use crate::lower::WORKGROUP_SIZE;
use crate::runtime::device::Gpu;
use crate::runtime::words::{from_bytes, to_words};
use crate::WgpuError;

/// Workgroups for `items` invocations: `[x, y]` with x within the
/// per-dimension limit (the shaders fold y back into a linear index).
pub fn grid(items: u64, max_x: u32) -> Result<(u32, u32), WgpuError> {
    let groups = items.div_ceil(WORKGROUP_SIZE as u64);
    if groups <= max_x as u64 {
        return Ok((groups as u32, 1));
    }
    let y = groups.div_ceil(max_x as u64);
    if y > max_x as u64 {
        return Err(WgpuError::Limit(format!("{items} work items need more than {max_x}x{max_x} workgroups")));
    }
    Ok((max_x, y as u32))
}

struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    groups: (u32, u32),
}

pub struct WgpuExecutable {
    sig: Signature,
    lowered: Lowered,
    gpu: Gpu,
    mem: wgpu::Buffer,
    /// Params and state as they were before the step, for a rollback.
    backup: Option<wgpu::Buffer>,
    /// Outputs then the error flag, copied here after each step.
    staging: wgpu::Buffer,
    staging_bytes: u64,
    bind_group: wgpu::BindGroup,
    dispatches: Vec<Dispatch>,
    /// (name, word, type, byte offset in staging).
    outputs: Vec<(String, u64, kiln_ir::TensorType, u64)>,
    set: Vec<bool>,
    plan_text: String,
}

impl WgpuExecutable {
    pub fn new(sig: Signature, outputs: Vec<(String, kiln_ir::NodeId)>, lowered: Lowered) -> Result<WgpuExecutable, WgpuError> {
        let gpu = Gpu::open()?;
        let bytes = lowered.layout.bytes();
        let lim = &gpu.limits;
        if bytes > lim.max_storage_buffer_binding_size as u64 || bytes > lim.max_buffer_size {
            return Err(WgpuError::Limit(format!(
                "the program needs a {bytes}-byte buffer; {} allows {} bytes per binding and {} per buffer",
                gpu.adapter_text(),
                lim.max_storage_buffer_binding_size,
                lim.max_buffer_size
            )));
        }
        let max_x = lim.max_compute_workgroups_per_dimension;
        let groups: Vec<(u32, u32)> = lowered.shaders.iter().map(|s| grid(s.invocations, max_x)).collect::<Result<_, _>>()?;
        let device = &gpu.device;
        let (mem, backup, bgl, bind_group) = gpu.scoped("creating the program's buffers", || {
            let mem = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kiln memory"),
                size: bytes.max(WORD as u64),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let pbytes = lowered.layout.persistent_words * WORD as u64;
            let backup = (lowered.fallible && pbytes > 0).then(|| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kiln state backup"),
                    size: pbytes,
                    usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            });
            let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("kiln memory"),
                entries: &[wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: false },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                }],
            });
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("kiln memory"),
                layout: &bgl,
                entries: &[wgpu::BindGroupEntry { binding: 0, resource: mem.as_entire_binding() }],
            });
            (mem, backup, bgl, bind_group)
        })?;
        let layout = gpu.scoped("creating the pipeline layout", || {
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("kiln"),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            })
        })?;
        let mut dispatches = Vec::with_capacity(lowered.shaders.len());
        for (s, g) in lowered.shaders.iter().zip(groups) {
            let pipeline = gpu.scoped(&format!("creating the pipeline of {}", s.name), || {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&s.name),
                    source: wgpu::ShaderSource::Wgsl(std::borrow::Cow::Borrowed(&s.wgsl)),
                });
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&s.name),
                    layout: Some(&layout),
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })?;
            dispatches.push(Dispatch { pipeline, groups: g });
        }
        // Outputs in the staging buffer, then the error flag's two words.
        let mut at = 0u64;
        let mut outs = Vec::new();
        for (name, n) in &outputs {
            let ty = sig.outputs.iter().find(|(o, _)| o == name).map(|(_, t)| t.clone()).ok_or_else(|| WgpuError::Internal(format!("output `{name}`")))?;
            outs.push((name.clone(), lowered.layout.word(*n)?, ty.clone(), at));
            at += ty.numel() as u64 * WORD as u64;
        }
        let staging_bytes = at + 2 * WORD as u64;
        let staging = gpu.scoped("creating the read-back buffer", || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kiln outputs"),
                size: staging_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        gpu.scoped("writing constants", || {
            for (w, words) in &lowered.constants {
                gpu.queue.write_buffer(&mem, w * WORD as u64, bytemuck::cast_slice(words));
            }
        })?;
        let plan_text = format!(
            "backend: wgpu on {}\n\n== partition ==\n{}\n== memory ==\n{}\n== dispatches ==\n{}",
            gpu.adapter_text(),
            lowered.partition_text,
            lowered.memory_text,
            lowered.dispatch_text(max_x)
        );
        let set = vec![false; lowered.layout.persistent.len()];
        Ok(WgpuExecutable { sig, lowered, gpu, mem, backup, staging, staging_bytes, bind_group, dispatches, outputs: outs, set, plan_text })
    }

    /// The adapter the program runs on.
    pub fn adapter(&self) -> String {
        self.gpu.adapter_text()
    }

    /// The program's lowered form (shaders, layout), for saving and dumps.
    pub fn lowered(&self) -> &Lowered {
        &self.lowered
    }

    fn region(&self, name: &str) -> Option<(usize, &Region)> {
        self.lowered.layout.persistent.iter().enumerate().find(|(_, r)| r.name == name)
    }

    fn write(&self, word: u64, words: &[u32]) {
        if !words.is_empty() {
            self.gpu.queue.write_buffer(&self.mem, word * WORD as u64, bytemuck::cast_slice(words));
        }
    }

    fn step(&mut self, inputs: &BTreeMap<String, HostTensor>) -> Result<BTreeMap<String, HostTensor>, WgpuError> {
        let layout = &self.lowered.layout;
        let err = layout.err_word();
        self.gpu.scoped("writing the inputs", || -> Result<(), WgpuError> {
            for r in &layout.inputs {
                let t = inputs.get(&r.name).ok_or_else(|| WgpuError::Internal(format!("input `{}` unchecked", r.name)))?;
                self.write(r.word, &to_words(&format!("input `{}`", r.name), t)?);
            }
            self.write(err, &[0, 0]);
            Ok(())
        })??;
        self.gpu.scoped("running the step", || {
            let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln step") });
            if let Some(b) = &self.backup {
                enc.copy_buffer_to_buffer(&self.mem, 0, b, 0, b.size());
            }
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("kiln step"), timestamp_writes: None });
                pass.set_bind_group(0, &self.bind_group, &[]);
                for d in &self.dispatches {
                    pass.set_pipeline(&d.pipeline);
                    pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
                }
            }
            for (_, w, ty, at) in &self.outputs {
                let bytes = ty.numel() as u64 * WORD as u64;
                if bytes > 0 {
                    enc.copy_buffer_to_buffer(&self.mem, w * WORD as u64, &self.staging, *at, bytes);
                }
            }
            enc.copy_buffer_to_buffer(&self.mem, err * WORD as u64, &self.staging, self.staging_bytes - 8, 8);
            self.gpu.queue.submit([enc.finish()]);
        })?;
        let bytes = self.gpu.map_read(&self.staging, self.staging_bytes)?;
        let flag = &bytes[bytes.len() - 8..];
        let code = u32::from_le_bytes([flag[0], flag[1], flag[2], flag[3]]);
        if code != 0 {
            let index = i32::from_le_bytes([flag[4], flag[5], flag[6], flag[7]]) as i64;
            if let Some(b) = &self.backup {
                self.gpu.scoped("restoring params and state", || {
                    let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln rollback") });
                    enc.copy_buffer_to_buffer(b, 0, &self.mem, 0, b.size());
                    self.gpu.queue.submit([enc.finish()]);
                })?;
                self.gpu.wait()?;
            }
            return Err(match self.lowered.index_bounds.get(&(code - 1)) {
                Some((node, bound)) => WgpuError::IndexOutOfRange { node: node.to_string(), index, bound: *bound },
                None => WgpuError::Internal(format!("unknown failing node code {code}")),
            });
        }
        let mut out = BTreeMap::new();
        for (name, _, ty, at) in &self.outputs {
            let b = &bytes[*at as usize..*at as usize + ty.numel() * WORD];
            out.insert(name.clone(), from_bytes(ty, b)?);
        }
        Ok(out)
    }
}

impl Executable for WgpuExecutable {
    fn signature(&self) -> &Signature {
        &self.sig
    }

    fn set_state(&mut self, name: &str, value: HostTensor) -> Result<(), RunError> {
        self.sig.check_state(name, &value)?;
        let (i, r) = self.region(name).ok_or_else(|| RunError::UnknownState(name.to_string()))?;
        let words = to_words(&format!("`{name}`"), &value)?;
        let w = r.word;
        self.gpu.scoped(&format!("writing `{name}`"), || self.write(w, &words))?;
        self.set[i] = true;
        Ok(())
    }

    fn state(&self, name: &str) -> Option<HostTensor> {
        let (i, r) = self.region(name)?;
        if !self.set[i] {
            return None;
        }
        let bytes = self.gpu.read(&self.mem, r.word * WORD as u64, r.ty.numel() as u64 * WORD as u64).ok()?;
        from_bytes(&r.ty, &bytes).ok()
    }

    fn run(&mut self, inputs: &BTreeMap<String, HostTensor>) -> Result<BTreeMap<String, HostTensor>, RunError> {
        self.sig.check_inputs(inputs)?;
        if let Some((_, r)) = self.lowered.layout.persistent.iter().zip(&self.set).find(|(_, s)| !**s).map(|(r, s)| (s, r)) {
            return Err(RunError::UnsetState(r.name.clone()));
        }
        match self.step(inputs) {
            Ok(o) => Ok(o),
            Err(WgpuError::IndexOutOfRange { node, index, bound }) => Err(RunError::IndexOutOfRange { node, index, bound }),
            Err(e) => Err(e.into()),
        }
    }

    fn plan_text(&self) -> Option<String> {
        Some(self.plan_text.clone())
    }

    fn peak_bytes(&self) -> Option<usize> {
        Some(self.lowered.peak_bytes)
    }

    fn device(&self) -> Option<String> {
        Some(self.gpu.adapter_text())
    }
}
