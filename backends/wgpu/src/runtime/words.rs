//! Host tensors <-> the device's 32-bit words: f32 by its bits, i64 and
//! i32 as i32 (an i64 that does not fit is an error, never a wrap), bool
//! as 0/1.

use kiln_ir::{DType, HostTensor, TensorData, TensorType};

use crate::WgpuError;

/// The words of `t`; `what` names it in errors.
pub fn to_words(what: &str, t: &HostTensor) -> Result<Vec<u32>, WgpuError> {
    Ok(match t.data() {
        TensorData::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as u32).collect(),
        TensorData::I64(v) => {
            let mut out = Vec::with_capacity(v.len());
            for (i, &x) in v.iter().enumerate() {
                let w = i32::try_from(x).map_err(|_| {
                    WgpuError::Unsupported(format!("{what}[{i}] = {x} does not fit the device's 32-bit integers"))
                })?;
                out.push(w as u32);
            }
            out
        }
        TensorData::Bool(v) => v.iter().map(|&b| (b != 0) as u32).collect(),
        TensorData::F64(_) => return Err(WgpuError::Unsupported(format!("{what} is f64 (the device computes in f32)"))),
    })
}

/// A host tensor of type `ty` from its words (little-endian bytes).
pub fn from_bytes(ty: &TensorType, bytes: &[u8]) -> Result<HostTensor, WgpuError> {
    let words: Vec<u32> = bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if words.len() != ty.numel() {
        return Err(WgpuError::Internal(format!("read {} words for a {ty}", words.len())));
    }
    let data = match ty.dtype {
        DType::F32 => TensorData::F32(words.iter().map(|&w| f32::from_bits(w)).collect()),
        DType::I32 => TensorData::I32(words.iter().map(|&w| w as i32).collect()),
        DType::I64 => TensorData::I64(words.iter().map(|&w| w as i32 as i64).collect()),
        DType::Bool => TensorData::Bool(words.iter().map(|&w| (w != 0) as u8).collect()),
        DType::F64 => return Err(WgpuError::Unsupported("f64 values".into())),
    };
    HostTensor::new(ty.shape.clone(), data).map_err(|e| WgpuError::Internal(e.to_string()))
}
