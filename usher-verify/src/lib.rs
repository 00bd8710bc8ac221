//! Verify usher access tokens (placeholder; being written).
