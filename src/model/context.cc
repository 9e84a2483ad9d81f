// Context: KV cache, batch validation and the forward pass of llama / qwen2 / gemma3.
#include "tracemark/model/context.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>

#include "attention.h"
#include "ops.h"

namespace tracemark {
namespace {

// Below this many multiply-adds a per-row or attention step runs on the calling thread: a
// dispatch costs microseconds, more than the work itself for a single decode row.
constexpr int64_t kMinParallelWork = 1 << 15;
// Prefill attention handles up to this many consecutive query rows of one sequence per task, so
// each cached key/value row is converted and loaded once per tile instead of once per query.
constexpr int32_t kAttnTile = 16;

// Adds the time since the last Mark() to one phase counter when profiling is on.
class PhaseTimer {
 public:
  explicit PhaseTimer(bool on) : on_(on) {
    if (on_) last_ = std::chrono::steady_clock::now();
  }
  void Mark(double* counter) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    *counter += std::chrono::duration<double, std::milli>(now - last_).count();
    last_ = now;
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace

struct Context::Impl {
  // One layer of cache: [seq][kv_head][cell][dim] for K and V, fp16 or fp32.
  struct LayerCache {
    int32_t cells = 0;  // per sequence; pos maps to cell pos % cells
    std::vector<float> k32, v32;
    std::vector<uint16_t> k16, v16;
  };

  const ModelConfig& c;
  const ModelWeights& w;
  bool f16 = true;
  std::vector<LayerCache> cache;

  // Activations for up to max_batch rows.
  std::vector<float> x, h, q, k, v, att, o, gate, up, out_x;
  // RoPE: inverse frequencies per base (0 = global, 1 = sliding layers), cos/sin per row.
  std::vector<float> inv_freq[2];
  std::vector<float> rope_cos[2], rope_sin[2];
  std::vector<float> scores;  // per thread, n_ctx each
  // Tiled (prefill) attention scratch, per thread (attn::ScratchFloats).
  std::vector<float> tile_scratch;
  size_t tile_scratch_stride = 0;
  int32_t tile_rows = 1;  // query rows per tile: kAttnTile, fewer for many heads per kv head
  // Per Decode: runs of consecutive rows of one sequence, split into tiles (first row, rows).
  std::vector<std::pair<int32_t, int32_t>> tiles;
  MatMulScratch mm;

  // Per Decode.
  std::vector<int32_t> next_pos;  // per seq, during validation

