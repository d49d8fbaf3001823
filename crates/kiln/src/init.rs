//! Parameter initializers and the seeded random generator behind them.
//!
//! Every initializer draws from a [`Rng`] owned by the parameter store, so a
//! model built twice from one seed is bit-identical. Fan-in/fan-out follow
//! PyTorch's `_calculate_fan_in_and_fan_out`: dim 1 is fan-in, dim 0 is
//! fan-out, both times the receptive field (the product of dims 2..).

use kiln_ir::{HostTensor, Shape};

use crate::Error;

/// xoshiro256** seeded through SplitMix64: small, fast, good enough for
/// initial weights; not cryptographic.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform01(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform01()
    }

    /// Standard normal (Box-Muller; one value per call keeps the stream simple).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform01(); // (0, 1]: log is finite
        let u2 = self.uniform01();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Uniform integer in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        (self.uniform01() * n as f64) as u64 % n.max(1)
    }
}

/// Which fan Kaiming init scales by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FanMode {
    FanIn,
    FanOut,
}

/// The non-linearity whose gain Kaiming/Xavier init uses (PyTorch's `calculate_gain`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Nonlinearity {
    Linear,
    Sigmoid,
    Tanh,
    Relu,
    LeakyRelu(f64),
}

impl Nonlinearity {
    pub fn gain(self) -> f64 {
        match self {
            Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => 2f64.sqrt(),
            Nonlinearity::LeakyRelu(a) => (2.0 / (1.0 + a * a)).sqrt(),
        }
    }
}

/// An initializer: a rule that fills a tensor of a given shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Constant(f64),
    Uniform { low: f64, high: f64 },
    Normal { mean: f64, std: f64 },
    XavierUniform { gain: f64 },
    XavierNormal { gain: f64 },
    KaimingUniform { a: f64, mode: FanMode, nonlinearity: Nonlinearity },
    KaimingNormal { a: f64, mode: FanMode, nonlinearity: Nonlinearity },
}

impl Init {
    /// PyTorch's default for Linear/Conv weights and biases:
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    pub fn torch_default(fan_in: usize) -> Init {
        let b = if fan_in == 0 { 0.0 } else { 1.0 / (fan_in as f64).sqrt() };
        Init::Uniform { low: -b, high: b }
    }

    /// Kaiming uniform for ReLU networks, fan-in mode.
    pub fn kaiming_uniform_relu() -> Init {
        Init::KaimingUniform { a: 0.0, mode: FanMode::FanIn, nonlinearity: Nonlinearity::Relu }
    }

    /// Draws the values for a tensor of `shape` (f32).
    pub fn sample(&self, shape: &Shape, rng: &mut Rng) -> Result<HostTensor, Error> {
        self.check()?;
        let n = shape
            .checked_numel()
            .filter(|n| n.checked_mul(4).is_some_and(|b| b <= isize::MAX as usize))
            .ok_or_else(|| Error::Config(format!("a parameter of shape {shape} has more elements than fit in memory")))?;
        // Refused here, as a typed error, rather than aborting the process
        // inside the allocator.
        let mut v: Vec<f32> = Vec::new();
        v.try_reserve_exact(n).map_err(|e| Error::Config(format!("a parameter of shape {shape}: {e}")))?;
        let (fan_in, fan_out) = fans(shape);
        let need_fans = matches!(
            self,
            Init::XavierUniform { .. } | Init::XavierNormal { .. } | Init::KaimingUniform { .. } | Init::KaimingNormal { .. }
        );
        if need_fans && (shape.rank() < 2 || fan_in == 0 || fan_out == 0) {
            return Err(Error::Config(format!("{self:?} needs a tensor with at least 2 non-empty dims, got {shape}")));
        }
        let fan = |mode: FanMode| if mode == FanMode::FanIn { fan_in } else { fan_out } as f64;
        let kgain = |a: f64, nl: Nonlinearity| match nl {
            Nonlinearity::LeakyRelu(_) => Nonlinearity::LeakyRelu(a).gain(),
            other => other.gain(),
        };
        match *self {
            Init::Zeros => v.resize(n, 0.0),
            Init::Ones => v.resize(n, 1.0),
            Init::Constant(c) => v.resize(n, c as f32),
            Init::Uniform { low, high } => v.extend((0..n).map(|_| rng.uniform(low, high) as f32)),
            Init::Normal { mean, std } => v.extend((0..n).map(|_| (mean + std * rng.normal()) as f32)),
            Init::XavierUniform { gain } => {
                let b = gain * (6.0 / (fan_in as f64 + fan_out as f64)).sqrt();
                v.extend((0..n).map(|_| rng.uniform(-b, b) as f32))
            }
            Init::XavierNormal { gain } => {
                let s = gain * (2.0 / (fan_in as f64 + fan_out as f64)).sqrt();
                v.extend((0..n).map(|_| (s * rng.normal()) as f32))
            }
            Init::KaimingUniform { a, mode, nonlinearity } => {
                let b = kgain(a, nonlinearity) * (3.0 / fan(mode)).sqrt();
                v.extend((0..n).map(|_| rng.uniform(-b, b) as f32))
            }
            Init::KaimingNormal { a, mode, nonlinearity } => {
                let s = kgain(a, nonlinearity) / fan(mode).sqrt();
                v.extend((0..n).map(|_| (s * rng.normal()) as f32))
            }
        }
        Ok(HostTensor::from_f32(shape.clone(), v)?)
    }
}

