//! kiln-tests: workspace-level integration tests live in `tests/tests/`;
//! the PyTorch golden cases they read are in `tests/golden/`.
