#include "tracemark/model/quant.h"

#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace tracemark {
namespace {

struct Vectors {
  uint32_t type_id = 0, block_size = 0, type_size = 0, n_blocks = 0;
  std::vector<uint8_t> raw;
  std::vector<float> expected;
};

// Reads tests/data/quant/<name>.bin (format: tests/data/quant/README.md).
Vectors LoadVectors(const std::string& name) {
  const std::string path = std::string(TM_SOURCE_DIR) + "/tests/data/quant/" + name + ".bin";
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Vectors v;
  if (b.size() < 24 || std::memcmp(b.data(), "TMQV", 4) != 0) {
    ADD_FAILURE() << path << " is not a TMQV vector file";
    return v;
  }
  uint32_t h[5];
  std::memcpy(h, b.data() + 4, sizeof(h));
  EXPECT_EQ(h[0], 1u) << "format version";
  v.type_id = h[1];
  v.block_size = h[2];
  v.type_size = h[3];
  v.n_blocks = h[4];
  const size_t raw_bytes = size_t{v.n_blocks} * v.type_size;
  const size_t out_elems = size_t{v.n_blocks} * v.block_size;
  if (b.size() != 24 + raw_bytes + out_elems * 4) {
    ADD_FAILURE() << path << " has the wrong size";
    return v;
  }
  v.raw.assign(b.begin() + 24, b.begin() + 24 + static_cast<std::ptrdiff_t>(raw_bytes));
  v.expected.resize(out_elems);
  std::memcpy(v.expected.data(), b.data() + 24 + raw_bytes, out_elems * 4);
  return v;
}

class DequantizeVectors : public ::testing::TestWithParam<std::pair<const char*, GgmlType>> {};

TEST_P(DequantizeVectors, BitExactWithGgufPy) {
  const auto [name, type] = GetParam();
  const Vectors v = LoadVectors(name);
  ASSERT_FALSE(v.raw.empty());
  ASSERT_EQ(v.type_id, static_cast<uint32_t>(type));
  const auto traits = TypeTraits(type);
  ASSERT_TRUE(traits.has_value());
  ASSERT_EQ(v.block_size, traits->block_size);
  ASSERT_EQ(v.type_size, traits->type_size);
  ASSERT_TRUE(CanDequantize(type));
  std::vector<float> got(v.expected.size(), -12345.f);
  // Whole buffer at once, then block by block (a row of one block): both must match exactly.
  DequantizeRow(type, v.raw.data(), got.data(), static_cast<int64_t>(got.size()));
  size_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &v.expected[i], 4) != 0 && mismatches++ < 5) {
      ADD_FAILURE() << name << " element " << i << " (block " << i / v.block_size << "): got "
                    << got[i] << " expected " << v.expected[i];
    }
  }
  EXPECT_EQ(mismatches, 0u) << "elements differing from gguf.quants.dequantize";
  std::vector<float> one(v.block_size);
  for (uint32_t b = 0; b < v.n_blocks; ++b) {
    DequantizeRow(type, v.raw.data() + size_t{b} * v.type_size, one.data(), v.block_size);
    ASSERT_EQ(std::memcmp(one.data(), v.expected.data() + size_t{b} * v.block_size, one.size() * 4),
              0)
        << name << " block " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllSupportedTypes, DequantizeVectors,
    ::testing::Values(std::pair{"f32", GgmlType::kF32}, std::pair{"f16", GgmlType::kF16},
                      std::pair{"bf16", GgmlType::kBF16}, std::pair{"q4_0", GgmlType::kQ4_0},
                      std::pair{"q4_1", GgmlType::kQ4_1}, std::pair{"q5_0", GgmlType::kQ5_0},
                      std::pair{"q5_1", GgmlType::kQ5_1}, std::pair{"q8_0", GgmlType::kQ8_0},
                      std::pair{"q4_k", GgmlType::kQ4_K}, std::pair{"q5_k", GgmlType::kQ5_K},
                      std::pair{"q6_k", GgmlType::kQ6_K}),
    [](const auto& info) { return std::string(info.param.first); });

uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }

// F16C (part of the x86-64-v3 baseline) is an independent oracle for the conversions.
TEST(Fp16, ToFp32ExhaustiveAgainstF16C) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float mine = Fp16ToFp32(static_cast<uint16_t>(h));
    const float hw = _cvtsh_ss(static_cast<unsigned short>(h));
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) {
      ASSERT_TRUE(std::isnan(mine)) << h;
      ASSERT_EQ(Bits(mine) & 0x80000000u, (h & 0x8000u) << 16) << "NaN sign " << h;
      continue;
    }
    ASSERT_EQ(Bits(mine), Bits(hw)) << "half 0x" << std::hex << h;
  }
}