  Impl(const ModelConfig& cfg, const ModelWeights& wts) : c(cfg), w(wts) {}
};

Context::Context(const Model& model, const ContextOptions& options) : model_(model), options_(options) {}
Context::~Context() = default;

Result<std::unique_ptr<Context>> Context::Create(const Model& model, const ContextOptions& options_in) {
  ContextOptions opt = options_in;
  const ModelConfig& c = model.config();
  if (opt.n_ctx <= 0) opt.n_ctx = kDefaultContextLength;
  opt.n_ctx = std::min(opt.n_ctx, c.n_ctx_train);
  if (opt.n_seq < 1 || opt.n_seq > kMaxSequences) {
    return InvalidArgument("context: n_seq must be in [1, " + std::to_string(kMaxSequences) + "]");
  }
  if (opt.max_batch < 1) return InvalidArgument("context: max_batch must be at least 1");
  opt.max_batch = std::min(opt.max_batch, opt.n_ctx * opt.n_seq);
  if (opt.max_outputs <= 0) opt.max_outputs = opt.n_seq;
  opt.max_outputs = std::min(opt.max_outputs, opt.max_batch);
  if (opt.n_threads < 1) opt.n_threads = 1;

  std::unique_ptr<Context> ctx(new Context(model, opt));
  ctx->n_vocab_ = c.n_vocab;
  ctx->seq_len_.assign(opt.n_seq, 0);
  ctx->logits_.assign(static_cast<size_t>(opt.max_outputs) * c.n_vocab, 0.0f);
  ctx->output_rows_.reserve(opt.max_outputs);
  ctx->pool_ = std::make_unique<ThreadPool>(opt.n_threads);
  ctx->impl_ = std::make_unique<Impl>(c, model.weights());
  Impl& m = *ctx->impl_;
  m.f16 = opt.kv_type == KvType::kF16;

  m.cache.resize(c.n_layer);
  for (int32_t il = 0; il < c.n_layer; ++il) {
    Impl::LayerCache& lc = m.cache[il];
    lc.cells = opt.n_ctx;
    if (c.layer_is_swa[il] && c.sliding_window > 0) {
      // A batch writes up to max_batch new cells before its first row attends: keep them all.
      lc.cells = std::min(opt.n_ctx, c.sliding_window + opt.max_batch);
    }
    const size_t nk = static_cast<size_t>(opt.n_seq) * c.n_head_kv * lc.cells * c.head_dim_k;
    const size_t nv = static_cast<size_t>(opt.n_seq) * c.n_head_kv * lc.cells * c.head_dim_v;
    if (m.f16) {
      lc.k16.assign(nk, 0);
      lc.v16.assign(nv, 0);
    } else {
      lc.k32.assign(nk, 0.0f);
      lc.v32.assign(nv, 0.0f);
    }
  }

  const size_t B = opt.max_batch;
  m.x.assign(B * c.n_embd, 0.0f);
  m.h.assign(B * std::max(c.n_embd, c.n_head * c.head_dim_v), 0.0f);
  m.q.assign(B * c.n_head * c.head_dim_k, 0.0f);
  m.k.assign(B * c.n_head_kv * c.head_dim_k, 0.0f);
  m.v.assign(B * c.n_head_kv * c.head_dim_v, 0.0f);
  m.att.assign(B * c.n_head * c.head_dim_v, 0.0f);
  m.o.assign(B * c.n_embd, 0.0f);
  m.gate.assign(B * c.n_ff, 0.0f);
  m.up.assign(B * c.n_ff, 0.0f);
  m.out_x.assign(static_cast<size_t>(opt.max_outputs) * c.n_embd, 0.0f);
  m.scores.assign(static_cast<size_t>(opt.n_threads) * opt.n_ctx, 0.0f);
  const int32_t group = c.n_head / c.n_head_kv;
  if (group > attn::kMaxBlockQueries) {
    return Unimplemented("context: more than " + std::to_string(attn::kMaxBlockQueries) +
                         " query heads per kv head are not supported");
  }
  m.tile_rows = std::max(1, std::min({kAttnTile, opt.max_batch, attn::kMaxBlockQueries / group}));
  m.tile_scratch_stride = attn::ScratchFloats(m.tile_rows * group, opt.n_ctx,
                                               c.head_dim_k, c.head_dim_v);
  m.tile_scratch.assign(static_cast<size_t>(opt.n_threads) * m.tile_scratch_stride, 0.0f);
  m.tiles.reserve(opt.max_batch);
  m.next_pos.assign(opt.n_seq, 0);

  const int32_t half = c.rope_dim / 2;
  const float bases[2] = {c.rope_base, c.rope_base_swa};
  for (int kind = 0; kind < 2; ++kind) {
    m.inv_freq[kind].resize(half);
    for (int32_t i = 0; i < half; ++i) {
      // As HF: base ** (2i / dim) in fp32, then 1 / that.
      float f = 1.0f / std::pow(bases[kind], static_cast<float>(2 * i) / static_cast<float>(c.rope_dim));
      if (model.weights().rope_freqs != nullptr) f /= model.weights().rope_freqs[i];
      m.inv_freq[kind][i] = f;
    }
    m.rope_cos[kind].assign(B * half, 0.0f);
    m.rope_sin[kind].assign(B * half, 0.0f);
  }
  return ctx;
}

size_t Context::kv_bytes() const {
  size_t total = 0;
  for (const Impl::LayerCache& lc : impl_->cache) {
    total += (lc.k16.size() + lc.v16.size()) * sizeof(uint16_t) + (lc.k32.size() + lc.v32.size()) * sizeof(float);
  }
  return total;
}

int32_t Context::OutputOf(int32_t row) const {
  for (int32_t i = 0; i < n_outputs_; ++i) {
    if (output_rows_[i] == row) return i;
  }
  return -1;
}

Status Context::TruncateSeq(int32_t seq, int32_t n) {
  if (seq < 0 || seq >= options_.n_seq) return InvalidArgument("context: sequence id out of range");
  if (n < 0 || n > seq_len_[seq]) return InvalidArgument("context: truncation length out of range");
  // Sliding-window ring layers keep only the last window + max_batch positions; truncating further
  // back than that would need positions that were overwritten.
  for (size_t il = 0; il < impl_->cache.size(); ++il) {
    const int32_t cells = impl_->cache[il].cells;
    if (cells < options_.n_ctx && seq_len_[seq] - n > cells - model_.config().sliding_window) {
      return Unimplemented("context: cannot truncate a sliding-window cache that far back; clear the sequence");
    }
  }
  seq_len_[seq] = n;
  return Status::Ok();
}

Status Context::Decode(const Batch& batch) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  Impl& m = *impl_;
  const int32_t n = batch.size();

