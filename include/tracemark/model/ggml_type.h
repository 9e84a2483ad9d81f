// ggml tensor element types and their block layout (ids as in GGUF files).
//
// Every type id ggml defines has traits (name, elements per block, bytes per block), so the GGUF
// reader can size and bounds-check any tensor, including types this build cannot compute with;
// `supported` marks the types the engine can dequantize and multiply. Ids ggml retired (4, 5,
// 31-33, 36-38) and ids beyond the table have no traits. Layouts follow ggml's ggml-common.h;
// see docs/formats/gguf.md. Pure constant data: thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tracemark {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

struct GgmlTypeTraits {
  std::string_view name;
  uint32_t block_size;  // elements per block
  uint32_t type_size;   // bytes per block
  bool supported;       // this build can dequantize and multiply it
};

// One past the largest type id ggml defines (as of gguf-py 0.19.0: Q1_0 = 41).
inline constexpr uint32_t kGgmlTypeIdLimit = 42;

// Traits for a raw type id from a file; nullopt for ids ggml does not define.
std::optional<GgmlTypeTraits> TypeTraits(uint32_t type_id);
inline std::optional<GgmlTypeTraits> TypeTraits(GgmlType t) {
  return TypeTraits(static_cast<uint32_t>(t));
}

// "Q4_K", or "unknown" for an id without traits. Never fails.
std::string_view TypeName(GgmlType t);

}  // namespace tracemark
