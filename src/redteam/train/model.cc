// StudentModel (parameters and initialization) and Trainer (forward, backward, loss).
//
// Shapes: T input positions, d = d_model, f = n_ff, V = n_vocab, H heads of size hd. A matrix W
// stored [out, in] maps x (in) to W x (out), as GGUF stores it (ne[0] = in). Per sequence:
//   x_0 = E[tok]
//   layer: h1 = rms(x) * g_attn; q,k,v = Wq h1, Wk h1, Wv h1; rope(q), rope(k) on pairs (2i,2i+1)
//          P = softmax_causal(q k^T / sqrt(hd)) per head; o = P v; x_mid = x + Wo o
//          h2 = rms(x_mid) * g_ffn; a = Wg h2; b = Wu h2; s = silu(a) * b; x' = x_mid + Wd s
//   hf = rms(x_L) * g_out; logits = E hf (tied head); loss = mean_t (logsumexp - logit[target])
// The backward pass applies the chain rule to each line in reverse (docs/student.md).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "redteam/train/rng.h"
#include "tracemark/redteam/train.h"

namespace tracemark::redteam {

Status StudentConfig::Validate() const {
  auto range = [](const char* what, int64_t v, int64_t lo, int64_t hi) -> Status {
    if (v < lo || v > hi) {
      return InvalidArgument(std::string("student: ") + what + " = " + std::to_string(v) +
                             " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return Status::Ok();
  };
  TM_RETURN_IF_ERROR(range("n_vocab", n_vocab, 2, kMaxStudentVocab));
  TM_RETURN_IF_ERROR(range("d_model", d_model, kStudentDimMultiple, kMaxStudentDModel));
  TM_RETURN_IF_ERROR(range("layers", n_layer, 1, kMaxStudentLayers));
  TM_RETURN_IF_ERROR(range("heads", n_head, 1, kMaxStudentHeads));
  TM_RETURN_IF_ERROR(range("n_ff", ff(), kStudentDimMultiple, kMaxStudentFf));
  TM_RETURN_IF_ERROR(range("context", n_ctx, 2, kMaxStudentContext));
  if (d_model % n_head != 0 || head_dim() % kStudentDimMultiple != 0 ||
      d_model % kStudentDimMultiple != 0 || ff() % kStudentDimMultiple != 0) {
    return InvalidArgument("student: d_model (" + std::to_string(d_model) + ") must split into " +
                           std::to_string(n_head) + " heads whose size, like d_model and n_ff (" +
                           std::to_string(ff()) + "), is a multiple of " +
                           std::to_string(kStudentDimMultiple));
  }
  if (!(rms_eps > 0.0f) || !(rope_base > 1.0f)) {
    return InvalidArgument("student: rms_eps must be > 0 and rope_base > 1");
  }
  return Status::Ok();
}

Result<StudentModel> StudentModel::Create(const StudentConfig& config, uint64_t seed) {
  TM_RETURN_IF_ERROR(config.Validate());
  StudentModel m;
  m.config_ = config;
  const int64_t d = config.d_model, f = config.ff(), V = config.n_vocab;
  size_t offset = 0;
  auto add = [&](std::string name, int64_t rows, int64_t cols, bool decay) {
    m.tensors_.push_back({std::move(name), offset, rows, cols, decay});
    offset += static_cast<size_t>(rows * cols);
  };
  add("token_embd.weight", V, d, false);
  add("output_norm.weight", 1, d, false);
  for (int32_t il = 0; il < config.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    add(p + "attn_norm.weight", 1, d, false);
    add(p + "attn_q.weight", d, d, true);
    add(p + "attn_k.weight", d, d, true);
    add(p + "attn_v.weight", d, d, true);
    add(p + "attn_output.weight", d, d, true);
    add(p + "ffn_norm.weight", 1, d, false);
    add(p + "ffn_gate.weight", f, d, true);
    add(p + "ffn_up.weight", f, d, true);
    add(p + "ffn_down.weight", d, f, true);
  }
  m.params_.assign(offset, 0.0f);
  SplitMix64 rng(seed ^ 0x5eedc0de5eedc0deull);
  const float resid_scale = 1.0f / std::sqrt(2.0f * static_cast<float>(config.n_layer));
  for (const ParamTensor& t : m.tensors_) {
    float* w = m.params_.data() + t.offset;
    if (t.rows == 1) {
      std::fill(w, w + t.size(), 1.0f);
      continue;
    }
    const bool resid = t.name.ends_with("attn_output.weight") || t.name.ends_with("ffn_down.weight");
    const float std_dev = kInitStd * (resid ? resid_scale : 1.0f);
    for (size_t i = 0; i < t.size(); ++i) w[i] = static_cast<float>(rng.Normal()) * std_dev;
  }
  return m;
}

const ParamTensor* StudentModel::Find(const std::string& name) const {
  for (const ParamTensor& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

// Gradient slots are summed in chunks of this many floats per pool task.
constexpr size_t kReduceChunk = size_t{1} << 16;
// Vocabulary columns per tile of the output-head kernels.
constexpr int64_t kHeadTile = 16;

inline float HSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// n is a multiple of 8.
inline float Dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i < n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  return HSum(_mm256_add_ps(acc0, acc1));
}

// y[i] += a * x[i]
inline void Axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// Y[t, o] = X[t, :] . W[o, :]   (X [T, I], W [O, I], Y [T, O])
void MatMulNT(const float* x, int64_t T, const float* w, int64_t O, int64_t I, float* y) {
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t o = 0; o < O; ++o) y[t * O + o] = Dot(x + t * I, w + o * I, I);
  }
}

// dX[t, :] += sum_o dY[t, o] W[o, :]
void AddMatMulNN(const float* dy, int64_t T, int64_t O, const float* w, int64_t I, float* dx) {
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t o = 0; o < O; ++o) Axpy(dy[t * O + o], w + o * I, dx + t * I, I);
  }
}

