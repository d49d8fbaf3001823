//! Compiled programs reused across trials (hyper-parameter search, K-fold):
//! a program is compiled once per key (what changes the graph: the batch
//! shape, or a constant baked into the optimizer update) and every trial
//! starts it from the state it was compiled with: the initial weights and
//! zeroed optimizer state, restored in place. The learning rate is state,
//! and so is the weight decay of an optimizer built with
//! `tunable_weight_decay()`; [`ProgramCache::trial`] sets both per trial,
//! so a search over them compiles once per batch size.

use std::collections::BTreeMap;

use super::Hyper;
use crate::{HostTensor, Program, Result};

pub struct ProgramCache<K> {
    programs: BTreeMap<K, (Program, BTreeMap<String, HostTensor>)>,
    compiles: usize,
}

impl<K: Ord> Default for ProgramCache<K> {
    fn default() -> Self {
        ProgramCache { programs: BTreeMap::new(), compiles: 0 }
    }
}

impl<K: Ord> ProgramCache<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The program for `key`, compiled by `build` on first use, reset to
    /// its initial state (a fresh model) every time it is handed out.
    pub fn fresh(&mut self, key: K, build: impl FnOnce() -> Result<Program>) -> Result<&mut Program> {
        let entry = match self.programs.entry(key) {
            std::collections::btree_map::Entry::Occupied(e) => {
                let (p, init) = e.into_mut();
                p.load_state_dict(init)?;
                p
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                let p = build()?;
                self.compiles += 1;
                let init = p.state_dict();
                &mut v.insert((p, init)).0
            }
        };
        Ok(entry)
    }

    /// [`fresh`](Self::fresh), then `hyper`'s learning rate and weight
    /// decay set. Key by what changes shapes (the batch size): the decay
    /// must be state (`tunable_weight_decay()`), and a program whose decay
    /// is a compiled constant is an error here rather than a trial that
    /// silently trains with another decay than the one it reports.
    pub fn trial(&mut self, key: K, hyper: &Hyper, build: impl FnOnce() -> Result<Program>) -> Result<&mut Program> {
        let p = self.fresh(key, build)?;
        p.set_lr(hyper.lr)?;
        p.set_weight_decay(hyper.weight_decay)?;
        Ok(p)
    }

    /// How many programs have been compiled.
    pub fn compiles(&self) -> usize {
        self.compiles
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{self, Module};
    use crate::optim::Rule;
    use crate::{f32_shape, loss, optim, Builder, CompileOptions, ParamStore};

    fn step(batch: usize) -> Result<Program> {
        step_with(batch, optim::Adam::new(0.1))
    }

    fn step_with(batch: usize, opt: impl optim::Optimizer) -> Result<Program> {
        let mut store = ParamStore::new(0);
        let lin = nn::Linear::new(&mut store, "lin", 2, 1)?;
        let mut b = Builder::train();
        let x = b.input("x", f32_shape([batch, 2]))?;
        let y = b.input("y", f32_shape([batch, 1]))?;
        let p = lin.forward(&mut b, x)?;
        let l = loss::mse(&mut b, p, y, loss::Reduction::Mean)?;
        crate::compile(&crate::train_step(&b, l, &store, opt)?, CompileOptions::interp())
    }

    #[test]
    fn one_compile_per_key_and_a_fresh_state_per_trial() {
        let mut cache = ProgramCache::new();
        let x = HostTensor::from_f32([4, 2], vec![1.0; 8]).unwrap();
        let y = HostTensor::from_f32([4, 1], vec![3.0; 4]).unwrap();
        let p = cache.fresh(4, || step(4)).unwrap();
        let init = p.state_dict();
        p.set_lr(0.05).unwrap();
        let first = p.run(&[("x", &x), ("y", &y)]).unwrap()["loss"].scalar().unwrap();
        p.run(&[("x", &x), ("y", &y)]).unwrap();
        assert_ne!(p.state_dict(), init, "training moved the weights");
        let p = cache.fresh(4, || panic!("a second compile for the same key")).unwrap();
        assert_eq!(p.state_dict(), init, "weights, optimizer moments and lr are back to their initial values");
        p.set_lr(0.05).unwrap();
        assert_eq!(p.run(&[("x", &x), ("y", &y)]).unwrap()["loss"].scalar().unwrap(), first, "the same trial gives the same numbers");
        assert_eq!(cache.compiles(), 1);
        cache.fresh(8, || step(8)).unwrap();
        assert_eq!(cache.compiles(), 2);
        assert!(cache.fresh(16, || Err(crate::Error::Config("no".into()))).is_err());
    }

    #[test]
    fn trials_over_lr_and_weight_decay_compile_once_per_batch_size() {
        let x = HostTensor::from_f32([4, 2], vec![1.0, -2.0, 0.5, 3.0, -1.0, 0.0, 2.0, 1.0]).unwrap();
        let y = HostTensor::from_f32([4, 1], vec![3.0, -1.0, 0.0, 2.0]).unwrap();
        let tunable = || step_with(4, optim::Adam::adamw(0.1).weight_decay(0.0).tunable_weight_decay());
        let mut cache = ProgramCache::new();
        let mut weights = Vec::new();
        for wd in [0.0, 0.5] {
            let h = Hyper { lr: 0.05, weight_decay: wd, batch_size: 4 };
            let p = cache.trial(4, &h, tunable).unwrap();
            for _ in 0..3 {
                p.run(&[("x", &x), ("y", &y)]).unwrap();
            }
            // The same trial compiled with the decay as a constant.
            let mut fixed = step_with(4, optim::Adam::adamw(0.1).weight_decay(wd)).unwrap();
            fixed.set_lr(0.05).unwrap();
            for _ in 0..3 {
                fixed.run(&[("x", &x), ("y", &y)]).unwrap();
            }
            assert_eq!(p.model_state_dict(), fixed.model_state_dict(), "weight decay {wd}");
            weights.push(p.model_state_dict());
        }
        assert_ne!(weights[0], weights[1], "the decay took effect");
        assert_eq!(cache.compiles(), 1);
        // A decay baked in as a constant cannot follow the trial's.
        let h = Hyper { lr: 0.05, weight_decay: 0.5, batch_size: 8 };
        let e = cache.trial(8, &h, || step_with(8, optim::Adam::adamw(0.1))).unwrap_err().to_string();
        assert!(e.contains("tunable_weight_decay"), "{e}");
    }
}
