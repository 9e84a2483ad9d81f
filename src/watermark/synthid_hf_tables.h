// The SynthID-HF sampling tables embedded at build time (src/watermark/synthid_hf_tables.cmake
// turns assets/watermark/synthid_sampling_table_<seed>.bin into a generated .cc). Callers verify
// the bytes against the SHA-256 pins in synthid_hf.cc before use. Immutable data; thread-safe.
#pragma once

#include <cstdint>
#include <span>

namespace tracemark::watermark::synthid_hf_assets {

// The packed 8 KiB table for `seed`, or an empty span when none was embedded.
std::span<const uint8_t> EmbeddedTable(int seed);

}  // namespace tracemark::watermark::synthid_hf_assets
