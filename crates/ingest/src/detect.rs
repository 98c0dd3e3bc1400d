//! Format detection (being written).
