//! The `.kir` text format: `print` and `parse`. See docs/kir.md.