// dW[o, :] += sum_t dY[t, o] X[t, :]
void AddMatMulTN(const float* dy, int64_t T, int64_t O, const float* x, int64_t I, float* dw) {
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t o = 0; o < O; ++o) Axpy(dy[t * O + o], x + t * I, dw + o * I, I);
  }
}

// logits[t, v] = hf[t, :] . E[v, :] with et = E transposed [d, V]: tiles of 4 rows x 16 columns,
// broadcasting hf and loading contiguous vocabulary columns (no horizontal sums). The vocabulary
// tile is the outer loop so its d x 16 slice of et stays in L1 while every row block uses it.
void HeadForward(const float* hf, int64_t T, const float* et, int64_t V, int64_t d, float* logits) {
  const int64_t T4 = T / 4 * 4;
  int64_t v = 0;
  for (; v + kHeadTile <= V; v += kHeadTile) {
    for (int64_t t = 0; t < T4; t += 4) {
      __m256 acc[4][2];
      for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
      for (int64_t k = 0; k < d; ++k) {
        const __m256 w0 = _mm256_loadu_ps(et + k * V + v), w1 = _mm256_loadu_ps(et + k * V + v + 8);
        for (int r = 0; r < 4; ++r) {
          const __m256 b = _mm256_broadcast_ss(hf + (t + r) * d + k);
          acc[r][0] = _mm256_fmadd_ps(b, w0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(b, w1, acc[r][1]);
        }
      }
      for (int r = 0; r < 4; ++r) {
        _mm256_storeu_ps(logits + (t + r) * V + v, acc[r][0]);
        _mm256_storeu_ps(logits + (t + r) * V + v + 8, acc[r][1]);
      }
    }
    for (int64_t t = T4; t < T; ++t) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      for (int64_t k = 0; k < d; ++k) {
        const __m256 b = _mm256_broadcast_ss(hf + t * d + k);
        a0 = _mm256_fmadd_ps(b, _mm256_loadu_ps(et + k * V + v), a0);
        a1 = _mm256_fmadd_ps(b, _mm256_loadu_ps(et + k * V + v + 8), a1);
      }
      _mm256_storeu_ps(logits + t * V + v, a0);
      _mm256_storeu_ps(logits + t * V + v + 8, a1);
    }
  }
  for (; v < V; ++v) {
    for (int64_t t = 0; t < T; ++t) {
      float s = 0;
      for (int64_t k = 0; k < d; ++k) s += hf[t * d + k] * et[k * V + v];
      logits[t * V + v] = s;
    }
  }
}

// exp(x) for 8 floats (Cephes-style: 2^n * polynomial on [-ln2/2, ln2/2]), relative error
// about 2e-7; inputs below -87 give 0-ish denormal-free results, the softmax never feeds more
// than 0.
inline __m256 Exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  y = _mm256_fmadd_ps(y, x2, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}

