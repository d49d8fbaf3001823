//! kiln-interp: the reference interpreter (in progress).
