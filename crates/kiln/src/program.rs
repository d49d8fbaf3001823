//! A compiled program: the backend's executable plus the optimized graph and
//! the pipeline report. Params and state persist between runs and are
//! updated in place by the graph's updates.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::path::Path;

use kiln_ir::{DType, Executable, Graph, HostTensor, Signature, TensorData};
use kiln_passes::PipelineReport;

use crate::compile::BackendKind;
use crate::optim::{LR, WEIGHT_DECAY};
use crate::{Error, ParamStore, Result};

pub struct Program {
    exe: Box<dyn Executable>,
    graph: Graph,
    report: PipelineReport,
    backend: BackendKind,
    /// The last call's inputs, kept so the next call copies into their
    /// buffers instead of allocating (and page-faulting in) fresh ones:
    /// a 3 MiB batch cost 0.2-0.6 ms per call that way.
    inputs: BTreeMap<String, HostTensor>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("backend", &self.backend).field("signature", self.exe.signature()).finish()
    }
}

/// Copies `src` into `dst` when both have the same type; `false` otherwise.
fn copy_into(dst: &mut HostTensor, src: &HostTensor) -> bool {
    if dst.shape() != src.shape() {
        return false;
    }
    match (dst.data_mut(), src.data()) {
        (TensorData::F32(d), TensorData::F32(s)) => d.copy_from_slice(s),
        (TensorData::F64(d), TensorData::F64(s)) => d.copy_from_slice(s),
        (TensorData::I64(d), TensorData::I64(s)) => d.copy_from_slice(s),
        (TensorData::I32(d), TensorData::I32(s)) => d.copy_from_slice(s),
        (TensorData::Bool(d), TensorData::Bool(s)) => d.copy_from_slice(s),
        _ => return false,
    }
    true
}

/// Whether a persistent name belongs to the model (params and buffers such
/// as BatchNorm running stats) rather than to the optimizer or the random
/// step counter.
pub fn is_model_state(name: &str) -> bool {
    !(name.starts_with("optim.") || name == crate::nn::RNG_STEP)
}

impl Program {
    pub(crate) fn new(exe: Box<dyn Executable>, graph: Graph, report: PipelineReport, backend: BackendKind) -> Program {
        Program { exe, graph, report, backend, inputs: BTreeMap::new() }
    }

