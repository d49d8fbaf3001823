//! Compiled programs reused across trials (hyper-parameter search, K-fold):
//! a program is compiled once per key (what changes the graph: the batch
//! shape, or a constant baked into the optimizer update such as weight
//! decay) and every trial starts it from the state it was compiled with:
//! the initial weights and zeroed optimizer state, restored in place. The
//! learning rate is state, so it is set per trial without recompiling.

use std::collections::BTreeMap;

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

    /// How many programs have been compiled.
    pub fn compiles(&self) -> usize {
        self.compiles
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{self, Module};
    use crate::{f32_shape, loss, optim, Builder, CompileOptions, ParamStore};

    fn step(batch: usize) -> Result<Program> {
        let mut store = ParamStore::new(0);
        let lin = nn::Linear::new(&mut store, "lin", 2, 1)?;
        let mut b = Builder::train();
        let x = b.input("x", f32_shape([batch, 2]))?;
        let y = b.input("y", f32_shape([batch, 1]))?;
        let p = lin.forward(&mut b, x)?;
        let l = loss::mse(&mut b, p, y, loss::Reduction::Mean)?;
        crate::compile(&crate::train_step(&b, l, &store, optim::Adam::new(0.1))?, CompileOptions::interp())
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
}