  // ---- validate (nothing is written before this passes) ----
  if (n == 0) return InvalidArgument("decode: empty batch");
  if (n > options_.max_batch) {
    return ResourceExhausted("decode: batch of " + std::to_string(n) + " tokens exceeds max_batch " +
                             std::to_string(options_.max_batch));
  }
  if (batch.pos.size() != static_cast<size_t>(n) || batch.seq.size() != static_cast<size_t>(n) ||
      (!batch.want_logits.empty() && batch.want_logits.size() != static_cast<size_t>(n))) {
    return InvalidArgument("decode: batch arrays have different lengths");
  }
  std::copy(seq_len_.begin(), seq_len_.end(), m.next_pos.begin());
  for (int32_t t = 0; t < n; ++t) {
    const int32_t s = batch.seq[t];
    if (s < 0 || s >= options_.n_seq) {
      return InvalidArgument("decode: sequence id " + std::to_string(s) + " out of range [0, " +
                             std::to_string(options_.n_seq) + ")");
    }
    if (batch.token[t] < 0 || batch.token[t] >= c.n_vocab) {
      return InvalidArgument("decode: token id " + std::to_string(batch.token[t]) + " out of range");
    }
    if (batch.pos[t] != m.next_pos[s]) {
      return InvalidArgument("decode: sequence " + std::to_string(s) + " expects position " +
                             std::to_string(m.next_pos[s]) + ", got " + std::to_string(batch.pos[t]));
    }
    if (batch.pos[t] >= options_.n_ctx) {
      return ResourceExhausted("decode: sequence " + std::to_string(s) + " is full (context length " +
                               std::to_string(options_.n_ctx) + ")");
    }
    ++m.next_pos[s];
  }
  output_rows_.clear();
  for (int32_t t = 0; t < n; ++t) {
    bool want;
    if (batch.want_logits.empty()) {
      want = true;
      for (int32_t u = t + 1; u < n; ++u) {
        if (batch.seq[u] == batch.seq[t]) {
          want = false;
          break;
        }
      }
    } else {
      want = batch.want_logits[t] != 0;
    }
    if (want) {
      if (static_cast<int32_t>(output_rows_.size()) >= options_.max_outputs) {
        output_rows_.clear();
        n_outputs_ = 0;
        return ResourceExhausted("decode: more rows want logits than max_outputs " +
                                 std::to_string(options_.max_outputs));
      }
      output_rows_.push_back(t);
    }
  }
  n_outputs_ = static_cast<int32_t>(output_rows_.size());

  ThreadPool& pool = *pool_;
  const int32_t E = c.n_embd;
  const int32_t Dk = c.head_dim_k, Dv = c.head_dim_v;
  const int32_t Hq = c.n_head, Hkv = c.n_head_kv;
  const int32_t group = Hq / Hkv;
  const int32_t qd = Hq * Dk, kd = Hkv * Dk, vd = Hkv * Dv, od = Hq * Dv;
  const int32_t F = c.n_ff;
  const int32_t half = c.rope_dim / 2;
  const bool neox = c.rope_style == RopeStyle::kNeox;
  const bool any_swa = c.sliding_window > 0;

  // Runs fn(row) for every row, on the pool when the work is large enough.
  auto for_rows = [&](int64_t work_per_row, auto&& fn) {
    if (n == 1 || work_per_row * n < kMinParallelWork) {
      for (int32_t t = 0; t < n; ++t) fn(t);
    } else {
      auto task = [&](int64_t t, int) { fn(static_cast<int32_t>(t)); };
      pool.Run(n, std::ref(task));  // std::ref: no std::function allocation per dispatch
    }
  };

