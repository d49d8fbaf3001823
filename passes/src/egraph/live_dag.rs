//! The local search's view of one extraction choice: which classes the
//! roots reach and what they cost, kept up to date under one-class
//! switches (see [`LiveDag`]).

use super::extract::Ix;

/// The chosen DAG kept up to date under one-class switches, so the local
/// search prices a move by what it adds and drops (usually a few classes)
/// instead of re-walking the whole DAG: quadratic on long unrolled graphs
/// (a 512-step LSTM is 29,000 classes).
///
/// `refs[c]` counts the roots and the chosen nodes of reached classes that
/// read `c`; a class is reached while it is above 0, and `total` is the cost
/// of the reached classes' chosen nodes. `topo` orders classes so that
/// every chosen node's children come before it, which answers most cycle
/// checks at once.
pub(super) struct LiveDag<'a> {
    ix: &'a Ix,
    pub choice: Vec<Option<usize>>,
    pub refs: Vec<u32>,
    pub total: f64,
    topo: Vec<u32>,
}

impl<'a> LiveDag<'a> {
    pub fn new(ix: &'a Ix, choice: Vec<Option<usize>>, roots: &[usize]) -> LiveDag<'a> {
        let n = ix.classes.len();
        let mut d = LiveDag { ix, choice, refs: vec![0; n], total: 0.0, topo: vec![0; n] };
        for &r in roots {
            d.total += d.add_ref(r);
        }
        d.order();
        d
    }

    fn kids(&self, c: usize) -> &'a [usize] {
        match self.choice[c] {
            Some(ni) => {
                let g = self.ix.start[c] + ni;
                &self.ix.kids[self.ix.kid_start[g]..self.ix.kid_start[g + 1]]
            }
            None => &[],
        }
    }

    fn own_cost(&self, c: usize) -> f64 {
        self.choice[c].map_or(0.0, |ni| self.ix.cost[self.ix.start[c] + ni])
    }

    /// One more reference to `c`; returns the cost that became reached.
    fn add_ref(&mut self, c: usize) -> f64 {
        let mut gained = 0.0;
        let mut stack = vec![c];
        while let Some(k) = stack.pop() {
            self.refs[k] += 1;
            if self.refs[k] == 1 {
                gained += self.own_cost(k);
                stack.extend_from_slice(self.kids(k));
            }
        }
        gained
    }

    /// One reference fewer to `c`; returns the cost that became unreached.
    fn drop_ref(&mut self, c: usize) -> f64 {
        let mut lost = 0.0;
        let mut stack = vec![c];
        while let Some(k) = stack.pop() {
            self.refs[k] -= 1;
            if self.refs[k] == 0 {
                lost += self.own_cost(k);
                stack.extend_from_slice(self.kids(k));
            }
        }
        lost
    }

    /// Renumbers `topo` by a post-order walk of every class's choice.
    pub fn order(&mut self) {
        let n = self.ix.classes.len();
        let mut done = vec![false; n];
        let mut next = 0u32;
        for s in 0..n {
            if done[s] {
                continue;
            }
            let mut stack = vec![(s, false)];
            while let Some((c, exiting)) = stack.pop() {
                if exiting {
                    if !done[c] {
                        done[c] = true;
                        self.topo[c] = next;
                        next += 1;
                    }
                    continue;
                }
                if done[c] {
                    continue;
                }
                stack.push((c, true));
                stack.extend(self.kids(c).iter().filter(|&&k| !done[k]).map(|&k| (k, false)));
            }
        }
    }

    /// Whether choosing node `ni` for `c` would make `c` reach itself. A
    /// child ordered before `c` cannot reach it; only the others are walked,
    /// and only through classes ordered after `c`.
    fn would_cycle(&self, c: usize, ni: usize) -> bool {
        let t = self.topo[c];
        let mut stack: Vec<usize> = self.ix.nodes[c][ni].2.iter().copied().filter(|&k| self.topo[k] >= t).collect();
        let mut seen = rustc_hash::FxHashSet::default();
        while let Some(k) = stack.pop() {
            if k == c {
                return true;
            }
            if seen.insert(k) {
                stack.extend(self.kids(k).iter().copied().filter(|&kk| self.topo[kk] >= t));
            }
        }
        false
    }

    /// Chooses node `ni` for the reached class `c` and returns the change in
    /// total cost; `None` (nothing changed) when that would make a cycle.
    /// The order is left as it was: call `keep` to accept the move or
    /// `switch_back` to undo it.
    pub fn try_switch(&mut self, c: usize, ni: usize) -> Option<f64> {
        if self.would_cycle(c, ni) {
            return None;
        }
        Some(self.set(c, ni))
    }

    /// Accepts the move just made at `c`: renumbers the order if a new
    /// child came after `c` in it.
    pub fn keep(&mut self, c: usize) {
        if self.kids(c).iter().any(|&k| self.topo[k] >= self.topo[c]) {
            self.order();
        }
    }

    /// Undoes a `try_switch` of `c` whose previous choice was `old` (the
    /// order was never changed, so it is valid again).
    pub fn switch_back(&mut self, c: usize, old: Option<usize>) {
        if let Some(ni) = old {
            self.set(c, ni);
        }
    }

    fn set(&mut self, c: usize, ni: usize) -> f64 {
        let old_kids = self.kids(c);
        let old_cost = self.own_cost(c);
        self.choice[c] = Some(ni);
        let mut delta = self.own_cost(c) - old_cost;
        // Add before dropping, so a child both nodes read stays reached.
        for &k in self.kids(c) {
            delta += self.add_ref(k);
        }
        for &k in old_kids {
            delta -= self.drop_ref(k);
        }
        self.total += delta;
        delta
    }
}