// Backward of the tied head, g = dlogits [T, V]:
//   dhf[t, :] += sum_v g[t, v] E[v, :]      dE[v, :] += sum_t g[t, v] hf[t, :]
// Register-blocked over 32-float slices of d (d is a multiple of 8; a tail of 8..24 floats takes
// the generic loop): two rows of dhf, or two rows of dE, accumulate in registers per slice.
void HeadBackward(const float* g, int64_t T, int64_t V, const float* e, const float* hf, int64_t d,
                  float* dhf, float* de) {
  constexpr int64_t kSlice = 32;
  const int64_t d32 = d / kSlice * kSlice;
  for (int64_t v0 = 0; v0 < V; v0 += kHeadTile) {
    const int64_t v1 = std::min(V, v0 + kHeadTile);
    // dhf: rows t, t+1 over this vocabulary tile.
    for (int64_t k0 = 0; k0 < d32; k0 += kSlice) {
      int64_t t = 0;
      for (; t + 2 <= T; t += 2) {
        __m256 a[2][4];
        for (int r = 0; r < 2; ++r) {
          for (int j = 0; j < 4; ++j) a[r][j] = _mm256_loadu_ps(dhf + (t + r) * d + k0 + 8 * j);
        }
        for (int64_t v = v0; v < v1; ++v) {
          const __m256 b0 = _mm256_broadcast_ss(g + t * V + v), b1 = _mm256_broadcast_ss(g + (t + 1) * V + v);
          for (int j = 0; j < 4; ++j) {
            const __m256 ev = _mm256_loadu_ps(e + v * d + k0 + 8 * j);
            a[0][j] = _mm256_fmadd_ps(b0, ev, a[0][j]);
            a[1][j] = _mm256_fmadd_ps(b1, ev, a[1][j]);
          }
        }
        for (int r = 0; r < 2; ++r) {
          for (int j = 0; j < 4; ++j) _mm256_storeu_ps(dhf + (t + r) * d + k0 + 8 * j, a[r][j]);
        }
      }
      for (; t < T; ++t) {
        for (int64_t v = v0; v < v1; ++v) Axpy(g[t * V + v], e + v * d + k0, dhf + t * d + k0, kSlice);
      }
    }
    // dE: rows v, v+1 over all positions.
    for (int64_t k0 = 0; k0 < d32; k0 += kSlice) {
      int64_t v = v0;
      for (; v + 2 <= v1; v += 2) {
        __m256 a[2][4];
        for (int r = 0; r < 2; ++r) {
          for (int j = 0; j < 4; ++j) a[r][j] = _mm256_loadu_ps(de + (v + r) * d + k0 + 8 * j);
        }
        for (int64_t t = 0; t < T; ++t) {
          const __m256 b0 = _mm256_broadcast_ss(g + t * V + v), b1 = _mm256_broadcast_ss(g + t * V + v + 1);
          for (int j = 0; j < 4; ++j) {
            const __m256 h = _mm256_loadu_ps(hf + t * d + k0 + 8 * j);
            a[0][j] = _mm256_fmadd_ps(b0, h, a[0][j]);
            a[1][j] = _mm256_fmadd_ps(b1, h, a[1][j]);
          }
        }
        for (int r = 0; r < 2; ++r) {
          for (int j = 0; j < 4; ++j) _mm256_storeu_ps(de + (v + r) * d + k0 + 8 * j, a[r][j]);
        }
      }
      for (; v < v1; ++v) {
        for (int64_t t = 0; t < T; ++t) Axpy(g[t * V + v], hf + t * d + k0, de + v * d + k0, kSlice);
      }
    }
    if (d32 < d) {
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t v = v0; v < v1; ++v) {
          const float gv = g[t * V + v];
          Axpy(gv, e + v * d + d32, dhf + t * d + d32, d - d32);
          Axpy(gv, hf + t * d + d32, de + v * d + d32, d - d32);
        }
      }
    }
  }
}

// out = x * r * w, r = 1 / sqrt(mean(x^2) + eps); returns r.
inline float RmsForward(const float* x, const float* w, int64_t n, float eps, float* out) {
  const float ss = Dot(x, x, n);
  const float r = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r * w[i];
  return r;
}

// Given dy for y = x * r * w: dw += dy * x * r, dx += r * (w dy) - x r^3 / n * sum(w dy x).
inline void RmsBackward(const float* dy, const float* x, const float* w, float r, int64_t n,
                        float* dx, float* dw) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += w[i] * dy[i] * x[i];
  const float c = s * r * r * r / static_cast<float>(n);
  for (int64_t i = 0; i < n; ++i) {
    dw[i] += dy[i] * x[i] * r;
    dx[i] += r * w[i] * dy[i] - c * x[i];
  }
}

inline float Sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

}  // namespace

// Per-slot activations and scratch for one sequence of up to n_ctx positions.
struct SeqWork {
  int64_t T = 0;
  // per layer [L][T * d] etc.
  std::vector<float> x_in, h1, q, k, v, o, x_mid, h2, a, b, s, prob, rms1, rms2;
  std::vector<float> x_final, hf, rmsf, logits;
  // backward scratch
  std::vector<float> dx, dh, dq, dk, dv, dout, da, db, ds, dhf, drow;
  std::vector<float> grad;  // this slot's gradient, params layout
  std::vector<float> dea;   // gradient of the active embedding rows [A, d]
  double loss = 0;          // sum over this slot's targets
};

