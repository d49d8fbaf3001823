//! Seals: the proof that a plan entry holding machine code is this
//! installation's own output, so a load may run it.
//!
//! A plan entry is *executable* when its kind is in [`EXECUTABLE`]: a
//! backend would run its bytes as they are (the CPU backend's `mcode`).
//! Such an entry reaches a backend only inside a group its seal verifies:
//! a `seal` entry of the same name whose data is a keyed BLAKE3 MAC, under
//! the user's [`CodeKey`], over every other entry of that name before it
//! (for the CPU: the kernel's Cranelift IR and its machine code, which
//! holds the ISA key), the backend name and the writing kiln's version.
//! The MAC binds the code to the IR it was compiled from: a sealed pair
//! copied into another file installs only where the regenerated IR is that
//! IR, i.e. where this kiln would have produced that very code.
//!
//! Every other kind is data a backend regenerates from the graph and
//! compares (`clif`, `wgsl`, the partition and memory plan): those need no
//! seal. A backend that stores a new kind of executable bytes adds it to
//! [`EXECUTABLE`]; anything else it stores must be regenerated and compared
//! before use.

use std::collections::HashMap;

use super::code_key::CodeKey;
use super::file::PlanEntry;

/// Plan entry kinds whose bytes are run as machine code.
pub const EXECUTABLE: &[&str] = &["mcode"];
/// The kind of a seal entry: 32 bytes of keyed BLAKE3.
pub const SEAL: &str = "seal";
const DOMAIN: &str = "kiln plan seal v1";

/// Whether the kind is a seal or sealed executable bytes: entries a
/// regenerated plan does not contain and is not compared with.
pub fn is_sealed_kind(kind: &str) -> bool {
    kind == SEAL || EXECUTABLE.contains(&kind)
}

fn mac(key: &CodeKey, backend: &str, name: &str, covered: &[&PlanEntry]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key.bytes());
    // Length-prefixed fields, so no two different groups hash the same bytes.
    let mut put = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    put(DOMAIN.as_bytes());
    put(concat!("kiln ", env!("CARGO_PKG_VERSION")).as_bytes());
    put(backend.as_bytes());
    put(name.as_bytes());
    for e in covered {
        put(e.kind.as_bytes());
        put(&e.data);
    }
    h.finalize()
}

/// `plan` with a seal after the last entry of every name that has an
/// executable entry. Without a key, executable entries are dropped instead:
/// unsealed code would never be installed, so it is not worth storing.
pub fn seal_plan(backend: &str, plan: Vec<PlanEntry>, key: Option<&CodeKey>) -> Vec<PlanEntry> {
    let plan: Vec<PlanEntry> = plan.into_iter().filter(|e| e.kind != SEAL && (key.is_some() || !EXECUTABLE.contains(&e.kind.as_str()))).collect();
    let Some(key) = key else { return plan };
    let groups = by_name(&plan);
    let mut out = Vec::with_capacity(plan.len() * 3 / 2);
    for (i, e) in plan.iter().enumerate() {
        out.push(e.clone());
        let group = &groups[e.name.as_str()];
        if group.last() == Some(&i) && group.iter().any(|&x| EXECUTABLE.contains(&plan[x].kind.as_str())) {
            let covered: Vec<&PlanEntry> = group.iter().map(|&x| &plan[x]).collect();
            let m = mac(key, backend, &e.name, &covered);
            out.push(PlanEntry { name: e.name.clone(), kind: SEAL.into(), data: m.as_bytes().to_vec() });
        }
    }
    out
}

/// The indices of the entries of each name, in order.
fn by_name(plan: &[PlanEntry]) -> HashMap<&str, Vec<usize>> {
    let mut m: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in plan.iter().enumerate() {
        m.entry(e.name.as_str()).or_default().push(i);
    }
    m
}

/// A group of plan entries (same name) whose seal verified under the
/// user's key. Only [`verified`] makes one, so holding one is the proof
/// that its executable bytes may be installed.
pub struct Sealed<'a> {
    name: &'a str,
    entries: Vec<&'a PlanEntry>,
}

impl<'a> Sealed<'a> {
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The entries the seal covers, in file order (no seal among them).
    pub fn entries(&self) -> &[&'a PlanEntry] {
        &self.entries
    }
}

