//! kiln-ir: the graph IR every other kiln crate builds on.
//!
//! A [`Graph`] holds [`Node`]s (an [`Op`] and its [`TensorType`]) on a petgraph
//! `StableGraph`. Builder methods check shapes when a node is added and return
//! an [`IrError`] naming the op and its operands' `%N`s and types.
//!
//! ```
//! use kiln_ir::{Graph, f32_shape};
//! let mut g = Graph::new();
//! let x = g.input("x", f32_shape([2, 3])).unwrap();
//! let w = g.param("w", f32_shape([3, 4])).unwrap();
//! let y = g.matmul(x, w).unwrap();
//! assert_eq!(g.ty(y).to_string(), "f32[2,4]");
//! let bad = g.matmul(w, w).unwrap_err();
//! assert!(bad.to_string().contains("inner dimensions differ"));
//! ```

mod backend;
mod builder;
mod dtype;
mod error;
mod graph;
pub mod infer;
mod op;
pub mod random;
pub mod scalar;
mod shape;
mod tensor;
pub mod text;
mod verify;

pub use backend::{Backend, Executable, RunError, Signature, SignatureInput};
pub use dtype::DType;
pub use error::{IrError, OperandInfo};
pub use graph::{GradRequest, Graph, Node, NodeId};
pub use op::*;
pub use shape::{broadcast_strides, f32_shape, i64_shape, row_major_strides, Shape, TensorType};
pub use tensor::{read_safetensors, safetensors_from_bytes, safetensors_to_bytes, write_safetensors, HostTensor, TensorData};
pub use verify::verify;
