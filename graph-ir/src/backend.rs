//! The contract every backend implements: compile a graph, then run it with
//! named host tensors. Params and state live inside the executable between
//! runs and are updated in place by the graph's `updates`.

use std::collections::BTreeMap;

use crate::{Graph, HostTensor, InputRole, TensorType};

/// Errors when running a compiled program.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("missing input `{0}`")]
    MissingInput(String),
    #[error("unexpected input `{name}` (the program's inputs are: {known})")]
    UnexpectedInput { name: String, known: String },
    #[error("input `{name}` must be {expected}, got {got}")]
    InputType { name: String, expected: TensorType, got: TensorType },
    #[error("input `{name}` contains NaN or infinity")]
    NonFinite { name: String },
    #[error("`{0}` is not a param or state of this program")]
    UnknownState(String),
    #[error("param/state `{0}` has no value; set it before running")]
    UnsetState(String),
    #[error("{node}: index {index} out of range 0..{bound}")]
    IndexOutOfRange { node: String, index: i64, bound: usize },
    #[error("{0}")]
    Backend(String),
}

/// One named input of a program.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureInput {
    pub name: String,
    pub role: InputRole,
    pub ty: TensorType,
}

/// What a compiled program takes and returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signature {
    pub inputs: Vec<SignatureInput>,
    pub outputs: Vec<(String, TensorType)>,
}

impl Signature {
    pub fn of(g: &Graph) -> Signature {
        Signature {
            inputs: g
                .inputs()
                .into_iter()
                .map(|(id, name, role)| SignatureInput { name: name.to_string(), role, ty: g.ty(id).clone() })
                .collect(),
            outputs: g.outputs().iter().map(|(n, id)| (n.clone(), g.ty(*id).clone())).collect(),
        }
    }

    pub fn input(&self, name: &str) -> Option<&SignatureInput> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// Checks per-call inputs: every `Input`-role name present with its exact
    /// type and finite values, nothing unknown.
    pub fn check_inputs(&self, inputs: &BTreeMap<String, HostTensor>) -> Result<(), RunError> {
        for name in inputs.keys() {
            match self.input(name) {
                Some(i) if i.role == InputRole::Input => {}
                Some(_) => return Err(RunError::UnexpectedInput { name: format!("{name} (a param or state; set it with set_state)"), known: self.data_input_names() }),
                None => return Err(RunError::UnexpectedInput { name: name.clone(), known: self.data_input_names() }),
            }
        }
        for i in self.inputs.iter().filter(|i| i.role == InputRole::Input) {
            let t = inputs.get(&i.name).ok_or_else(|| RunError::MissingInput(i.name.clone()))?;
            check_tensor(&i.name, &i.ty, t)?;
        }
        Ok(())
    }

    /// Checks a value for a param/state input.
    pub fn check_state(&self, name: &str, t: &HostTensor) -> Result<(), RunError> {
        match self.input(name) {
            Some(i) if i.role.is_persistent() => check_tensor(name, &i.ty, t),
            _ => Err(RunError::UnknownState(name.to_string())),
        }
    }

    fn data_input_names(&self) -> String {
        self.inputs.iter().filter(|i| i.role == InputRole::Input).map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

fn check_tensor(name: &str, want: &TensorType, t: &HostTensor) -> Result<(), RunError> {
    if &t.ty() != want {
        return Err(RunError::InputType { name: name.to_string(), expected: want.clone(), got: t.ty() });
    }
    if t.has_non_finite() {
        return Err(RunError::NonFinite { name: name.to_string() });
    }
    Ok(())
}

/// A compiled program.
pub trait Executable: Send {
    fn signature(&self) -> &Signature;
    /// Sets a param/state value (checked against the signature).
    fn set_state(&mut self, name: &str, value: HostTensor) -> Result<(), RunError>;
    /// The current value of a param/state, if set.
    fn state(&self, name: &str) -> Option<HostTensor>;
    /// Runs once with the per-call inputs; returns every named output.
    /// Updates are written back to the params/state.
    fn run(&mut self, inputs: &BTreeMap<String, HostTensor>) -> Result<BTreeMap<String, HostTensor>, RunError>;

    /// The backend's compiled plan as text (kernels, buffer plan, generated
    /// code), for inspection; `None` for backends without one.
    fn plan_text(&self) -> Option<String> {
        None
    }

    /// Peak bytes of tensor storage while running, for backends that plan
    /// memory ahead of time.
    fn peak_bytes(&self) -> Option<usize> {
        None
    }

    /// The device the program runs on (a GPU adapter's name and driver),
    /// for backends that have one.
    fn device(&self) -> Option<String> {
        None
    }

    /// Every param/state that has a value.
    fn state_dict(&self) -> BTreeMap<String, HostTensor> {
        self.signature()
            .inputs
            .iter()
            .filter(|i| i.role.is_persistent())
            .filter_map(|i| self.state(&i.name).map(|t| (i.name.clone(), t)))
            .collect()
    }
}

/// A backend compiles graphs into executables.
pub trait Backend {
    fn name(&self) -> &'static str;
    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, RunError>;
}
