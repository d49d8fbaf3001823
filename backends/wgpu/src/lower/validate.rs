//! naga validation of generated WGSL. Runs at compile time before any
//! device is touched, so it works with no GPU; a rejected module is a kiln
//! bug, reported with its text.

use crate::lower::Shader;
use crate::WgpuError;

/// Parses and validates `s` as WGSL.
pub fn validate(s: &Shader) -> Result<(), WgpuError> {
    let bad = |message: String| WgpuError::InvalidShader { kernel: s.name.clone(), message, wgsl: s.wgsl.clone() };
    let module = naga::front::wgsl::parse_str(&s.wgsl).map_err(|e| bad(e.emit_to_string(&s.wgsl)))?;
    let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty());
    v.validate(&module).map_err(|e| bad(e.emit_to_string(&s.wgsl)))?;
    Ok(())
}
