//! (being written)

use kiln_ir::NodeId;

use crate::lower::{Cx, Shader};
use crate::WgpuError;

pub fn lower(cx: &Cx, n: NodeId) -> Result<Vec<Shader>, WgpuError> {
    Err(WgpuError::Unsupported(format!("{n}: {} is not lowered to WGSL yet", cx.g.op(n).name())))
}
