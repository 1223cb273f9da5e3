//! filesystem backend (to be written)
