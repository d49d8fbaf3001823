//! The parameter store, the build context that carries train/eval mode, and
//! `Spec`: a graph together with the initial values of its params and state.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::path::Path;

use kiln_ir::{DType, Graph, HostTensor, InputRole, NodeId, Op, Shape, TensorType};

use crate::init::{Init, Rng};
use crate::{Error, Result};

/// Whether a graph is built for training or for inference. BatchNorm and
/// Dropout read it; it is a property of the graph being built, never global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// Named parameters and buffers with their current values, PyTorch names
/// and layouts (`fc1.weight` is [out, in], conv weights OIHW), and the
/// seeded generator layer constructors draw their initial values from.
#[derive(Debug, Clone)]
pub struct ParamStore {
    seed: u64,
    rng: Rng,
    values: BTreeMap<String, (InputRole, HostTensor)>,
    order: Vec<String>,
}

impl ParamStore {
    pub fn new(seed: u64) -> ParamStore {
        ParamStore { seed, rng: Rng::new(seed), values: BTreeMap::new(), order: Vec::new() }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The generator initializers draw from (advances with every draw).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// A fresh seed for a random op (e.g. one per Dropout layer).
    pub fn next_seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Registers a new parameter (role Param) or buffer (role State) drawn
    /// from `init`.
    pub fn register(&mut self, name: &str, role: InputRole, shape: impl Into<Shape>, init: Init) -> Result<()> {
        let t = init.sample(&shape.into(), &mut self.rng).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("`{name}`: {m}")),
            other => other,
        })?;
        self.register_value(name, role, t)
    }

    /// Registers a new parameter or buffer with a given value.
    pub fn register_value(&mut self, name: &str, role: InputRole, value: HostTensor) -> Result<()> {
        if role == InputRole::Input {
            return Err(Error::Config(format!("`{name}`: the store holds params and state, not per-call inputs")));
        }
        if self.values.contains_key(name) {
            return Err(Error::DuplicateParam(name.to_string()));
        }
        self.values.insert(name.to_string(), (role, value));
        self.order.push(name.to_string());
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.values.get(name).map(|(_, t)| t)
    }

    pub fn role(&self, name: &str) -> Option<InputRole> {
        self.values.get(name).map(|(r, _)| *r)
    }

    /// Replaces a value; its type must match the registered one.
    pub fn set(&mut self, name: &str, value: HostTensor) -> Result<()> {
        let (_, old) = self.values.get_mut(name).ok_or_else(|| Error::UnknownParam(name.to_string()))?;
        if old.ty() != value.ty() {
            return Err(Error::ValueType { name: name.to_string(), expected: old.ty().to_string(), got: value.ty().to_string() });
        }
        *old = value;
        Ok(())
    }

    /// Re-draws a registered tensor from another initializer.
    pub fn reinit(&mut self, name: &str, init: Init) -> Result<()> {
        let shape = self.get(name).ok_or_else(|| Error::UnknownParam(name.to_string()))?.shape().clone();
        let t = init.sample(&shape, &mut self.rng)?;
        self.set(name, t)
    }

    /// Names in registration order.
    pub fn names(&self) -> &[String] {
        &self.order
    }

    /// Trainable parameter names in registration order.
    pub fn param_names(&self) -> Vec<String> {
        self.order.iter().filter(|n| self.role(n) == Some(InputRole::Param)).cloned().collect()
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.values.values().filter(|(r, _)| *r == InputRole::Param).map(|(_, t)| t.numel()).sum()
    }

    /// Every parameter and buffer by PyTorch name.
    pub fn state_dict(&self) -> BTreeMap<String, HostTensor> {
        self.values.iter().map(|(k, (_, t))| (k.clone(), t.clone())).collect()
    }

    /// Loads values by name. Every registered name must be present with its
    /// type; unknown names are an error (as PyTorch's `strict=True`).
    pub fn load_state_dict(&mut self, dict: &BTreeMap<String, HostTensor>) -> Result<()> {
        if let Some(extra) = dict.keys().find(|k| !self.values.contains_key(*k)) {
            return Err(Error::UnknownParam(extra.clone()));
        }
        if let Some(missing) = self.values.keys().find(|k| !dict.contains_key(*k)) {
            return Err(Error::MissingValue(missing.clone()));
        }
        for (k, v) in dict {
            let (_, old) = &self.values[k];
            if old.ty() != v.ty() {
                return Err(Error::ValueType { name: k.clone(), expected: old.ty().to_string(), got: v.ty().to_string() });
            }
        }
        for (k, v) in dict {
            self.values.get_mut(k).expect("checked above").1 = v.clone();
        }
        Ok(())
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(kiln_ir::write_safetensors(path.as_ref(), &self.state_dict())?)
    }

    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let d = kiln_ir::read_safetensors(path.as_ref())?;
        self.load_state_dict(&d)
    }
}

