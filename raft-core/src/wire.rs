//! wire (todo)
