//! Passes by name, for `kiln opt --passes a,b,c`, golden tests and the
//! default pipeline.
//!
//! ADDING A PASS: add one arm to `pass_by_name` and, if it belongs in the
//! default pipeline, its name to `DEFAULT_PIPELINE` at the right place.
//! Nothing else needs to change (unknown-pass errors list `PASS_NAMES`, so
//! add the name there too).

use crate::{Pass, PassError};

/// Every registered pass name, in the order error messages list them.
pub const PASS_NAMES: &[&str] = &["dce", "cse", "const_fold"];

/// The optimization pipeline `compile()` runs, by name. Autodiff belongs
/// first (it consumes grad requests); the e-graph before the final `dce`.
/// `cse` runs before `const_fold` so duplicates fold once, and `dce` last
/// sweeps what the others orphaned.
pub const DEFAULT_PIPELINE: &[&str] = &["cse", "const_fold", "dce"];

/// A fresh instance of the pass called `name`.
pub fn pass_by_name(name: &str) -> Option<Box<dyn Pass>> {
    Some(match name {
        "dce" => Box::new(crate::dce::Dce),
        "cse" => Box::new(crate::cse::Cse),
        "const_fold" => Box::new(crate::const_fold::ConstFold::default()),
        "autodiff" => Box::new(crate::autodiff::Autodiff),
        _ => return None,
    })
}

/// The default pipeline's passes, in order.
pub fn default_pipeline() -> Vec<Box<dyn Pass>> {
    DEFAULT_PIPELINE.iter().filter_map(|n| pass_by_name(n)).collect()
}

/// The error for a name `pass_by_name` does not know.
pub fn unknown_pass(name: &str) -> PassError {
    PassError::UnknownPass(name.to_string(), PASS_NAMES.join(", "))
}

/// Parses a comma-separated list (`"dce, cse"`) into passes.
pub fn passes_from_list(list: &str) -> Result<Vec<Box<dyn Pass>>, PassError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|n| pass_by_name(n).ok_or_else(|| unknown_pass(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_resolves_to_a_pass_of_that_name() {
        for n in PASS_NAMES.iter().chain(DEFAULT_PIPELINE) {
            let p = pass_by_name(n).unwrap_or_else(|| panic!("`{n}` is listed but not registered"));
            assert_eq!(p.name(), *n);
        }
        assert_eq!(default_pipeline().len(), DEFAULT_PIPELINE.len());
    }

    #[test]
    fn unknown_names_are_typed_errors_listing_the_known_ones() {
        assert!(pass_by_name("nope").is_none());
        let e = passes_from_list("dce, nope").err().expect("unknown pass");
        let msg = e.to_string();
        assert!(msg.contains("`nope`") && msg.contains("dce, cse, const_fold"), "{msg}");
        let names: Vec<String> =
            passes_from_list(" cse ,dce,").unwrap().iter().map(|p| p.name().to_string()).collect();
        assert_eq!(names, ["cse", "dce"]);
    }
}
