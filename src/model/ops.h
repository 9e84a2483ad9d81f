// Element-wise and reduction kernels of the forward pass (RMSNorm, RoPE, softmax, activations,
// fp16 conversion, dot products). Internal to the engine. Pure functions on caller buffers:
// thread-safe for disjoint outputs. AVX2/FMA/F16C (the build's x86-64-v3 baseline).
#pragma once

#include <cstdint>

namespace tracemark::ops {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]   (out may alias x)
void RmsNorm(const float* x, const float* w, int32_t n, float eps, float* out);

float Dot(const float* a, const float* b, int32_t n);
float DotF16(const float* a, const uint16_t* b, int32_t n);
// y += a * x
void Axpy(float a, const float* x, float* y, int32_t n);
void AxpyF16(float a, const uint16_t* x, float* y, int32_t n);
void Scale(float* x, float a, int32_t n);
void Add(float* y, const float* x, int32_t n);  // y += x

void F32ToF16(const float* x, uint16_t* y, int32_t n);
void F16ToF32(const uint16_t* x, float* y, int32_t n);

// Rotates one head in place. cs holds cos, sn sin for each of the rope_dim/2 frequencies.
// neox=false: pairs (2i, 2i+1); neox=true: pairs (i, i + rope_dim/2).
void Rope(float* x, const float* cs, const float* sn, int32_t rope_dim, bool neox);

// x <- softmax(x) in place over n entries; returns nothing.
void Softmax(float* x, int32_t n);

// gate[i] <- silu(gate[i]) * up[i]
void SwiGlu(float* gate, const float* up, int32_t n);
// gate[i] <- gelu_tanh(gate[i]) * up[i]
void GeGlu(float* gate, const float* up, int32_t n);

}  // namespace tracemark::ops