/// Every group of `plan` whose seal verifies under `key` (none without a
/// key). An executable entry outside these groups is never to be run. A
/// name is sealed once, as `seal_plan` writes it: a name with several
/// seals has none that counts (so a hostile file cannot make this hash
/// its entries once per seal).
pub fn verified<'a>(backend: &str, plan: &'a [PlanEntry], key: Option<&CodeKey>) -> Vec<Sealed<'a>> {
    let Some(key) = key else { return Vec::new() };
    let mut out = Vec::new();
    let mut groups: Vec<(&str, Vec<usize>)> = by_name(plan).into_iter().collect();
    // In file order, so the result does not depend on hashing.
    groups.sort_by_key(|(_, g)| g[0]);
    for (_, group) in &groups {
        let mut seals = group.iter().filter(|&&x| plan[x].kind == SEAL);
        let (Some(&j), None) = (seals.next(), seals.next()) else { continue };
        let s = &plan[j];
        let Ok(tag) = <[u8; 32]>::try_from(s.data.as_slice()) else { continue };
        let covered: Vec<&PlanEntry> = group.iter().take_while(|&&x| x < j).map(|&x| &plan[x]).collect();
        // blake3::Hash compares in constant time.
        if mac(key, backend, &s.name, &covered) == blake3::Hash::from_bytes(tag) {
            out.push(Sealed { name: &s.name, entries: covered });
        }
    }
    out
}

/// Whether the plan has any seal (if not, no key needs to be read).
pub fn has_seals(plan: &[PlanEntry]) -> bool {
    plan.iter().any(|e| e.kind == SEAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Vec<PlanEntry> {
        vec![
            PlanEntry::text("partition", "text", "k0 ..."),
            PlanEntry::text("k0 loop", "clif", "function u0:0() {}"),
            PlanEntry::text("k0 loop", "mcode", "isa x\nalign 16\ncode c3\n"),
            PlanEntry::text("k1 loop", "clif", "function u0:1() {}"),
            PlanEntry::text("k1 loop", "mcode", "isa x\nalign 16\ncode 90c3\n"),
        ]
    }

    fn names(v: &[Sealed]) -> Vec<String> {
        v.iter().map(|s| format!("{}:{}", s.name(), s.entries().iter().map(|e| e.kind.as_str()).collect::<Vec<_>>().join("+"))).collect()
    }

    #[test]
    fn a_seal_verifies_under_its_key_only() {
        let (a, b) = (CodeKey::from_bytes([1; 32]), CodeKey::from_bytes([2; 32]));
        let sealed = seal_plan("cpu", plan(), Some(&a));
        assert_eq!(sealed.iter().filter(|e| e.kind == SEAL).count(), 2);
        assert_eq!(sealed[3].kind, SEAL, "right after its group");
        assert_eq!(names(&verified("cpu", &sealed, Some(&a))), ["k0 loop:clif+mcode", "k1 loop:clif+mcode"]);
        assert!(verified("cpu", &sealed, Some(&b)).is_empty(), "another key");
        assert!(verified("cpu", &sealed, None).is_empty(), "no key");
        assert!(verified("wgpu", &sealed, Some(&a)).is_empty(), "another backend");
        // Resealing replaces the old seals; no key drops the code.
        assert_eq!(seal_plan("cpu", sealed.clone(), Some(&a)), sealed);
        assert_eq!(seal_plan("cpu", sealed, None), plan().into_iter().filter(|e| e.kind != "mcode").collect::<Vec<_>>());
    }

    #[test]
    fn any_change_to_a_sealed_group_breaks_its_seal() {
        let k = CodeKey::from_bytes([7; 32]);
        let good = seal_plan("cpu", plan(), Some(&k));
        let mut code = good.clone();
        code[2].data = b"isa x\nalign 16\ncode cc\n".to_vec(); // int3
        let mut ir = good.clone();
        ir[1].data.push(b' ');
        let mut extra = good.clone();
        extra.insert(3, PlanEntry::text("k0 loop", "clif", "function u0:9() {}"));
        // k1's sealed group put in place of k0's.
        let mut moved = good.clone();
        moved.drain(1..4);
        for e in &mut moved[1..] {
            e.name = "k0 loop".into();
        }
        let mut short = good.clone();
        short[3].data.pop();
        // A second copy of a valid seal: a name sealed twice counts as unsealed.
        let mut twice = good.clone();
        twice.insert(4, good[3].clone());
        for (what, p) in [("code", code), ("ir", ir), ("extra entry", extra), ("renamed", moved), ("short seal", short), ("sealed twice", twice)] {
            let v = verified("cpu", &p, Some(&k));
            assert!(!names(&v).iter().any(|n| n.starts_with("k0 loop")), "{what}: {:?}", names(&v));
        }
    }
}
