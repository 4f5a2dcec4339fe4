//! The library of syntheses: image folders and their table, the index on disk, building and
//! updating it, and the built-in demo library.

pub mod database;
pub mod demo;
pub mod files;
pub mod index;
pub mod indexer;
pub mod store;
pub mod table;
