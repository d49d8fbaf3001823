//! The interpreter's one value representation: every element as f64 next to
//! the node's static type. Integers and bools are exact in f64 (kiln's index
//! tensors stay far below 2^53), so one code path serves every dtype.

use kiln_ir::{DType, HostTensor, TensorData, TensorType};

pub(crate) use kiln_ir::{broadcast_strides, row_major_strides as strides};

use crate::Precision;

/// A tensor value inside the interpreter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Val {
    pub ty: TensorType,
    pub data: Vec<f64>,
}

impl Val {
    pub fn from_host(t: &HostTensor) -> Val {
        Val { ty: t.ty(), data: t.to_f64_vec() }
    }

    pub fn dims(&self) -> &[usize] {
        self.ty.shape.dims()
    }

    /// Converts to a host tensor of the node's type; in f64 mode float
    /// results are handed out as f64 so no precision is lost on the way out.
    pub fn to_host(&self, precision: Precision) -> HostTensor {
        let ty = host_type(&self.ty, precision);
        match ty.dtype {
            DType::F64 => HostTensor::new(ty.shape, TensorData::F64(self.data.clone()))
                .expect("value length matches its type"),
            _ => HostTensor::from_f64_values(&ty, &self.data),
        }
    }
}

/// The dtype a value of static type `ty` is returned with.
pub(crate) fn host_type(ty: &TensorType, precision: Precision) -> TensorType {
    match (precision, ty.dtype) {
        (Precision::F64, DType::F32) => TensorType::new(DType::F64, ty.shape.clone()),
        _ => ty.clone(),
    }
}

/// Brings freshly computed elements into the domain of `dtype`
/// (`kiln_ir::scalar::round_to`), except that f64 mode keeps f32 results
/// unrounded.
pub(crate) fn finish(dtype: DType, data: &mut [f64], precision: Precision) {
    if dtype == DType::F32 && precision == Precision::F64 {
        return;
    }
    for v in data.iter_mut() {
        *v = kiln_ir::scalar::round_to(dtype, *v);
    }
}

/// For every position of an `out_dims` array in row-major order, the source
/// index `offset + sum(i_k * strides[k])`. This one walk implements
/// broadcasting (stride 0), permutation and slicing.
pub(crate) fn strided_indices(out_dims: &[usize], strides: &[usize], offset: usize) -> Vec<usize> {
    let n: usize = out_dims.iter().product();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let r = out_dims.len();
    if r == 0 {
        out.push(offset);
        return out;
    }
    let inner = out_dims[r - 1];
    let inner_stride = strides[r - 1];
    let mut idx = vec![0usize; r];
    let mut base = offset;
    loop {
        for j in 0..inner {
            out.push(base + j * inner_stride);
        }
        // Advance the odometer over the outer axes.
        let mut k = r - 1;
        loop {
            if k == 0 {
                return out;
            }
            k -= 1;
            idx[k] += 1;
            base += strides[k];
            if idx[k] < out_dims[k] {
                break;
            }
            base -= strides[k] * idx[k];
            idx[k] = 0;
        }
    }
}

/// `data` (of shape `in_dims`) broadcast to `out_dims`, borrowed when the
/// shapes already agree.
pub(crate) fn broadcast_data<'a>(data: &'a [f64], in_dims: &[usize], out_dims: &[usize]) -> std::borrow::Cow<'a, [f64]> {
    if in_dims == out_dims {
        return std::borrow::Cow::Borrowed(data);
    }
    let idx = strided_indices(out_dims, &broadcast_strides(in_dims, out_dims), 0);
    std::borrow::Cow::Owned(idx.into_iter().map(|i| data[i]).collect())
}

/// Reads an index element, checking it lies in `0..bound`.
pub(crate) fn index_at(v: f64, bound: usize) -> Result<usize, crate::InterpError> {
    let i = v as i64;
    if i < 0 || i as u64 >= bound as u64 {
        return Err(crate::InterpError::IndexOutOfRange { index: i, bound });
    }
    Ok(i as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_walk_covers_broadcast_permute_and_offset() {
        assert_eq!(strided_indices(&[2, 3], &[3, 1], 0), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(strided_indices(&[3, 2], &[1, 3], 0), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(strided_indices(&[2, 2], &[0, 1], 5), vec![5, 6, 5, 6]);
        assert_eq!(strided_indices(&[], &[], 4), vec![4]);
        assert_eq!(strided_indices(&[2, 0], &[1, 1], 0), Vec::<usize>::new());
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), vec![0, 1, 0]);
    }

    #[test]
    fn finish_rounds_f32_only_in_f32_mode_and_truncates_ints() {
        let mut v = vec![0.1, -2.7, 2.7];
        finish(DType::F32, &mut v, Precision::F64);
        assert_eq!(v, vec![0.1, -2.7, 2.7]);
        finish(DType::F32, &mut v, Precision::F32);
        assert_eq!(v[0], 0.1f32 as f64);
        let mut i = vec![-2.7, 2.7];
        finish(DType::I64, &mut i, Precision::F32);
        assert_eq!(i, vec![-2.0, 2.0]);
        let mut b = vec![0.0, -3.0];
        finish(DType::Bool, &mut b, Precision::F32);
        assert_eq!(b, vec![0.0, 1.0]);
    }
}