  // Runs of consecutive rows of one sequence, cut into attention tiles.
  m.tiles.clear();
  bool all_single = true;
  for (int32_t t = 0; t < n;) {
    int32_t len = 1;
    while (t + len < n && len < m.tile_rows && batch.seq[t + len] == batch.seq[t]) ++len;
    all_single = all_single && len == 1;
    m.tiles.emplace_back(t, len);
    t += len;
  }

  PhaseTimer timer(options_.profile);
  DecodeProfile& prof = profile_;
  ++prof.decodes;

  // ---- embeddings and rope tables ----
  for_rows(E, [&](int32_t t) {
    float* xt = m.x.data() + static_cast<size_t>(t) * E;
    GetRow(*w.token_embd, batch.token[t], xt);
    if (c.embed_scale != 1.0f) ops::Scale(xt, c.embed_scale, E);
    for (int kind = 0; kind < (any_swa ? 2 : 1); ++kind) {
      const float pos = static_cast<float>(batch.pos[t]);
      float* cs = m.rope_cos[kind].data() + static_cast<size_t>(t) * half;
      float* sn = m.rope_sin[kind].data() + static_cast<size_t>(t) * half;
      for (int32_t i = 0; i < half; ++i) {
        const float a = pos * m.inv_freq[kind][i];
        cs[i] = std::cos(a);
        sn[i] = std::sin(a);
      }
    }
  });

