//! kiln-passes: graph transformations and the pipeline that runs them.
//!
//! ```
//! use kiln_ir::{Graph, f32_shape};
//! use kiln_passes::{PassCx, PassManager};
//! let mut g = Graph::new();
//! let x = g.input("x", f32_shape([4])).unwrap();
//! let a = g.exp(x).unwrap();
//! let b = g.exp(x).unwrap();
//! let _dead = g.neg(a).unwrap();
//! let y = g.add(a, b).unwrap();
//! g.set_output("y", y).unwrap();
//! let report = PassManager::from_names(&["cse", "dce"]).unwrap().run(&mut g, &mut PassCx::new()).unwrap();
//! assert_eq!((report.nodes_in, report.nodes_out()), (5, 3));
//! ```

mod pass;

pub mod const_fold;
pub mod cse;
pub mod dce;
pub mod dump;
pub mod manager;
pub mod registry;
pub mod row_stack;
pub mod slab_concat;
mod sum_tree;

pub mod autodiff;
pub mod egraph;
pub mod loop_program;
pub mod memory_plan;
pub mod partition;

pub use const_fold::ConstFold;
pub use cse::Cse;
pub use dce::Dce;
pub use dump::{dump_dir_from_env, write_dump_file, write_dump_group};
pub use manager::{PassManager, PassRow, PipelineReport};
pub use pass::{grad_wrt_nodes, Changed, ConstEvaluator, Pass, PassCx, PassError};
pub use registry::{default_pipeline, pass_by_name};
pub use row_stack::RowStack;
pub use slab_concat::SlabConcat;
