//! kiln-tests: workspace-level integration tests live in `tests/tests/`;
//! the PyTorch golden cases they read are in `tests/golden/`.

/// Whether the GPU backend has an adapter here. Under `CI=true` it must
/// (CI installs Mesa's software Vulkan driver), so a missing one fails the
/// calling test; elsewhere the test is skipped with the reason printed.
pub fn wgpu_available() -> bool {
    match kiln::wgpu_adapter() {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but the GPU backend has no adapter: {e}");
            eprintln!("skipping the GPU part: {e}");
            false
        }
    }
}
