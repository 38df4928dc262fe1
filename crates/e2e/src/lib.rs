//! End-to-end tests across crates live in `tests/`: what a user does with `train` and then
//! `export`, checked as one path. This crate has no code of its own; it exists so that neither
//! `train` nor `export` depends on the other.
