//! Cross-crate integration tests live in `tests/tests/`; this library is empty on purpose
//! (Cargo needs a target to hang them on).
