// Matrix products of GGUF weight tensors with fp32 activations: the engine's hot kernels.
//
// W is a 2-D GGUF tensor with ne[0] = k (input features, row length) and ne[1] = m rows, in any
// supported GgmlType. For each of n token rows x[t][0..k), MatMul writes y[t][r] = sum_j W[r][j] *
// x[t][j] for r < m. Quantized types quantize the activation row once per call (Q8-style, as
// ggml's vec_dot_type) and use integer SIMD dot products; runtime dispatch picks AVX-512 (VNNI)
// or AVX2. Rows are split across the pool's threads; results do not depend on the thread count.
// No allocation per call beyond a scratch buffer reused across calls (MatMulScratch).
#pragma once

#include <cstdint>
#include <vector>

#include "tracemark/base/thread_pool.h"
#include "tracemark/model/gguf.h"

namespace tracemark {

// Reusable per-caller scratch (quantized activations). Not thread-safe; one per engine context.
struct MatMulScratch {
  std::vector<uint8_t> buf;
};

// y: n x m (row-major), x: n x k (row-major).
void MatMul(const gguf::TensorInfo& w, const float* x, int64_t n, float* y, ThreadPool& pool,
            MatMulScratch& scratch);

// Copies row `row` of W (any supported type) into dst[0..k) as fp32 (embedding lookup).
void GetRow(const gguf::TensorInfo& w, int64_t row, float* dst);

}  // namespace tracemark