/// A graph under construction in a given [`Mode`]. Dereferences to the
/// [`Graph`], so every builder method of kiln-ir is available on it and
/// `&mut Builder` passes where `&mut Graph` is expected.
#[derive(Debug, Clone)]
pub struct Builder {
    graph: Graph,
    mode: Mode,
    init: BTreeMap<String, HostTensor>,
    random_ops: u64,
}

impl Builder {
    pub fn new(mode: Mode) -> Builder {
        Builder { graph: Graph::new(), mode, init: BTreeMap::new(), random_ops: 0 }
    }
    pub fn train() -> Builder {
        Builder::new(Mode::Train)
    }
    pub fn eval() -> Builder {
        Builder::new(Mode::Eval)
    }
    pub fn mode(&self) -> Mode {
        self.mode
    }
    pub fn is_train(&self) -> bool {
        self.mode == Mode::Train
    }
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    pub fn into_graph(self) -> Graph {
        self.graph
    }
    /// Initial values of state that layers created while building (not held
    /// by the parameter store, e.g. the dropout step counter).
    pub fn init_values(&self) -> &BTreeMap<String, HostTensor> {
        &self.init
    }

    /// A counter of random ops built so far, to give each its own stream.
    pub fn next_random_index(&mut self) -> u64 {
        self.random_ops += 1;
        self.random_ops
    }

    /// The parameter input `name` of type f32`shape`; an existing input of
    /// that name is reused, which is how a layer applied twice shares it.
    pub fn param(&mut self, name: &str, shape: impl Into<Shape>) -> Result<NodeId> {
        self.persistent(name, InputRole::Param, TensorType::new(DType::F32, shape.into()))
    }

    /// A state input (buffers such as running statistics) whose value comes
    /// from the parameter store.
    pub fn buffer(&mut self, name: &str, ty: TensorType) -> Result<NodeId> {
        self.persistent(name, InputRole::State, ty)
    }

    /// A state input with its own initial value (kept with the graph).
    pub fn state_with_init(&mut self, name: &str, init: HostTensor) -> Result<NodeId> {
        let id = self.persistent(name, InputRole::State, init.ty())?;
        self.init.entry(name.to_string()).or_insert(init);
        Ok(id)
    }

    fn persistent(&mut self, name: &str, role: InputRole, ty: TensorType) -> Result<NodeId> {
        if let Some(id) = self.graph.find_input(name) {
            let got = self.graph.ty(id).clone();
            let got_role = match self.graph.op(id) {
                Op::Input { role, .. } => *role,
                _ => unreachable!("find_input returns inputs"),
            };
            if got != ty || got_role != role {
                return Err(Error::ValueType {
                    name: name.to_string(),
                    expected: format!("{} {ty}", role.name()),
                    got: format!("{} {got} ({id})", got_role.name()),
                });
            }
            return Ok(id);
        }
        Ok(self.graph.add_input(name, role, ty)?)
    }

    /// Names `id` as an output of the graph.
    pub fn output(&mut self, name: &str, id: NodeId) -> Result<()> {
        Ok(self.graph.set_output(name, id)?)
    }

    /// The graph as built (outputs as named) with its initial values from
    /// `store`: an inference program when built in eval mode.
    pub fn spec(&self, store: &ParamStore) -> Result<Spec> {
        Spec::from_parts(self.graph.clone(), store, &self.init)
    }
}

impl Deref for Builder {
    type Target = Graph;
    fn deref(&self) -> &Graph {
        &self.graph
    }
}

impl DerefMut for Builder {
    fn deref_mut(&mut self) -> &mut Graph {
        &mut self.graph
    }
}

/// A graph ready to compile: the graph plus the initial value of every
/// param and state input it reads.
#[derive(Debug, Clone)]
pub struct Spec {
    pub graph: Graph,
    pub init: BTreeMap<String, HostTensor>,
}

impl Spec {
    /// A graph whose param/state values will be set on the program by hand.
    pub fn bare(graph: Graph) -> Spec {
        Spec { graph, init: BTreeMap::new() }
    }

    /// Collects initial values: `extra` first, then the store; a persistent
    /// input found in neither is an error.
    pub fn from_parts(graph: Graph, store: &ParamStore, extra: &BTreeMap<String, HostTensor>) -> Result<Spec> {
        let mut init = BTreeMap::new();
        for (_, name, role) in graph.inputs() {
            if !role.is_persistent() {
                continue;
            }
            let v = extra.get(name).or_else(|| store.get(name)).ok_or_else(|| Error::MissingValue(name.to_string()))?;
            init.insert(name.to_string(), v.clone());
        }
        Ok(Spec { graph, init })
    }
}

impl From<Graph> for Spec {
    fn from(graph: Graph) -> Spec {
        Spec::bare(graph)
    }
}
