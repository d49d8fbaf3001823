//! Raw tensor storage: 64-byte aligned zeroed byte buffers, and typed
//! element access by dtype for the portable kernels.

use std::alloc::{alloc_zeroed, dealloc, Layout};

use kiln_ir::{DType, HostTensor, TensorData, TensorType};

/// An owned, 64-byte aligned, zero-initialized byte buffer.
///
/// Allocated through the system's zeroed allocation at its natural
/// alignment (calloc: large buffers come from fresh zero pages that are
/// only touched when first used) with 64 spare bytes to align the start;
/// a 64-aligned zeroed allocation would memset every page up front, which
/// made compiling a large program's arena cost as much as its passes.
pub struct AlignedBuf {
    /// The allocation; `ptr` is the first 64-aligned byte in it.
    base: *mut u8,
    ptr: *mut u8,
    len: usize,
}

// The buffer is plain memory owned by one executable.
unsafe impl Send for AlignedBuf {}

const ALIGN: usize = 64;

fn layout_for(len: usize) -> Layout {
    Layout::from_size_align(len.max(ALIGN).checked_add(ALIGN).expect("buffer size fits a layout"), 16).expect("buffer size fits a layout")
}

impl AlignedBuf {
    pub fn zeroed(len: usize) -> AlignedBuf {
        let layout = layout_for(len);
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        if base.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: at most ALIGN - 1 bytes past `base`, inside the allocation,
        // which has ALIGN spare bytes after `len`.
        let ptr = unsafe { base.add(base.align_offset(ALIGN)) };
        AlignedBuf { base, ptr, len }
    }
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr is valid for len bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for len bytes and uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `zeroed`.
        unsafe { dealloc(self.base, layout_for(self.len)) }
    }
}

/// Reads element `i` of a buffer of dtype `d` widened to f64.
///
/// # Safety
/// `p` must be valid for reading element `i` of dtype `d`.
#[inline]
pub unsafe fn load(d: DType, p: *const u8, i: usize) -> f64 {
    unsafe {
        match d {
            DType::F32 => *(p as *const f32).add(i) as f64,
            DType::F64 => *(p as *const f64).add(i),
            DType::I64 => *(p as *const i64).add(i) as f64,
            DType::I32 => *(p as *const i32).add(i) as f64,
            DType::Bool => (*p.add(i) != 0) as u8 as f64,
        }
    }
}

/// Writes element `i` of dtype `d` (floats round, ints truncate, bools are
/// `v != 0`).
///
/// # Safety
/// `p` must be valid for writing element `i` of dtype `d`.
#[inline]
pub unsafe fn store(d: DType, p: *mut u8, i: usize, v: f64) {
    unsafe {
        match d {
            DType::F32 => *(p as *mut f32).add(i) = v as f32,
            DType::F64 => *(p as *mut f64).add(i) = v,
            DType::I64 => *(p as *mut i64).add(i) = v as i64,
            DType::I32 => *(p as *mut i32).add(i) = v as i32,
            DType::Bool => *p.add(i) = (v != 0.0) as u8,
        }
    }
}

/// The raw little-endian bytes of a host tensor.
pub fn host_bytes(t: &HostTensor) -> &[u8] {
    fn b<T>(v: &[T]) -> &[u8] {
        // SAFETY: plain-old-data elements viewed as bytes.
        unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
    }
    match t.data() {
        TensorData::F32(v) => b(v),
        TensorData::F64(v) => b(v),
        TensorData::I64(v) => b(v),
        TensorData::I32(v) => b(v),
        TensorData::Bool(v) => b(v),
    }
}

/// A host tensor of type `ty` copied from raw bytes.
pub fn tensor_from_bytes(ty: &TensorType, bytes: &[u8]) -> HostTensor {
    let n = ty.numel();
    fn v<T: Copy + Default>(bytes: &[u8], n: usize) -> Vec<T> {
        let mut out = vec![T::default(); n];
        // SAFETY: `out` holds exactly n elements and `bytes` at least as many bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr() as *mut u8, n * std::mem::size_of::<T>()) };
        out
    }
    let data = match ty.dtype {
        DType::F32 => TensorData::F32(v(bytes, n)),
        DType::F64 => TensorData::F64(v(bytes, n)),
        DType::I64 => TensorData::I64(v(bytes, n)),
        DType::I32 => TensorData::I32(v(bytes, n)),
        DType::Bool => TensorData::Bool(v(bytes, n)),
    };
    HostTensor::new(ty.shape.clone(), data).expect("byte count matches the type")
}

#[cfg(test)]
mod tests {
    use super::AlignedBuf;

    #[test]
    fn buffers_are_aligned_zeroed_and_writable_to_their_end() {
        for len in [0, 1, 63, 64, 65, 4096, 3 << 20] {
            let mut b = AlignedBuf::zeroed(len);
            assert_eq!(b.ptr() as usize % 64, 0, "len {len}");
            assert_eq!(b.bytes().len(), len);
            assert!(b.bytes().iter().all(|&x| x == 0), "len {len}");
            b.bytes_mut().fill(0xAB);
            assert!(b.bytes().iter().all(|&x| x == 0xAB));
        }
    }
}
