//! Unit tests for config parsing.
