//! percore's integration tests: one binary, one module per area.

// Mechanical rules of the code base (headers, file length, dependency direction).
mod tidy;
