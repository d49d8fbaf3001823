//! kiln-cpu: the Cranelift CPU backend (in progress).
