//! Learning-rate schedules, evaluated on the host between steps and fed to
//! the program's `optim.lr` state (no recompilation):
//! `program.set_lr(sched.lr(step))?`.

use std::f64::consts::PI;

/// A learning rate as a function of the 0-based step (or epoch) index.
pub trait LrSchedule {
    fn lr(&self, step: usize) -> f64;
}

/// A constant learning rate.
#[derive(Debug, Clone, Copy)]
pub struct Constant(pub f64);

impl LrSchedule for Constant {
    fn lr(&self, _: usize) -> f64 {
        self.0
    }
}

/// `base * gamma^(step / step_size)` (PyTorch `StepLR`).
#[derive(Debug, Clone, Copy)]
pub struct StepLr {
    pub base: f64,
    pub step_size: usize,
    pub gamma: f64,
}

impl LrSchedule for StepLr {
    fn lr(&self, step: usize) -> f64 {
        // powf: an `as i32` exponent would wrap past 2^31 steps.
        self.base * self.gamma.powf((step / self.step_size.max(1)) as f64)
    }
}

/// `base * gamma^step` (PyTorch `ExponentialLR`).
#[derive(Debug, Clone, Copy)]
pub struct ExponentialLr {
    pub base: f64,
    pub gamma: f64,
}

impl LrSchedule for ExponentialLr {
    fn lr(&self, step: usize) -> f64 {
        self.base * self.gamma.powf(step as f64)
    }
}

/// Cosine annealing from `base` to `eta_min` over `t_max` steps, then held
/// at `eta_min` (PyTorch `CosineAnnealingLR` closed form, first period).
#[derive(Debug, Clone, Copy)]
pub struct Cosine {
    pub base: f64,
    pub t_max: usize,
    pub eta_min: f64,
}

impl LrSchedule for Cosine {
    fn lr(&self, step: usize) -> f64 {
        let t = step.min(self.t_max) as f64;
        self.eta_min + (self.base - self.eta_min) * (1.0 + (PI * t / self.t_max.max(1) as f64).cos()) / 2.0
    }
}

/// Linear warm-up from `start_factor * lr` to the inner schedule's lr over
/// `warmup` steps, then the inner schedule (shifted by `warmup`).
#[derive(Debug, Clone, Copy)]
pub struct Warmup<S> {
    pub warmup: usize,
    pub start_factor: f64,
    pub inner: S,
}

impl<S: LrSchedule> LrSchedule for Warmup<S> {
    fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            let f = self.start_factor + (1.0 - self.start_factor) * step as f64 / self.warmup as f64;
            f * self.inner.lr(0)
        } else {
            self.inner.lr(step - self.warmup)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let s = StepLr { base: 0.1, step_size: 10, gamma: 0.5 };
        assert_eq!(s.lr(0), 0.1);
        assert_eq!(s.lr(9), 0.1);
        assert!((s.lr(25) - 0.025).abs() < 1e-15);
        let c = Cosine { base: 1.0, t_max: 100, eta_min: 0.0 };
        assert!((c.lr(0) - 1.0).abs() < 1e-12);
        assert!((c.lr(50) - 0.5).abs() < 1e-12);
        assert!(c.lr(100).abs() < 1e-12 && c.lr(200).abs() < 1e-12);
        let w = Warmup { warmup: 4, start_factor: 0.0, inner: Constant(0.2) };
        assert_eq!(w.lr(0), 0.0);
        assert!((w.lr(2) - 0.1).abs() < 1e-12);
        assert_eq!(w.lr(4), 0.2);
        assert!((ExponentialLr { base: 1.0, gamma: 0.9 }.lr(2) - 0.81).abs() < 1e-12);
        // Far past 2^31 steps the rate keeps decaying (no exponent wrap-around).
        let far = (1usize << 33) + 5;
        assert_eq!(ExponentialLr { base: 1.0, gamma: 0.9 }.lr(far), 0.0);
        assert_eq!(StepLr { base: 1.0, step_size: 1, gamma: 0.5 }.lr(far), 0.0);
    }
}
