//! `ConstEvaluator` on top of kiln-interp, so constant folding in tests
//! computes exactly what the reference interpreter would at run time.

use kiln_ir::{HostTensor, Op, TensorType};
use kiln_passes::ConstEvaluator;

/// Evaluates in f32, the precision compiled programs run in.
#[derive(Debug, Clone, Copy, Default)]
pub struct InterpEvaluator;

impl ConstEvaluator for InterpEvaluator {
    fn eval(&self, op: &Op, ty: &TensorType, operands: &[&HostTensor]) -> Result<HostTensor, String> {
        kiln_interp::eval_op(op, ty, operands, kiln_interp::Precision::F32)
    }
}
