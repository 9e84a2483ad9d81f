// Matrix products of GGUF weight tensors with fp32 activations: the engine's hot kernels.
//
// W is a 2-D GGUF tensor with ne[0] = k (input features, row length) and ne[1] = m rows, in any
// supported GgmlType. For each of n token rows x[t][0..k), MatMul writes y[t][r] = sum_j W[r][j] *
// x[t][j] for r < m. Quantized types quantize the activation row once per call (Q8-style, as
// ggml's vec_dot_type: int8 blocks of 32 with an fp32 scale for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, blocks
// of 256 with 16-element sums for the K-quants; ~1e-4 relative error on a dot product) and use
// integer SIMD dot products; runtime dispatch picks AVX-512 (VNNI), AVX2 or scalar code
// (src/model/kernels_*.cc). F32/F16/BF16 weights multiply fp32 activations directly. Rows are
// split across the pool's threads; results do not depend on the thread count. No allocation per
// call beyond a scratch buffer reused across calls (MatMulScratch).
//
// Thread-safety: the functions are reentrant; concurrent calls need distinct scratch buffers and
// must not share a ThreadPool (ThreadPool::Run has one owner at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/base/thread_pool.h"
#include "tracemark/model/gguf.h"

namespace tracemark {

// Reusable per-caller scratch (quantized activations). Not thread-safe; one per engine context.
struct MatMulScratch {
  std::vector<uint8_t> buf;
};

// True for the weight types MatMul and GetRow handle: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q4_K, Q5_K, Q6_K.
bool MatMulSupports(GgmlType type);

// Checks, once at model load, that W can be passed to MatMul/GetRow: supported type, data
// present, ne[0] a positive multiple of the block size. MatMul itself only asserts these.
Status CheckMatMulWeight(const gguf::TensorInfo& w);

// y: n x m (row-major), x: n x k (row-major). Row r of token t is computed by the same
// instructions whatever n and the pool size are, so results are identical across thread counts
// and batch compositions.
void MatMul(const gguf::TensorInfo& w, const float* x, int64_t n, float* y, ThreadPool& pool,
            MatMulScratch& scratch);

// One weight of a shared-input product: y (n x m, row-major) = x W^T.
struct MatMulOutput {
  const gguf::TensorInfo* w = nullptr;
  float* y = nullptr;
};

// Most outputs one MatMulShared call takes (q/k/v, gate/up need 3 and 2).
inline constexpr size_t kMaxSharedOutputs = 8;

// Several weights with the same input x and the same row length (q/k/v, gate/up): the input is
// quantized once per activation format and all rows of all outputs go to the pool in one
// dispatch. Each output is bit-identical to a separate MatMul call. outs.size() <=
// kMaxSharedOutputs.
void MatMulShared(std::span<const MatMulOutput> outs, const float* x, int64_t n, ThreadPool& pool,
                  MatMulScratch& scratch);

// Copies row `row` of W (any supported type) into dst[0..k) as fp32 (embedding lookup).
void GetRow(const gguf::TensorInfo& w, int64_t row, float* dst);

}  // namespace tracemark
