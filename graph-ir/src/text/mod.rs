//! The `.kir` text format: `print` and `parse`. The grammar and every op's
//! text form are documented in docs/kir.md.
//!
//! ```
//! use kiln_ir::{text, Graph, f32_shape};
//! let mut g = Graph::new();
//! let x = g.input("x", f32_shape([2, 3])).unwrap();
//! let y = g.relu(x).unwrap();
//! g.set_output("y", y).unwrap();
//! let src = text::print(&g);
//! assert_eq!(src, "%0 = input \"x\" : f32[2,3]\n%1 = relu %0 : f32[2,3]\noutput \"y\" = %1\n");
//! let back = text::parse(&src, "y.kir").unwrap();
//! assert_eq!(text::print(&back), src);
//! ```

mod attrs;
mod build;
mod lexer;
mod numbers;
mod print;
mod suggest;
mod syntax;

pub use build::{parse, parse_with_limits, ParseLimits};
pub use print::{print, print_node};
