//! The bottom layer of the web crate: what every handler, socket and channel shares. It uses the
//! engine and the schema, never a layer above it (`scripts/check-layers.py`).

pub mod access;
pub mod counters;
pub mod db;
pub mod directory;
pub mod documents;
pub mod dto;
pub mod error;
pub mod files;
pub mod limits;
pub mod outbox;
pub mod pages;
pub mod password;
pub mod phone;
pub mod secrets;
pub mod session;
pub mod socket;
pub mod state;
#[cfg(test)]
mod texts;
pub mod workers;