TEST(Fp16, RoundTripEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) continue;  // NaN payloads are not preserved
    ASSERT_EQ(Fp32ToFp16(Fp16ToFp32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

uint16_t HwToHalf(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

TEST(Fp16, FromFp32RoundsToNearestEvenLikeF16C) {
  // Every float next to a half boundary: each half, the midpoints between neighbours, one ulp
  // either side of both, for both signs.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float a = Fp16ToFp32(static_cast<uint16_t>(h));
    const float b = Fp16ToFp32(static_cast<uint16_t>(h + 1));
    const float mid = a + (b - a) / 2;  // exact: halves have few mantissa bits
    for (float base : {a, mid}) {
      for (float x : {std::nextafter(base, -1e30f), base, std::nextafter(base, 1e30f)}) {
        for (float s : {x, -x})
          ASSERT_EQ(Fp32ToFp16(s), HwToHalf(s)) << "float bits 0x" << std::hex << Bits(s);
      }
    }
  }
  // A sweep over the whole float range (incl. overflow to infinity and float subnormals).
  for (uint64_t u = 0; u <= 0xffffffffull; u += 40961) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(u));
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(Fp16ToFp32(Fp32ToFp16(f))));
      continue;
    }
    ASSERT_EQ(Fp32ToFp16(f), HwToHalf(f)) << "float bits 0x" << std::hex << u;
  }
  EXPECT_EQ(Fp32ToFp16(65520.f), 0x7c00);  // rounds up to infinity
  EXPECT_EQ(Fp32ToFp16(65519.996f), 0x7bff);
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.f, -25)), 0x0000);  // tie between 0 and the smallest subnormal
  EXPECT_EQ(Fp32ToFp16(std::nextafter(std::ldexp(1.f, -25), 1.f)), 0x0001);
}

TEST(Bf16, Conversions) {
  EXPECT_EQ(Bf16ToFp32(0x3f80), 1.0f);
  EXPECT_EQ(Bf16ToFp32(0xc000), -2.0f);
  EXPECT_EQ(Fp32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(Fp32ToBf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie to even (down)
  EXPECT_EQ(Fp32ToBf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie to even (up)
  EXPECT_EQ(Fp32ToBf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_EQ(Fp32ToBf16(std::bit_cast<float>(0x7f800001u)), 0x7fc0);  // signalling NaN made quiet
  for (uint32_t b = 0; b < 65536; ++b) {
    if ((b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0) continue;
    ASSERT_EQ(Fp32ToBf16(Bf16ToFp32(static_cast<uint16_t>(b))), b);
  }
}

TEST(GgmlTypes, TraitsTable) {
  int supported = 0;
  for (uint32_t id = 0; id < 64; ++id) {
    const auto t = TypeTraits(id);
    if (!t) continue;
    EXPECT_GT(t->block_size, 0u);
    EXPECT_GT(t->type_size, 0u);
    EXPECT_FALSE(t->name.empty());
    if (t->supported) {
      ++supported;
      EXPECT_TRUE(CanDequantize(static_cast<GgmlType>(id))) << t->name;
    } else {
      EXPECT_FALSE(CanDequantize(static_cast<GgmlType>(id))) << t->name;
    }
  }
  EXPECT_EQ(supported, 11);
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 42u, 1000u})
    EXPECT_FALSE(TypeTraits(id)) << id;
  EXPECT_EQ(TypeTraits(GgmlType::kQ4_0)->type_size, sizeof(BlockQ4_0));
  EXPECT_EQ(TypeTraits(GgmlType::kQ4_1)->type_size, sizeof(BlockQ4_1));
  EXPECT_EQ(TypeTraits(GgmlType::kQ5_0)->type_size, sizeof(BlockQ5_0));
  EXPECT_EQ(TypeTraits(GgmlType::kQ5_1)->type_size, sizeof(BlockQ5_1));
  EXPECT_EQ(TypeTraits(GgmlType::kQ8_0)->type_size, sizeof(BlockQ8_0));
  EXPECT_EQ(TypeTraits(GgmlType::kQ8_1)->type_size, sizeof(BlockQ8_1));
  EXPECT_EQ(TypeTraits(GgmlType::kQ4_K)->type_size, sizeof(BlockQ4_K));
  EXPECT_EQ(TypeTraits(GgmlType::kQ5_K)->type_size, sizeof(BlockQ5_K));
  EXPECT_EQ(TypeTraits(GgmlType::kQ6_K)->type_size, sizeof(BlockQ6_K));
  EXPECT_EQ(TypeTraits(GgmlType::kQ8_K)->type_size, sizeof(BlockQ8_K));
  EXPECT_EQ(TypeTraits(GgmlType::kQ4_K)->block_size, static_cast<uint32_t>(kQK_K));
  EXPECT_EQ(TypeName(GgmlType::kQ6_K), "Q6_K");
  EXPECT_EQ(TypeName(static_cast<GgmlType>(4)), "unknown");
}

TEST(ScaleMinK4, UnpacksSixBitFields) {
  // Sub-block 0..3 from the low 6 bits of bytes 0..3 / 4..7; 4..7 from nibbles of bytes 8..11
  // plus the top two bits of bytes 0..3 / 4..7.
  uint8_t s[12] = {0xC1, 0x02, 0x03, 0x04, 0x45, 0x06, 0x07, 0x08, 0xA9, 0x0A, 0x0B, 0x0C};
  uint8_t sc, m;
  UnpackScaleMinK4(0, s, &sc, &m);
  EXPECT_EQ(sc, 1);
  EXPECT_EQ(m, 5);
  UnpackScaleMinK4(4, s, &sc, &m);
  EXPECT_EQ(sc, 0x09 | (3 << 4));  // low nibble of s[8], top bits of s[0]
  EXPECT_EQ(m, 0x0A | (1 << 4));   // high nibble of s[8], top bits of s[4]
}

}  // namespace
}  // namespace tracemark