struct Trainer::Impl {
  StudentModel* model;
  StudentConfig c;
  std::unique_ptr<ThreadPool> pool;
  std::vector<SeqWork> slots;
  std::vector<float> grad;
  // Active vocabulary (all ids unless SetActiveVocabulary narrowed it): the output head works on
  // these A rows, gathered into ea [A, d] and transposed into et [d, A] once per call.
  std::vector<int32_t> active;
  std::vector<int32_t> slot_of;  // [V]: index in active, or -1
  std::vector<float> ea, et;
  std::vector<float> rope_cos, rope_sin;  // [n_ctx, hd / 2]
  float attn_scale = 1.0f;

  struct LayerPtr {
    size_t attn_norm, wq, wk, wv, wo, ffn_norm, wg, wu, wd;
  };
  std::vector<LayerPtr> layers;
  size_t embd = 0, out_norm = 0;

  Impl(StudentModel* m, int32_t threads) : model(m), c(m->config()) {
    pool = std::make_unique<ThreadPool>(threads);
    slots.resize(pool->size());
    const int32_t hd = c.head_dim(), half = hd / 2;
    attn_scale = 1.0f / std::sqrt(static_cast<float>(hd));
    rope_cos.resize(static_cast<size_t>(c.n_ctx) * half);
    rope_sin.resize(rope_cos.size());
    for (int32_t i = 0; i < half; ++i) {
      // As the engine: base ** (2i / dim) in fp32, inverted; angle = pos * inv_freq in fp32.
      const float inv = 1.0f / std::pow(c.rope_base, static_cast<float>(2 * i) / static_cast<float>(hd));
      for (int32_t p = 0; p < c.n_ctx; ++p) {
        const float ang = static_cast<float>(p) * inv;
        rope_cos[static_cast<size_t>(p) * half + i] = std::cos(ang);
        rope_sin[static_cast<size_t>(p) * half + i] = std::sin(ang);
      }
    }
    active.resize(c.n_vocab);
    std::iota(active.begin(), active.end(), 0);
    slot_of = active;
    embd = m->Find("token_embd.weight")->offset;
    out_norm = m->Find("output_norm.weight")->offset;
    for (int32_t il = 0; il < c.n_layer; ++il) {
      const std::string p = "blk." + std::to_string(il) + ".";
      layers.push_back({m->Find(p + "attn_norm.weight")->offset, m->Find(p + "attn_q.weight")->offset,
                        m->Find(p + "attn_k.weight")->offset, m->Find(p + "attn_v.weight")->offset,
                        m->Find(p + "attn_output.weight")->offset, m->Find(p + "ffn_norm.weight")->offset,
                        m->Find(p + "ffn_gate.weight")->offset, m->Find(p + "ffn_up.weight")->offset,
                        m->Find(p + "ffn_down.weight")->offset});
    }
  }

  void Reserve(SeqWork& w, bool backward) {
    const size_t T = c.n_ctx, d = c.d_model, f = c.ff(), L = c.n_layer, H = c.n_head;
    auto sz = [](std::vector<float>& v, size_t n) {
      if (v.size() != n) v.assign(n, 0.0f);
    };
    for (auto* v : {&w.x_in, &w.h1, &w.q, &w.k, &w.v, &w.o, &w.x_mid, &w.h2}) sz(*v, L * T * d);
    for (auto* v : {&w.a, &w.b, &w.s}) sz(*v, L * T * f);
    sz(w.prob, L * H * T * T);
    sz(w.rms1, L * T);
    sz(w.rms2, L * T);
    sz(w.x_final, T * d);
    sz(w.hf, T * d);
    sz(w.rmsf, T);
    sz(w.logits, T * active.size());
    if (backward) {
      for (auto* v : {&w.dx, &w.dh, &w.dq, &w.dk, &w.dv, &w.dout, &w.dhf}) sz(*v, T * d);
      for (auto* v : {&w.da, &w.db, &w.ds}) sz(*v, T * f);
      sz(w.drow, T);
      sz(w.grad, model->params().size());
      sz(w.dea, active.size() * d);
    }
  }

  void Transpose() {
    const int64_t A = static_cast<int64_t>(active.size()), d = c.d_model;
    ea.resize(static_cast<size_t>(A * d));
    et.resize(static_cast<size_t>(A * d));
    const float* e = model->params().data() + embd;
    constexpr int64_t kRowsPerTask = 4096;
    constexpr int64_t kBlock = 64;  // rows per block: 64 x d floats read, 64-float runs written
    const int64_t n_tasks = (A + kRowsPerTask - 1) / kRowsPerTask;
    pool->Run(n_tasks, [&](int64_t task, int) {
      const int64_t a_end = std::min(A, (task + 1) * kRowsPerTask);
      for (int64_t a = task * kRowsPerTask; a < a_end; ++a) {
        std::memcpy(ea.data() + a * d, e + static_cast<int64_t>(active[a]) * d, d * sizeof(float));
      }
      for (int64_t a0 = task * kRowsPerTask; a0 < a_end; a0 += kBlock) {
        const int64_t a1 = std::min(a_end, a0 + kBlock);
        for (int64_t k = 0; k < d; ++k) {
          float* dst = et.data() + k * A;
          for (int64_t a = a0; a < a1; ++a) dst[a] = ea[a * d + k];
        }
      }
    });
  }