    /// Runs once. `inputs` are the per-call data inputs by name; returns
    /// every named output. A name given twice is an error (rather than one
    /// of the two values being dropped silently).
    pub fn run<T: Borrow<HostTensor>>(&mut self, inputs: &[(&str, T)]) -> Result<BTreeMap<String, HostTensor>> {
        for (i, (k, _)) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|(p, _)| p == k) {
                return Err(Error::Config(format!("input `{k}` is given twice")));
            }
        }
        let mut m = std::mem::take(&mut self.inputs);
        if m.len() != inputs.len() || inputs.iter().any(|(k, _)| !m.contains_key(*k)) {
            m.clear();
        }
        for (k, v) in inputs {
            let v = v.borrow();
            if !m.get_mut(*k).is_some_and(|t| copy_into(t, v)) {
                m.insert(k.to_string(), v.clone());
            }
        }
        let r = self.run_map(&m);
        self.inputs = m;
        r
    }

    pub fn run_map(&mut self, inputs: &BTreeMap<String, HostTensor>) -> Result<BTreeMap<String, HostTensor>> {
        Ok(self.exe.run(inputs)?)
    }

    pub fn signature(&self) -> &Signature {
        self.exe.signature()
    }

    /// The graph after the pass pipeline (what the backend compiled).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// What each pass did (names, times, node counts).
    pub fn report(&self) -> &PipelineReport {
        &self.report
    }

    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    pub fn executable(&self) -> &dyn Executable {
        self.exe.as_ref()
    }

    pub fn executable_mut(&mut self) -> &mut dyn Executable {
        self.exe.as_mut()
    }

    pub fn has_state(&self, name: &str) -> bool {
        self.exe.signature().input(name).is_some_and(|i| i.role.is_persistent())
    }

    pub fn state(&self, name: &str) -> Option<HostTensor> {
        self.exe.state(name)
    }

    pub fn set_state(&mut self, name: &str, value: HostTensor) -> Result<()> {
        Ok(self.exe.set_state(name, value)?)
    }

    /// Sets the learning rate for the next steps (no recompilation).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        crate::optim::non_negative("learning rate", lr)?;
        if !self.has_state(LR) {
            return Err(Error::UnknownParam(format!("{LR} (this program has no optimizer)")));
        }
        self.set_state(LR, HostTensor::scalar_f32(lr as f32))
    }

    pub fn lr(&self) -> Option<f64> {
        self.state(LR).and_then(|t| t.scalar().ok())
    }

    /// Sets the weight decay for the next steps (no recompilation). Only a
    /// program whose optimizer was built with `tunable_weight_decay()` has
    /// it as state; in any other the decay is a constant of the compiled
    /// update, and changing it means compiling again.
    pub fn set_weight_decay(&mut self, weight_decay: f64) -> Result<()> {
        crate::optim::non_negative("weight_decay", weight_decay)?;
        if !self.has_state(WEIGHT_DECAY) {
            return Err(Error::UnknownParam(format!(
                "{WEIGHT_DECAY} (this program's weight decay is a compiled constant: build the optimizer with .tunable_weight_decay())"
            )));
        }
        self.set_state(WEIGHT_DECAY, HostTensor::scalar_f32(weight_decay as f32))
    }

    /// The weight decay state, if the optimizer's decay is tunable.
    pub fn weight_decay(&self) -> Option<f64> {
        self.state(WEIGHT_DECAY).and_then(|t| t.scalar().ok())
    }

    /// Every param and state value (model and optimizer), by name.
    pub fn state_dict(&self) -> BTreeMap<String, HostTensor> {
        self.exe.state_dict()
    }

    /// Params and buffers only, PyTorch names and layouts.
    pub fn model_state_dict(&self) -> BTreeMap<String, HostTensor> {
        self.state_dict().into_iter().filter(|(k, _)| is_model_state(k)).collect()
    }

    /// Sets every entry; each must be a param/state of this program with its
    /// type. Entries the program does not have are an error, except
    /// BatchNorm's `num_batches_tracked` counters, which an inference
    /// program never reads (PyTorch state_dicts always carry them). All or
    /// nothing: on an error the earlier entries are put back.
    pub fn load_state_dict(&mut self, dict: &BTreeMap<String, HostTensor>) -> Result<()> {
        let mut entries = Vec::with_capacity(dict.len());
        for (k, v) in dict {
            match self.has_state(k) {
                true => entries.push((k, v)),
                false if k.ends_with("num_batches_tracked") => {}
                false => return Err(Error::UnknownParam(k.clone())),
            }
        }
        let before = self.state_dict();
        for (k, v) in entries {
            if let Err(e) = self.set_state(k, v.clone()) {
                for (k, old) in &before {
                    // Values it held before were accepted then.
                    self.exe.set_state(k, old.clone())?;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Copies every param/state this program shares by name with `other`
    /// (e.g. trained weights into an inference program).
    pub fn load_from(&mut self, other: &Program) -> Result<()> {
        for (k, v) in other.state_dict() {
            if self.has_state(&k) {
                self.set_state(&k, v)?;
            }
        }
        Ok(())
    }

    /// Writes the model's params/buffers back into a store.
    pub fn sync_to(&self, store: &mut ParamStore) -> Result<()> {
        for (k, v) in self.model_state_dict() {
            if store.contains(&k) {
                let v = if v.dtype() == DType::F64 { v.cast(DType::F32) } else { v };
                store.set(&k, v)?;
            }
        }
        Ok(())
    }

    /// Writes the whole program (optimized graph, backend plan, params and
    /// optimizer state) to one `.kiln` file; see [`crate::format`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(crate::format::save(self, path)?)
    }

    /// Loads a `.kiln` file written by [`Self::save`]; no optimization pass runs.
    pub fn load(path: impl AsRef<Path>) -> Result<Program> {
        Ok(crate::format::load(path)?)
    }

    /// Saves [`Self::state_dict`] (optimizer state included) as safetensors.
    pub fn save_state(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(kiln_ir::write_safetensors(path.as_ref(), &self.state_dict())?)
    }

    /// Saves [`Self::model_state_dict`] as safetensors (PyTorch-compatible names).
    pub fn save_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(kiln_ir::write_safetensors(path.as_ref(), &self.model_state_dict())?)
    }

    /// Loads a safetensors file written by `save_state`/`save_weights` (or PyTorch).
    pub fn load_state(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let d = kiln_ir::read_safetensors(path.as_ref())?;
        self.load_state_dict(&d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{f32_shape, Builder, CompileOptions};

    /// Inputs are copied into the previous call's buffers: every call must
    /// still see its own values, and a changed set of names starts over.
    #[test]
    fn repeated_runs_see_their_own_inputs() {
        let mut b = Builder::eval();
        let x = b.input("x", f32_shape([3])).unwrap();
        let y = b.relu(x).unwrap();
        b.output("y", y).unwrap();
        let spec = crate::inference(&b, &ParamStore::new(0)).unwrap();
        for opts in [CompileOptions::default(), CompileOptions::cpu()] {
            let mut p = crate::compile(&spec, opts).unwrap();
            for v in [[1.0f32, -2.0, 3.0], [-1.0, 2.0, -3.0]] {
                let x = HostTensor::from_f32([3], v.to_vec()).unwrap();
                let out = p.run(&[("x", &x)]).unwrap();
                assert_eq!(out["y"].as_f32().unwrap(), v.map(|e| e.max(0.0)).as_slice());
            }
            let x = HostTensor::from_f32([3], vec![0.0; 3]).unwrap();
            assert!(p.run(&[("x", &x), ("x", &x)]).is_err(), "a name given twice");
            assert!(p.run(&[("z", &x)]).is_err(), "an unknown name");
            let out = p.run(&[("x", &HostTensor::from_f32([3], vec![5.0, -5.0, 0.5]).unwrap())]).unwrap();
            assert_eq!(out["y"].as_f32().unwrap(), &[5.0, 0.0, 0.5]);
        }
    }
}
