//! percore-benches: benchmark programs and the peer servers percore is
//! measured against. Not a library anyone depends on; see BENCHMARKS.md.