  void RopeRow(float* x, int32_t pos, bool inverse) const {
    const int32_t hd = c.head_dim(), half = hd / 2;
    const float* cs = rope_cos.data() + static_cast<size_t>(pos) * half;
    const float* sn = rope_sin.data() + static_cast<size_t>(pos) * half;
    for (int32_t h = 0; h < c.n_head; ++h) {
      float* xh = x + h * hd;
      for (int32_t i = 0; i < half; ++i) {
        const float a = xh[2 * i], b = xh[2 * i + 1];
        if (!inverse) {
          xh[2 * i] = a * cs[i] - b * sn[i];
          xh[2 * i + 1] = a * sn[i] + b * cs[i];
        } else {
          xh[2 * i] = a * cs[i] + b * sn[i];
          xh[2 * i + 1] = -a * sn[i] + b * cs[i];
        }
      }
    }
  }

  // Forward of one sequence of T inputs; leaves logits in w.logits.
  void Forward(const int32_t* tok, int64_t T, SeqWork& w) {
    const float* P = model->params().data();
    const int64_t d = c.d_model, f = c.ff(), H = c.n_head, hd = c.head_dim(), Tc = c.n_ctx;
    w.T = T;
    float* x = w.x_final.data();  // running residual
    for (int64_t t = 0; t < T; ++t) std::memcpy(x + t * d, P + embd + static_cast<size_t>(tok[t]) * d, d * 4);
    for (int32_t il = 0; il < c.n_layer; ++il) {
      const LayerPtr& lp = layers[il];
      float* x_in = w.x_in.data() + il * Tc * d;
      float* h1 = w.h1.data() + il * Tc * d;
      float* q = w.q.data() + il * Tc * d;
      float* k = w.k.data() + il * Tc * d;
      float* v = w.v.data() + il * Tc * d;
      float* o = w.o.data() + il * Tc * d;
      float* x_mid = w.x_mid.data() + il * Tc * d;
      float* h2 = w.h2.data() + il * Tc * d;
      float* a = w.a.data() + il * Tc * f;
      float* b = w.b.data() + il * Tc * f;
      float* s = w.s.data() + il * Tc * f;
      float* prob = w.prob.data() + il * H * Tc * Tc;
      std::memcpy(x_in, x, T * d * 4);
      for (int64_t t = 0; t < T; ++t) {
        w.rms1[il * Tc + t] = RmsForward(x_in + t * d, P + lp.attn_norm, d, c.rms_eps, h1 + t * d);
      }
      MatMulNT(h1, T, P + lp.wq, d, d, q);
      MatMulNT(h1, T, P + lp.wk, d, d, k);
      MatMulNT(h1, T, P + lp.wv, d, d, v);
      for (int64_t t = 0; t < T; ++t) {
        RopeRow(q + t * d, static_cast<int32_t>(t), false);
        RopeRow(k + t * d, static_cast<int32_t>(t), false);
      }
      std::fill(o, o + T * d, 0.0f);
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t t = 0; t < T; ++t) {
          float* pr = prob + (h * Tc + t) * Tc;
          float mx = -INFINITY;
          for (int64_t u = 0; u <= t; ++u) {
            pr[u] = Dot(q + t * d + h * hd, k + u * d + h * hd, hd) * attn_scale;
            mx = std::max(mx, pr[u]);
          }
          float sum = 0;
          for (int64_t u = 0; u <= t; ++u) {
            pr[u] = std::exp(pr[u] - mx);
            sum += pr[u];
          }
          const float inv = 1.0f / sum;
          for (int64_t u = 0; u <= t; ++u) {
            pr[u] *= inv;
            Axpy(pr[u], v + u * d + h * hd, o + t * d + h * hd, hd);
          }
        }
      }
      MatMulNT(o, T, P + lp.wo, d, d, x_mid);
      for (int64_t i = 0; i < T * d; ++i) x_mid[i] += x_in[i];
      for (int64_t t = 0; t < T; ++t) {
        w.rms2[il * Tc + t] = RmsForward(x_mid + t * d, P + lp.ffn_norm, d, c.rms_eps, h2 + t * d);
      }
      MatMulNT(h2, T, P + lp.wg, f, d, a);
      MatMulNT(h2, T, P + lp.wu, f, d, b);
      for (int64_t i = 0; i < T * f; ++i) s[i] = a[i] * Sigmoid(a[i]) * b[i];
      MatMulNT(s, T, P + lp.wd, d, f, x);
      for (int64_t i = 0; i < T * d; ++i) x[i] += x_mid[i];
    }
    for (int64_t t = 0; t < T; ++t) {
      w.rmsf[t] = RmsForward(x + t * d, P + out_norm, d, c.rms_eps, w.hf.data() + t * d);
    }
    HeadForward(w.hf.data(), T, et.data(), static_cast<int64_t>(active.size()), d, w.logits.data());
  }

  // Turns logits into g = (softmax - onehot) * scale and returns the summed cross-entropy.
  // Inactive tokens have zero embeddings, hence logit exactly 0: they enter the normalizer as
  // (n_vocab - A) * exp(0 - max), so the loss is the full-vocabulary cross-entropy.
  double LossRows(const int32_t* target, int64_t T, float scale, bool grad, SeqWork& w) {
    const int64_t V = static_cast<int64_t>(active.size()), V8 = V / 8 * 8;
    const int64_t n_inactive = c.n_vocab - V;
    double total = 0;
    for (int64_t t = 0; t < T; ++t) {
      float* l = w.logits.data() + t * V;
      __m256 vmx = _mm256_set1_ps(-INFINITY);
      for (int64_t i = 0; i < V8; i += 8) vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(l + i));
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, vmx);
      float mx = lanes[0];
      for (int i = 1; i < 8; ++i) mx = std::max(mx, lanes[i]);
      for (int64_t i = V8; i < V; ++i) mx = std::max(mx, l[i]);
      if (n_inactive > 0) mx = std::max(mx, 0.0f);
      const int32_t tgt = slot_of[target[t]];
      const float target_logit = l[tgt];
      // e = exp(l - max), kept in place when the gradient is wanted; the sum in 8 float lanes
      // then double.
      const __m256 m8 = _mm256_set1_ps(mx);
      __m256 acc = _mm256_setzero_ps();
      for (int64_t i = 0; i < V8; i += 8) {
        const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(l + i), m8));
        acc = _mm256_add_ps(acc, e);
        if (grad) _mm256_storeu_ps(l + i, e);
      }
      _mm256_store_ps(lanes, acc);
      double sum = 0;
      for (int i = 0; i < 8; ++i) sum += lanes[i];
      for (int64_t i = V8; i < V; ++i) {
        const float e = std::exp(l[i] - mx);
        sum += e;
        if (grad) l[i] = e;
      }
      if (n_inactive > 0) sum += static_cast<double>(n_inactive) * std::exp(-static_cast<double>(mx));
      total += static_cast<double>(mx) + std::log(sum) - static_cast<double>(target_logit);
      if (grad) {
        const float k = static_cast<float>(scale / sum);
        const __m256 k8 = _mm256_set1_ps(k);
        for (int64_t i = 0; i < V8; i += 8) _mm256_storeu_ps(l + i, _mm256_mul_ps(_mm256_loadu_ps(l + i), k8));
        for (int64_t i = V8; i < V; ++i) l[i] *= k;
        l[tgt] -= scale;
      }
    }
    return total;
  }

  void Backward(const int32_t* tok, SeqWork& w) {
    const float* P = model->params().data();
    float* G = w.grad.data();
    const int64_t T = w.T, d = c.d_model, f = c.ff(), H = c.n_head, hd = c.head_dim(), Tc = c.n_ctx;
    float* dx = w.dx.data();
    std::fill(w.dhf.begin(), w.dhf.begin() + T * d, 0.0f);
    HeadBackward(w.logits.data(), T, static_cast<int64_t>(active.size()), ea.data(), w.hf.data(), d, w.dhf.data(),
                 w.dea.data());
    std::fill(dx, dx + T * d, 0.0f);
    for (int64_t t = 0; t < T; ++t) {
      RmsBackward(w.dhf.data() + t * d, w.x_final.data() + t * d, P + out_norm, w.rmsf[t], d, dx + t * d,
                  G + out_norm);
    }
    for (int32_t il = c.n_layer - 1; il >= 0; --il) {
      const LayerPtr& lp = layers[il];
      const float* x_in = w.x_in.data() + il * Tc * d;
      const float* h1 = w.h1.data() + il * Tc * d;
      const float* q = w.q.data() + il * Tc * d;
      const float* k = w.k.data() + il * Tc * d;
      const float* v = w.v.data() + il * Tc * d;
      const float* o = w.o.data() + il * Tc * d;
      const float* x_mid = w.x_mid.data() + il * Tc * d;
      const float* h2 = w.h2.data() + il * Tc * d;
      const float* a = w.a.data() + il * Tc * f;
      const float* b = w.b.data() + il * Tc * f;
      const float* s = w.s.data() + il * Tc * f;
      const float* prob = w.prob.data() + il * H * Tc * Tc;
      // MLP: x' = x_mid + Wd s
      float* ds = w.ds.data();
      std::fill(ds, ds + T * f, 0.0f);
      AddMatMulNN(dx, T, d, P + lp.wd, f, ds);
      AddMatMulTN(dx, T, d, s, f, G + lp.wd);
      float* da = w.da.data();
      float* db = w.db.data();
      for (int64_t i = 0; i < T * f; ++i) {
        const float sg = Sigmoid(a[i]);
        db[i] = ds[i] * a[i] * sg;
        da[i] = ds[i] * b[i] * sg * (1.0f + a[i] * (1.0f - sg));
      }
      float* dh = w.dh.data();
      std::fill(dh, dh + T * d, 0.0f);
      AddMatMulNN(da, T, f, P + lp.wg, d, dh);
      AddMatMulNN(db, T, f, P + lp.wu, d, dh);
      AddMatMulTN(da, T, f, h2, d, G + lp.wg);
      AddMatMulTN(db, T, f, h2, d, G + lp.wu);
      // dx now is d(x_mid) from the residual; add the norm path.
      for (int64_t t = 0; t < T; ++t) {
        RmsBackward(dh + t * d, x_mid + t * d, P + lp.ffn_norm, w.rms2[il * Tc + t], d, dx + t * d,
                    G + lp.ffn_norm);
      }
      // Attention: x_mid = x_in + Wo o
      float* dout = w.dout.data();
      std::fill(dout, dout + T * d, 0.0f);
      AddMatMulNN(dx, T, d, P + lp.wo, d, dout);
      AddMatMulTN(dx, T, d, o, d, G + lp.wo);
      float* dq = w.dq.data();
      float* dk = w.dk.data();
      float* dv = w.dv.data();
      std::fill(dq, dq + T * d, 0.0f);
      std::fill(dk, dk + T * d, 0.0f);
      std::fill(dv, dv + T * d, 0.0f);
      float* dp = w.drow.data();
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t t = 0; t < T; ++t) {
          const float* pr = prob + (h * Tc + t) * Tc;
          const float* dot = dout + t * d + h * hd;
          float acc = 0;
          for (int64_t u = 0; u <= t; ++u) {
            dp[u] = Dot(dot, v + u * d + h * hd, hd);
            acc += pr[u] * dp[u];
            Axpy(pr[u], dot, dv + u * d + h * hd, hd);
          }
          for (int64_t u = 0; u <= t; ++u) {
            const float dsc = pr[u] * (dp[u] - acc) * attn_scale;
            Axpy(dsc, k + u * d + h * hd, dq + t * d + h * hd, hd);
            Axpy(dsc, q + t * d + h * hd, dk + u * d + h * hd, hd);
          }
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        RopeRow(dq + t * d, static_cast<int32_t>(t), true);
        RopeRow(dk + t * d, static_cast<int32_t>(t), true);
      }
      std::fill(dh, dh + T * d, 0.0f);
      AddMatMulNN(dq, T, d, P + lp.wq, d, dh);
      AddMatMulNN(dk, T, d, P + lp.wk, d, dh);
      AddMatMulNN(dv, T, d, P + lp.wv, d, dh);
      AddMatMulTN(dq, T, d, h1, d, G + lp.wq);
      AddMatMulTN(dk, T, d, h1, d, G + lp.wk);
      AddMatMulTN(dv, T, d, h1, d, G + lp.wv);
      for (int64_t t = 0; t < T; ++t) {
        RmsBackward(dh + t * d, x_in + t * d, P + lp.attn_norm, w.rms1[il * Tc + t], d, dx + t * d,
                    G + lp.attn_norm);
      }
    }
    for (int64_t t = 0; t < T; ++t) Axpy(1.0f, dx + t * d, G + embd + static_cast<size_t>(tok[t]) * d, d);
  }

  Status CheckSeqs(std::span<const std::vector<int32_t>> seqs) const {
    if (seqs.empty()) return InvalidArgument("student: empty batch");
    for (const auto& s : seqs) {
      if (s.size() < 2 || s.size() > static_cast<size_t>(c.n_ctx) + 1) {
        return InvalidArgument("student: a sequence has " + std::to_string(s.size()) +
                               " tokens; need 2.." + std::to_string(c.n_ctx + 1));
      }
      for (int32_t t : s) {
        if (t < 0 || t >= c.n_vocab) {
          return InvalidArgument("student: token id " + std::to_string(t) + " is outside the vocabulary");
        }
        if (slot_of[t] < 0) {
          return InvalidArgument("student: token id " + std::to_string(t) + " is not in the active vocabulary");
        }
      }
    }
    return Status::Ok();
  }

  Result<double> Run(std::span<const std::vector<int32_t>> seqs, bool want_grad) {
    TM_RETURN_IF_ERROR(CheckSeqs(seqs));
    Transpose();
    int64_t n_targets = 0;
    for (const auto& s : seqs) n_targets += static_cast<int64_t>(s.size()) - 1;
    const float scale = 1.0f / static_cast<float>(n_targets);
    const int64_t n_slots = static_cast<int64_t>(slots.size());
    pool->Run(n_slots, [&](int64_t slot, int) {
      SeqWork& w = slots[slot];
      Reserve(w, want_grad);
      w.loss = 0;
      if (want_grad) {
        std::fill(w.grad.begin(), w.grad.end(), 0.0f);
        std::fill(w.dea.begin(), w.dea.end(), 0.0f);
      }
      for (size_t i = static_cast<size_t>(slot); i < seqs.size(); i += static_cast<size_t>(n_slots)) {
        const std::vector<int32_t>& s = seqs[i];
        const int64_t T = static_cast<int64_t>(s.size()) - 1;
        Forward(s.data(), T, w);
        w.loss += LossRows(s.data() + 1, T, scale, want_grad, w);
        if (want_grad) Backward(s.data(), w);
      }
      if (want_grad) {
        const int64_t d = c.d_model;
        for (size_t a = 0; a < active.size(); ++a) {
          Axpy(1.0f, w.dea.data() + a * d, w.grad.data() + embd + static_cast<size_t>(active[a]) * d, d);
        }
      }
    });
    double loss = 0;
    for (const SeqWork& w : slots) loss += w.loss;
    if (want_grad) {
      const size_t n = model->params().size();
      grad.assign(n, 0.0f);
      const int64_t n_chunks = static_cast<int64_t>((n + kReduceChunk - 1) / kReduceChunk);
      const int64_t used = std::min<int64_t>(n_slots, static_cast<int64_t>(seqs.size()));
      pool->Run(n_chunks, [&](int64_t chunk, int) {
        const size_t i0 = static_cast<size_t>(chunk) * kReduceChunk, i1 = std::min(n, i0 + kReduceChunk);
        for (int64_t sl = 0; sl < used; ++sl) {
          const float* src = slots[sl].grad.data();
          for (size_t i = i0; i < i1; ++i) grad[i] += src[i];
        }
      });
    }
    return loss / static_cast<double>(n_targets);
  }
};

