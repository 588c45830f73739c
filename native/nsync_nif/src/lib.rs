//! nsync NIF
