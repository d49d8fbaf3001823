//! Static shapes and tensor types.

use std::fmt;

use crate::DType;

/// A static shape: one extent per axis. Rank 0 is a scalar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Shape {
        Shape(dims.into())
    }

    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// The element count. Only for shapes already known to fit (every shape
    /// inside a built graph does); see [`Shape::checked_numel`].
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// The element count, `None` when it does not fit in `usize` (a shape
    /// from user input that no buffer could ever hold).
    pub fn checked_numel(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        row_major_strides(&self.0)
    }

    /// NumPy broadcasting of two shapes; `None` when incompatible.
    pub fn broadcast(a: &Shape, b: &Shape) -> Option<Shape> {
        let r = a.rank().max(b.rank());
        let mut out = vec![0; r];
        for i in 0..r {
            let da = if i + a.rank() >= r { a.0[i + a.rank() - r] } else { 1 };
            let db = if i + b.rank() >= r { b.0[i + b.rank() - r] } else { 1 };
            out[i] = if da == db {
                da
            } else if da == 1 {
                db
            } else if db == 1 {
                da
            } else {
                return None;
            };
        }
        Some(Shape(out))
    }

    /// Whether `self` broadcasts to `target` under NumPy rules.
    pub fn broadcasts_to(&self, target: &Shape) -> bool {
        if self.rank() > target.rank() {
            return false;
        }
        let off = target.rank() - self.rank();
        self.0.iter().enumerate().all(|(i, &d)| d == 1 || d == target.0[i + off])
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Shape {
        Shape(v)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Shape {
        Shape(v.to_vec())
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Shape {
        Shape(v.to_vec())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

/// The static type of a value: dtype and shape, printed `f32[2,3]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, shape: impl Into<Shape>) -> TensorType {
        TensorType { dtype, shape: shape.into() }
    }

    pub fn f32(shape: impl Into<Shape>) -> TensorType {
        TensorType::new(DType::F32, shape)
    }

    pub fn i64(shape: impl Into<Shape>) -> TensorType {
        TensorType::new(DType::I64, shape)
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    pub fn size_bytes(&self) -> usize {
        self.numel() * self.dtype.size_bytes()
    }

    /// The byte size, `None` when it exceeds what one allocation can hold
    /// (`isize::MAX`), so that such a type is refused before any arithmetic
    /// on it can overflow.
    pub fn checked_size_bytes(&self) -> Option<usize> {
        self.shape.checked_numel()?.checked_mul(self.dtype.size_bytes()).filter(|&b| b <= isize::MAX as usize)
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

/// Shorthand for an f32 tensor type.
pub fn f32_shape(shape: impl Into<Shape>) -> TensorType {
    TensorType::f32(shape)
}

/// Shorthand for an i64 tensor type.
pub fn i64_shape(shape: impl Into<Shape>) -> TensorType {
    TensorType::i64(shape)
}

/// Row-major strides in elements of an array of `dims`.
pub fn row_major_strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Strides that read an array of `in_dims` as if broadcast to `out_dims`
/// (NumPy rules: 0 on new and size-1 axes; the caller has checked that the
/// shapes are compatible).
pub fn broadcast_strides(in_dims: &[usize], out_dims: &[usize]) -> Vec<usize> {
    let s = row_major_strides(in_dims);
    let off = out_dims.len() - in_dims.len();
    (0..out_dims.len()).map(|i| if i < off || in_dims[i - off] == 1 { 0 } else { s[i - off] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        let s = |v: &[usize]| Shape::from(v);
        assert_eq!(Shape::broadcast(&s(&[2, 1, 3]), &s(&[4, 1])), Some(s(&[2, 4, 3])));
        assert_eq!(Shape::broadcast(&s(&[]), &s(&[5])), Some(s(&[5])));
        assert_eq!(Shape::broadcast(&s(&[2, 3]), &s(&[3, 2])), None);
        assert!(s(&[1, 3]).broadcasts_to(&s(&[4, 3])));
        assert!(!s(&[2, 3]).broadcasts_to(&s(&[4, 3])));
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(Shape::from([2, 3, 4]).strides(), vec![12, 4, 1]);
        assert_eq!(Shape::scalar().strides(), Vec::<usize>::new());
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), vec![0, 1, 0]);
    }
}
