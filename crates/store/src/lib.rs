//! mailtrail storage (being written).