Trainer::Trainer(StudentModel* model, int32_t threads) : impl_(std::make_unique<Impl>(model, threads)) {}
Trainer::~Trainer() = default;

Result<double> Trainer::LossAndGrad(std::span<const std::vector<int32_t>> seqs) {
  return impl_->Run(seqs, true);
}
Result<double> Trainer::Loss(std::span<const std::vector<int32_t>> seqs) { return impl_->Run(seqs, false); }

Result<std::vector<float>> Trainer::Logits(std::span<const int32_t> tokens) {
  const StudentConfig& c = impl_->c;
  if (tokens.empty() || tokens.size() > static_cast<size_t>(c.n_ctx)) {
    return InvalidArgument("student: logits need 1.." + std::to_string(c.n_ctx) + " tokens");
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= c.n_vocab) return InvalidArgument("student: token id outside the vocabulary");
  }
  impl_->Transpose();
  SeqWork& w = impl_->slots[0];
  impl_->Reserve(w, false);
  const int64_t T = static_cast<int64_t>(tokens.size());
  impl_->Forward(tokens.data(), T, w);
  const size_t A = impl_->active.size();
  std::vector<float> out(static_cast<size_t>(T) * c.n_vocab, 0.0f);  // inactive tokens: logit 0
  for (int64_t t = 0; t < T; ++t) {
    for (size_t a = 0; a < A; ++a) out[t * c.n_vocab + impl_->active[a]] = w.logits[t * A + a];
  }
  return out;
}