impl Init {
    /// Every numeric setting must be finite (a NaN or infinite bound would
    /// fill the parameter with NaN/inf, which no run accepts).
    fn check(&self) -> Result<(), Error> {
        let vals: &[f64] = match self {
            Init::Zeros | Init::Ones => &[],
            Init::Constant(c) => &[*c],
            Init::Uniform { low, high } => &[*low, *high],
            Init::Normal { mean, std } => &[*mean, *std],
            Init::XavierUniform { gain } | Init::XavierNormal { gain } => &[*gain],
            Init::KaimingUniform { a, nonlinearity, .. } | Init::KaimingNormal { a, nonlinearity, .. } => match nonlinearity {
                Nonlinearity::LeakyRelu(s) => &[*a, *s],
                _ => &[*a],
            },
        };
        if vals.iter().any(|v| !v.is_finite()) {
            return Err(Error::Config(format!("{self:?}: every setting must be finite")));
        }
        Ok(())
    }
}

/// (fan_in, fan_out) as PyTorch computes them.
pub fn fans(shape: &Shape) -> (usize, usize) {
    let d = shape.dims();
    match d.len() {
        0 => (1, 1),
        1 => (d[0], d[0]),
        _ => {
            // Saturating: with a zero extent elsewhere the tensor is empty
            // even when these products would overflow.
            let rf = d[2..].iter().fold(1usize, |a, &b| a.saturating_mul(b));
            (d[1].saturating_mul(rf), d[0].saturating_mul(rf))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let s = Shape::new([16, 8]);
        let a = Init::XavierUniform { gain: 1.0 }.sample(&s, &mut Rng::new(3)).unwrap();
        let b = Init::XavierUniform { gain: 1.0 }.sample(&s, &mut Rng::new(3)).unwrap();
        let c = Init::XavierUniform { gain: 1.0 }.sample(&s, &mut Rng::new(4)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bounds_and_moments() {
        let s = Shape::new([64, 100, 3, 3]);
        let (fi, fo) = fans(&s);
        assert_eq!((fi, fo), (900, 576));
        let t = Init::kaiming_uniform_relu().sample(&s, &mut Rng::new(1)).unwrap();
        let b = (2f64).sqrt() * (3.0 / 900.0f64).sqrt();
        assert!(t.to_f64_vec().iter().all(|v| v.abs() <= b + 1e-7));
        let t = Init::Normal { mean: 1.0, std: 2.0 }.sample(&Shape::new([20000]), &mut Rng::new(2)).unwrap();
        let v = t.to_f64_vec();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
        assert!((m - 1.0).abs() < 0.05 && (var.sqrt() - 2.0).abs() < 0.05, "{m} {var}");
        let t = Init::XavierNormal { gain: 1.0 }.sample(&Shape::new([200, 300]), &mut Rng::new(5)).unwrap();
        let v = t.to_f64_vec();
        let var = v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64;
        assert!((var - 2.0 / 500.0).abs() < 2e-4, "{var}");
    }

    #[test]
    fn xavier_needs_two_dims() {
        let e = Init::XavierUniform { gain: 1.0 }.sample(&Shape::new([5]), &mut Rng::new(0)).unwrap_err();
        assert!(matches!(&e, Error::Config(m) if m.contains("[5]")), "{e:?}");
    }
}
