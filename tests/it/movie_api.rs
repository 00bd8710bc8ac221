//! The movie API example end to end (being written).