Status Trainer::SetActiveVocabulary(std::span<const int32_t> ids) {
  Impl& m = *impl_;
  std::vector<uint8_t> on(m.c.n_vocab, 0);
  for (int32_t id : ids) {
    if (id < 0 || id >= m.c.n_vocab) return InvalidArgument("student: active token id outside the vocabulary");
    on[id] = 1;
  }
  m.active.clear();
  m.slot_of.assign(m.c.n_vocab, -1);
  float* e = m.model->params().data() + m.embd;
  for (int32_t id = 0; id < m.c.n_vocab; ++id) {
    if (on[id]) {
      m.slot_of[id] = static_cast<int32_t>(m.active.size());
      m.active.push_back(id);
    } else {
      std::fill(e + static_cast<size_t>(id) * m.c.d_model, e + static_cast<size_t>(id + 1) * m.c.d_model, 0.0f);
    }
  }
  if (m.active.empty()) return InvalidArgument("student: the active vocabulary is empty");
  return Status::Ok();
}

int32_t Trainer::active_vocabulary() const { return static_cast<int32_t>(impl_->active.size()); }

std::span<const float> Trainer::grad() const { return impl_->grad; }
ThreadPool& Trainer::pool() { return *impl_->pool; }

}  // namespace tracemark::redteam
