#include "tracemark/model/ggml_type.h"

#include <array>

namespace tracemark {
namespace {

struct Entry {
  std::string_view name;  // empty: id retired or never defined
  uint32_t block_size;
  uint32_t type_size;
  bool supported;
};

// Sizes from ggml's ggml-common.h block structs and gguf-py 0.19.0 GGML_QUANT_SIZES. One
// deliberate difference: gguf-py lists Q8_1 as 40 bytes (an old layout with f32 d and s); ggml's
// block_q8_1 has two fp16 fields and 32 int8 values = 36 bytes (static_assert in ggml-common.h).
constexpr std::array<Entry, kGgmlTypeIdLimit> kTable = {{
    /* 0 */ {"F32", 1, 4, true},
    /* 1 */ {"F16", 1, 2, true},
    /* 2 */ {"Q4_0", 32, 18, true},
    /* 3 */ {"Q4_1", 32, 20, true},
    /* 4 */ {"", 0, 0, false},  // Q4_2, removed from ggml
    /* 5 */ {"", 0, 0, false},  // Q4_3, removed from ggml
    /* 6 */ {"Q5_0", 32, 22, true},
    /* 7 */ {"Q5_1", 32, 24, true},
    /* 8 */ {"Q8_0", 32, 34, true},
    /* 9 */ {"Q8_1", 32, 36, false},
    /* 10 */ {"Q2_K", 256, 84, false},
    /* 11 */ {"Q3_K", 256, 110, false},
    /* 12 */ {"Q4_K", 256, 144, true},
    /* 13 */ {"Q5_K", 256, 176, true},
    /* 14 */ {"Q6_K", 256, 210, true},
    /* 15 */ {"Q8_K", 256, 292, false},
    /* 16 */ {"IQ2_XXS", 256, 66, false},
    /* 17 */ {"IQ2_XS", 256, 74, false},
    /* 18 */ {"IQ3_XXS", 256, 98, false},
    /* 19 */ {"IQ1_S", 256, 50, false},
    /* 20 */ {"IQ4_NL", 32, 18, false},
    /* 21 */ {"IQ3_S", 256, 110, false},
    /* 22 */ {"IQ2_S", 256, 82, false},
    /* 23 */ {"IQ4_XS", 256, 136, false},
    /* 24 */ {"I8", 1, 1, false},
    /* 25 */ {"I16", 1, 2, false},
    /* 26 */ {"I32", 1, 4, false},
    /* 27 */ {"I64", 1, 8, false},
    /* 28 */ {"F64", 1, 8, false},
    /* 29 */ {"IQ1_M", 256, 56, false},
    /* 30 */ {"BF16", 1, 2, true},
    /* 31 */ {"", 0, 0, false},  // Q4_0_4_4, removed (repacked at load time now)
    /* 32 */ {"", 0, 0, false},  // Q4_0_4_8, removed
    /* 33 */ {"", 0, 0, false},  // Q4_0_8_8, removed
    /* 34 */ {"TQ1_0", 256, 54, false},
    /* 35 */ {"TQ2_0", 256, 66, false},
    /* 36 */ {"", 0, 0, false},  // IQ4_NL_4_4, removed
    /* 37 */ {"", 0, 0, false},  // IQ4_NL_4_8, removed
    /* 38 */ {"", 0, 0, false},  // IQ4_NL_8_8, removed
    /* 39 */ {"MXFP4", 32, 17, false},
    /* 40 */ {"NVFP4", 64, 36, false},
    /* 41 */ {"Q1_0", 128, 18, false},
}};

}  // namespace

std::optional<GgmlTypeTraits> TypeTraits(uint32_t type_id) {
  if (type_id >= kTable.size()) return std::nullopt;
  const Entry& e = kTable[type_id];
  if (e.block_size == 0) return std::nullopt;
  return GgmlTypeTraits{e.name, e.block_size, e.type_size, e.supported};
}

std::string_view TypeName(GgmlType t) {
  const auto traits = TypeTraits(t);
  if (traits) return traits->name;
  return "unknown";
}

}  // namespace tracemark