  for (int32_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = w.layers[il];
    Impl::LayerCache& lc = m.cache[il];
    const bool swa = c.layer_is_swa[il] != 0 && c.sliding_window > 0;
    const int kind = swa ? 1 : 0;

    // ---- attention block ----
    for_rows(E, [&](int32_t t) {
      ops::RmsNorm(m.x.data() + static_cast<size_t>(t) * E, L.attn_norm, E, c.rms_eps,
                   m.h.data() + static_cast<size_t>(t) * E);
    });
    timer.Mark(&prof.other_ms);
    // q, k and v share one quantization of h and one dispatch.
    const MatMulOutput qkv[3] = {{L.wq, m.q.data()}, {L.wk, m.k.data()}, {L.wv, m.v.data()}};
    MatMulShared(qkv, m.h.data(), n, pool, m.mm);
    timer.Mark(&prof.matmul_ms);

    for_rows(qd + kd, [&](int32_t t) {
      float* qt = m.q.data() + static_cast<size_t>(t) * qd;
      float* kt = m.k.data() + static_cast<size_t>(t) * kd;
      float* vt = m.v.data() + static_cast<size_t>(t) * vd;
      if (L.bq != nullptr) {
        ops::Add(qt, L.bq, qd);
        ops::Add(kt, L.bk, kd);
        ops::Add(vt, L.bv, vd);
      }
      const float* cs = m.rope_cos[kind].data() + static_cast<size_t>(t) * half;
      const float* sn = m.rope_sin[kind].data() + static_cast<size_t>(t) * half;
      for (int32_t hh = 0; hh < Hq; ++hh) {
        float* qh = qt + static_cast<size_t>(hh) * Dk;
        if (L.q_norm != nullptr) ops::RmsNorm(qh, L.q_norm, Dk, c.rms_eps, qh);
        ops::Rope(qh, cs, sn, c.rope_dim, neox);
      }
      const int32_t s = batch.seq[t];
      const int32_t cell = batch.pos[t] % lc.cells;
      for (int32_t hh = 0; hh < Hkv; ++hh) {
        float* kh = kt + static_cast<size_t>(hh) * Dk;
        if (L.k_norm != nullptr) ops::RmsNorm(kh, L.k_norm, Dk, c.rms_eps, kh);
        ops::Rope(kh, cs, sn, c.rope_dim, neox);
        const size_t base = (static_cast<size_t>(s) * Hkv + hh) * lc.cells + cell;
        const float* vh = vt + static_cast<size_t>(hh) * Dv;
        if (m.f16) {
          ops::F32ToF16(kh, lc.k16.data() + base * Dk, Dk);
          ops::F32ToF16(vh, lc.v16.data() + base * Dv, Dv);
        } else {
          std::copy(kh, kh + Dk, lc.k32.data() + base * Dk);
          std::copy(vh, vh + Dv, lc.v32.data() + base * Dv);
        }
      }
    });

    timer.Mark(&prof.other_ms);
    // Attention: one task per (row, head).
    auto attend = [&](int64_t task, int thread) {
      const int32_t t = static_cast<int32_t>(task / Hq);
      const int32_t hh = static_cast<int32_t>(task % Hq);
      const int32_t s = batch.seq[t];
      const int32_t pos = batch.pos[t];
      const int32_t lo = swa ? std::max(0, pos - c.sliding_window + 1) : 0;
      const int32_t span = pos - lo + 1;
      const float* qh = m.q.data() + static_cast<size_t>(t) * qd + static_cast<size_t>(hh) * Dk;
      float* out = m.att.data() + static_cast<size_t>(t) * od + static_cast<size_t>(hh) * Dv;
      float* sc = m.scores.data() + static_cast<size_t>(thread) * options_.n_ctx;
      const size_t head_base = (static_cast<size_t>(s) * Hkv + hh / group) * lc.cells;
      int32_t cell = lo % lc.cells;
      for (int32_t j = 0; j < span; ++j) {
        const size_t row = head_base + cell;
        sc[j] = c.attn_scale * (m.f16 ? ops::DotF16(qh, lc.k16.data() + row * Dk, Dk)
                                      : ops::Dot(qh, lc.k32.data() + row * Dk, Dk));
        if (++cell == lc.cells) cell = 0;
      }
      ops::Softmax(sc, span);
      std::fill(out, out + Dv, 0.0f);
      cell = lo % lc.cells;
      for (int32_t j = 0; j < span; ++j) {
        const size_t row = head_base + cell;
        if (m.f16) {
          ops::AxpyF16(sc[j], lc.v16.data() + row * Dv, out, Dv);
        } else {
          ops::Axpy(sc[j], lc.v32.data() + row * Dv, out, Dv);
        }
        if (++cell == lc.cells) cell = 0;
      }
    };
    // Tiled attention: one task per (tile, kv head) covering the tile's rows and the `group`
    // query heads that share the kv head.
    auto attend_tile = [&](int64_t task, int thread) {
      const auto [t0, T] = m.tiles[task / Hkv];
      const int32_t kvh = static_cast<int32_t>(task % Hkv);
      const int32_t s = batch.seq[t0];
      const int32_t p0 = batch.pos[t0];
      const int32_t lo_first = swa ? std::max(0, p0 - c.sliding_window + 1) : 0;
      const int32_t span = p0 + T - 1 - lo_first + 1;
      const size_t head_base = (static_cast<size_t>(s) * Hkv + kvh) * lc.cells;
      attn::KvView view;
      if (m.f16) {
        view.k16 = lc.k16.data() + head_base * Dk;
        view.v16 = lc.v16.data() + head_base * Dv;
      } else {
        view.k32 = lc.k32.data() + head_base * Dk;
        view.v32 = lc.v32.data() + head_base * Dv;
      }
      view.cells = lc.cells;
      view.first_cell = lo_first % lc.cells;
      view.dk = Dk;
      view.dv = Dv;
      const float* qp[attn::kMaxBlockQueries];
      float* op[attn::kMaxBlockQueries];
      int32_t lo[attn::kMaxBlockQueries], hi[attn::kMaxBlockQueries];
      int32_t nq = 0;
      for (int32_t i = 0; i < T; ++i) {
        const int32_t pos = p0 + i;
        const int32_t row_lo = swa ? std::max(0, pos - c.sliding_window + 1) : 0;
        for (int32_t g = 0; g < group; ++g) {
          const int32_t hh = kvh * group + g;
          qp[nq] = m.q.data() + static_cast<size_t>(t0 + i) * qd + static_cast<size_t>(hh) * Dk;
          op[nq] = m.att.data() + static_cast<size_t>(t0 + i) * od + static_cast<size_t>(hh) * Dv;
          lo[nq] = row_lo - lo_first;
          hi[nq] = pos - lo_first;
          ++nq;
        }
      }
      attn::AttendBlock(view, span, nq, qp, op, lo, hi, c.attn_scale,
                        m.tile_scratch.data() + static_cast<size_t>(thread) * m.tile_scratch_stride);
    };
    int64_t attn_work = 0;
    for (int32_t t = 0; t < n; ++t) {
      const int32_t lo = swa ? std::max(0, batch.pos[t] - c.sliding_window + 1) : 0;
      attn_work += static_cast<int64_t>(batch.pos[t] - lo + 1) * (Dk + Dv) * Hq;
    }
    const int64_t n_tile_tasks = static_cast<int64_t>(m.tiles.size()) * Hkv;
    if (all_single && n_tile_tasks < pool.size()) {
      // Too few (row, kv head) tasks to occupy the threads (e.g. one Gemma decode row with one kv
      // head): one task per (row, query head) instead.
      if (attn_work < kMinParallelWork) {
        for (int64_t task = 0; task < int64_t{n} * Hq; ++task) attend(task, 0);
      } else {
        pool.Run(int64_t{n} * Hq, std::ref(attend));
      }
    } else if (attn_work < kMinParallelWork) {
      for (int64_t task = 0; task < n_tile_tasks; ++task) attend_tile(task, 0);
    } else {
      pool.Run(n_tile_tasks, std::ref(attend_tile));
    }
    timer.Mark(&prof.attention_ms);

    MatMul(*L.wo, m.att.data(), n, m.o.data(), pool, m.mm);
    timer.Mark(&prof.matmul_ms);
    for_rows(E, [&](int32_t t) {
      float* ot = m.o.data() + static_cast<size_t>(t) * E;
      if (L.post_attn_norm != nullptr) ops::RmsNorm(ot, L.post_attn_norm, E, c.rms_eps, ot);
      float* xt = m.x.data() + static_cast<size_t>(t) * E;
      ops::Add(xt, ot, E);
      ops::RmsNorm(xt, L.ffn_norm, E, c.rms_eps, m.h.data() + static_cast<size_t>(t) * E);
    });

    timer.Mark(&prof.other_ms);

    // ---- feed-forward block ----
    const MatMulOutput gate_up[2] = {{L.gate, m.gate.data()}, {L.up, m.up.data()}};
    MatMulShared(gate_up, m.h.data(), n, pool, m.mm);
    timer.Mark(&prof.matmul_ms);
    for_rows(F * 8, [&](int32_t t) {
      float* g = m.gate.data() + static_cast<size_t>(t) * F;
      const float* u = m.up.data() + static_cast<size_t>(t) * F;
      if (c.gelu_ffn) {
        ops::GeGlu(g, u, F);
      } else {
        ops::SwiGlu(g, u, F);
      }
    });
    timer.Mark(&prof.other_ms);
    MatMul(*L.down, m.gate.data(), n, m.o.data(), pool, m.mm);
    timer.Mark(&prof.matmul_ms);
    for_rows(E, [&](int32_t t) {
      float* ot = m.o.data() + static_cast<size_t>(t) * E;
      if (L.post_ffw_norm != nullptr) ops::RmsNorm(ot, L.post_ffw_norm, E, c.rms_eps, ot);
      ops::Add(m.x.data() + static_cast<size_t>(t) * E, ot, E);
    });
  }

  // ---- output rows only ----
  for (int32_t i = 0; i < n_outputs_; ++i) {
    ops::RmsNorm(m.x.data() + static_cast<size_t>(output_rows_[i]) * E, w.output_norm, E, c.rms_eps,
                 m.out_x.data() + static_cast<size_t>(i) * E);
  }
  timer.Mark(&prof.other_ms);
  if (n_outputs_ > 0) {
    MatMul(*w.output, m.out_x.data(), n_outputs_, logits_.data(), pool, m.mm);
    timer.Mark(&prof.matmul_ms);
    if (c.final_logit_softcap > 0.0f) {
      const float cap = c.final_logit_softcap;
      for (size_t i = 0; i < static_cast<size_t>(n_outputs_) * n_vocab_; ++i) {
        logits_[i] = cap * std::tanh(logits_[i] / cap);
      }
    }
  }
  timer.Mark(&prof.other_ms);
  std::copy(m.next_pos.begin(), m.next_pos.end(), seq_len_.begin());
  return Status::Ok();
}

}  // namespace tracemark
