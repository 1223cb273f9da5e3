//! gc (to be written)
