#include "tracemark/watermark/synthid_hf.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <mutex>
#include <utility>

#include "tracemark/crypto/crypto.h"
#include "tracemark/watermark/stats.h"
#include "watermark/synthid_hf_tables.h"

namespace tracemark::watermark {
namespace {

constexpr double kLn10 = 2.302585092994045684;
constexpr uint64_t kLow16 = kSynthIdHfTableSize - 1;

// SHA-256 of assets/watermark/synthid_sampling_table_<seed>.bin, as printed by
// tools/gen_synthid_table.py (torch 2.15 CPU generator; HF transformers 5.24).
struct TablePin {
  int seed;
  std::string_view sha256;
};
constexpr TablePin kTablePins[] = {
    {0, "4b2efa3fbbaa5f77facce45f2c2af38ba36436b2b2b81f950005fa8af266fd3c"},
    {1, "c2776bec1aeca8682d97402f437a838b89669e0b444c625a9c6ac7edabce1e2a"},
};

const TablePin* FindPin(int seed) {
  for (const TablePin& p : kTablePins) {
    if (p.seed == seed) return &p;
  }
  return nullptr;
}

std::string SupportedSeeds() {
  std::string s;
  for (const TablePin& p : kTablePins) s += (s.empty() ? "" : ", ") + std::to_string(p.seed);
  return s;
}

Result<int64_t> ParseInt64(std::string_view key, std::string_view text) {
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return InvalidArgument("scheme spec synthid-hf: '" + std::string(key) + "' value '" + std::string(text) +
                           "' is not a 64-bit integer");
  }
  return v;
}

Result<int> ParseIntIn(std::string_view key, std::string_view text, int lo, int hi) {
  TM_ASSIGN_OR_RETURN(int64_t v, ParseInt64(key, text));
  if (v < lo || v > hi) {
    return InvalidArgument("scheme spec synthid-hf: " + std::string(key) + " must be in [" + std::to_string(lo) +
                           ", " + std::to_string(hi) + "], got " + std::string(text));
  }
  return static_cast<int>(v);
}

bool TableBit(std::span<const uint8_t> table, uint64_t index) {
  return ((table[index >> 3] >> (index & 7)) & 1u) != 0;
}

// Last position of each context hash, for the ring semantics of HF's context history without
// scanning the ring: flat open addressing, sized per document.
class LastSeen {
 public:
  explicit LastSeen(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
  }
  // Returns the previous position of `hash` (or -1) and records `pos`.
  int64_t Exchange(uint64_t hash, int64_t pos) {
    uint64_t x = hash ^ (hash >> 31);
    x *= 0x9E3779B97F4A7C15ull;
    for (size_t i = static_cast<size_t>(x >> 20) & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.pos < 0) {
        s = {hash, pos};
        return -1;
      }
      if (s.hash == hash) return std::exchange(s.pos, pos);
    }
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    int64_t pos = -1;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// HF's repetition test at context index j: the zero-initialized ring of `history` hashes holds
// the pushes of indices j-1 .. j-history, and zeros while fewer than `history` were pushed.
bool RepeatedInRing(uint64_t hash, int64_t j, int64_t previous, int64_t history) {
  if (j < history && hash == 0) return true;
  return previous >= 0 && j - previous <= history;
}

}  // namespace

// ---- Config ----

std::string SynthIdHfConfig::ToParams() const {
  std::string s = "keys=";
  if (derive_keys) {
    s += "derive,layers=" + std::to_string(layers);
  } else {
    for (size_t i = 0; i < keys.size(); ++i) s += (i ? "/" : "") + std::to_string(keys[i]);
  }
  s += ",ngram=" + std::to_string(ngram_len) + ",seed=" + std::to_string(table_seed) +
       ",history=" + std::to_string(context_history) + ",skipfirst=" + (skip_first_ngram_calls ? "1" : "0");
  return s;
}

std::string SynthIdHfConfig::ToPublicParams() const {
  if (derive_keys) return ToParams();
  SynthIdHfConfig c = *this;
  c.derive_keys = true;
  c.layers = depth();
  std::string s = c.ToParams();
  return "keys=explicit" + s.substr(std::string_view("keys=derive").size());
}

Result<SynthIdHfConfig> ParseSynthIdHfParams(std::string_view params) {
  SynthIdHfConfig c;
  bool layers_given = false;
  std::string_view rest = params;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgument("scheme spec synthid-hf: '" + std::string(item) + "' is not key=value");
    }
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "keys") {
      if (value == "derive") {
        c.derive_keys = true;
        c.keys.clear();
        continue;
      }
      c.derive_keys = false;
      c.keys.clear();
      std::string_view list = value;
      while (true) {
        const size_t slash = list.find('/');
        TM_ASSIGN_OR_RETURN(int64_t k, ParseInt64("keys", list.substr(0, slash)));
        if (c.keys.size() >= static_cast<size_t>(kSynthIdHfMaxLayers)) {
          return InvalidArgument("scheme spec synthid-hf: at most " + std::to_string(kSynthIdHfMaxLayers) +
                                 " keys (one per layer)");
        }
        c.keys.push_back(k);
        if (slash == std::string_view::npos) break;
        list = list.substr(slash + 1);
      }
    } else if (key == "layers") {
      TM_ASSIGN_OR_RETURN(c.layers, ParseIntIn(key, value, 1, kSynthIdHfMaxLayers));
      layers_given = true;
    } else if (key == "ngram") {
      TM_ASSIGN_OR_RETURN(c.ngram_len, ParseIntIn(key, value, kSynthIdHfMinNgram, kSynthIdHfMaxNgram));
    } else if (key == "seed") {
      TM_ASSIGN_OR_RETURN(int64_t seed, ParseInt64(key, value));
      if (FindPin(static_cast<int>(seed)) == nullptr || seed != static_cast<int>(seed)) {
        return InvalidArgument("scheme spec synthid-hf: no sampling table is shipped for seed " +
                               std::string(value) + " (shipped: " + SupportedSeeds() +
                               "); export one with tools/gen_synthid_table.py --seed N and pin it");
      }
      c.table_seed = static_cast<int>(seed);
    } else if (key == "history") {
      TM_ASSIGN_OR_RETURN(c.context_history, ParseIntIn(key, value, 1, kSynthIdHfMaxHistory));
    } else if (key == "skipfirst") {
      TM_ASSIGN_OR_RETURN(int v, ParseIntIn(key, value, 0, 1));
      c.skip_first_ngram_calls = v == 1;
    } else {
      return InvalidArgument("scheme spec synthid-hf: unknown parameter '" + std::string(key) +
                             "' (expected keys, layers, ngram, seed, history, skipfirst)");
    }
  }
  if (!c.derive_keys && layers_given) {
    return InvalidArgument("scheme spec synthid-hf: layers= goes with keys=derive; an explicit key list sets "
                           "the depth itself");
  }
  return c;
}

// ---- Sampling table ----

Status VerifySynthIdHfTable(int seed, std::span<const uint8_t> bytes) {
  const TablePin* pin = FindPin(seed);
  if (pin == nullptr) {
    return NotFound("synthid-hf: no SHA-256 pin for the sampling table of seed " + std::to_string(seed) +
                    " (pinned: " + SupportedSeeds() + ")");
  }
  if (bytes.size() != kSynthIdHfTableBytes) {
    return InvalidArgument("synthid-hf: sampling table for seed " + std::to_string(seed) + " has " +
                           std::to_string(bytes.size()) + " bytes, expected " +
                           std::to_string(kSynthIdHfTableBytes));
  }
  const crypto::Digest d = crypto::Sha256(bytes);
  const std::string hex = crypto::HexEncode(d);
  if (hex != pin->sha256) {
    return InvalidArgument("synthid-hf: sampling table for seed " + std::to_string(seed) + " has SHA-256 " + hex +
                           ", expected " + std::string(pin->sha256) +
                           "; it is not the table transformers draws on CPU. Re-export "
                           "assets/watermark/synthid_sampling_table_" +
                           std::to_string(seed) + ".bin with tools/gen_synthid_table.py and rebuild");
  }
  return Status::Ok();
}

Result<std::span<const uint8_t>> SynthIdHfSamplingTable(int seed) {
  const std::span<const uint8_t> bytes = synthid_hf_assets::EmbeddedTable(seed);
  if (bytes.empty()) {
    return NotFound("synthid-hf: no sampling table for seed " + std::to_string(seed) +
                    " is embedded in this binary (shipped: " + SupportedSeeds() + ")");
  }
  TM_RETURN_IF_ERROR(VerifySynthIdHfTable(seed, bytes));
  return bytes;
}

Result<std::shared_ptr<const SynthIdHfKeyedTable>> SynthIdHfKeyedTable::Get(int seed,
                                                                            std::span<const int64_t> keys) {
  if (keys.empty() || keys.size() > static_cast<size_t>(kSynthIdHfMaxLayers)) {
    return InvalidArgument("synthid-hf: need 1 to " + std::to_string(kSynthIdHfMaxLayers) + " keys, got " +
                           std::to_string(keys.size()));
  }
  struct Entry {
    int seed;
    std::vector<int64_t> keys;
    std::shared_ptr<const SynthIdHfKeyedTable> table;
  };
  static std::mutex mu;
  static std::vector<Entry> cache;  // most recent last
  {
    std::lock_guard<std::mutex> lock(mu);
    for (size_t i = 0; i < cache.size(); ++i) {
      if (cache[i].seed == seed && std::equal(keys.begin(), keys.end(), cache[i].keys.begin(), cache[i].keys.end())) {
        std::rotate(cache.begin() + static_cast<std::ptrdiff_t>(i), cache.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                    cache.end());
        return cache.back().table;
      }
    }
  }
  TM_ASSIGN_OR_RETURN(std::span<const uint8_t> bits, SynthIdHfSamplingTable(seed));
  std::shared_ptr<SynthIdHfKeyedTable> t(new SynthIdHfKeyedTable());
  t->depth_ = static_cast<int>(keys.size());
  int64_t ones = 0;
  for (uint8_t b : bits) ones += std::popcount(b);
  t->ones_fraction_ = static_cast<double>(ones) / static_cast<double>(kSynthIdHfTableSize);
  // The table index of layer l is ((h + key_l) * a + 1) mod 2^16, a function of h mod 2^16.
  t->masks_.assign(kSynthIdHfTableSize, 0);
  for (size_t l = 0; l < keys.size(); ++l) {
    const uint64_t bit = uint64_t{1} << l;
    for (uint64_t x = 0; x < kSynthIdHfTableSize; ++x) {
      if (TableBit(bits, SynthIdHfAccumulate(x, keys[l]) & kLow16)) t->masks_[x] |= bit;
    }
  }
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= kSynthIdHfCachedKeySets) cache.erase(cache.begin());
  cache.push_back({seed, std::vector<int64_t>(keys.begin(), keys.end()), t});
  return std::shared_ptr<const SynthIdHfKeyedTable>(t);
}

// ---- SynthIdHf ----

Result<SynthIdHf> SynthIdHf::Create(const SynthIdHfConfig& config, std::span<const int64_t> keys) {
  TM_ASSIGN_OR_RETURN(auto table, SynthIdHfKeyedTable::Get(config.table_seed, keys));
  return SynthIdHf(config, std::move(table));
}

Result<std::vector<int64_t>> SynthIdHf::DeriveKeys(const Keyring& keyring, int version,
                                                   const SynthIdHfConfig& config) {
  const KeyVersion* v = keyring.Find(version);
  if (v == nullptr) return NotFound("keyring: no key version " + std::to_string(version));
  const std::string label = "tracemark/v1/synthid-hf/keys|version=" + std::to_string(v->version) +
                            "|scheme=" + v->scheme;
  const size_t n = static_cast<size_t>(config.layers);
  TM_ASSIGN_OR_RETURN(crypto::SecretBytes okm, crypto::HkdfExpand(v->prk.span(), crypto::AsBytes(label), 8 * n));
  std::vector<int64_t> keys(n);
  for (size_t l = 0; l < n; ++l) {
    uint64_t k = 0;
    for (int b = 7; b >= 0; --b) k = (k << 8) | okm.data()[8 * l + static_cast<size_t>(b)];
    keys[l] = static_cast<int64_t>(k);
  }
  return keys;
}

Result<SynthIdHf> SynthIdHf::FromKeyring(const Keyring& keyring, int version, const SynthIdHfConfig& config) {
  if (!config.derive_keys) return Create(config, config.keys);
  TM_ASSIGN_OR_RETURN(std::vector<int64_t> keys, DeriveKeys(keyring, version, config));
  return Create(config, keys);
}

uint64_t SynthIdHf::ContextHash(std::span<const int32_t> tokens, size_t end) const {
  uint64_t h = kSynthIdHfInitialHash;
  for (size_t j = end - static_cast<size_t>(config_.ngram_len - 1); j < end; ++j) {
    h = SynthIdHfAccumulate(h, tokens[j]);
  }
  return h;
}

void SynthIdHf::ComputeGValues(std::span<const int32_t> tokens, std::vector<uint64_t>* out) const {
  out->clear();
  const size_t n = static_cast<size_t>(config_.ngram_len);
  for (size_t i = n - 1; i < tokens.size(); ++i) out->push_back(GMask(ContextHash(tokens, i), tokens[i]));
}

void SynthIdHf::ComputeRepetitionMask(std::span<const int32_t> tokens, std::vector<uint8_t>* out) const {
  out->clear();
  const size_t n = static_cast<size_t>(config_.ngram_len);
  if (tokens.size() < n) return;
  const size_t contexts = tokens.size() - n + 1;
  LastSeen seen(contexts);
  for (size_t j = 0; j < contexts; ++j) {
    const uint64_t h = ContextHash(tokens, j + n - 1);
    const int64_t jj = static_cast<int64_t>(j);
    const int64_t prev = seen.Exchange(h, jj);
    out->push_back(RepeatedInRing(h, jj, prev, config_.context_history) ? 0 : 1);
  }
}

void SynthIdHf::ComputeEosMask(std::span<const int32_t> tokens, int32_t eos_id, std::vector<uint8_t>* out) {
  out->assign(tokens.size(), 1);
  const auto it = std::find(tokens.begin(), tokens.end(), eos_id);
  std::fill(out->begin() + (it - tokens.begin()), out->end(), 0);
}

void SynthIdHf::Tournament(uint64_t context_hash, std::span<const int32_t> ids, std::span<double> probs,
                           std::vector<uint64_t>* masks) const {
  const size_t n = ids.size();
  if (masks->size() < n) masks->resize(n);
  uint64_t* m = masks->data();
  double* p = probs.data();
  for (size_t i = 0; i < n; ++i) m[i] = GMask(context_hash, ids[i]);
  const int depth = table_->depth();
  // One pass per layer: apply layer l's factor (1 + g_l - mass_l) and accumulate layer l + 1's
  // g-mass over the updated probabilities. Eight partial sums in a fixed order (deterministic)
  // let the reduction vectorize; g goes through int32 -> double, which AVX2 converts in vector
  // registers. (A select on (mask & bit) != 0 instead was miscompiled by GCC 12 at -O3 with
  // -march=x86-64-v3: the committed vectors caught it.)
  constexpr size_t kLanes = 8;
  auto g = [m](size_t k, int l) { return static_cast<double>(static_cast<int32_t>(m[k] >> l) & 1); };
  double mass = 0.0;
  {
    double acc[kLanes] = {};
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (size_t q = 0; q < kLanes; ++q) acc[q] += p[i + q] * g(i + q, 0);
    }
    for (; i < n; ++i) acc[0] += p[i] * g(i, 0);
    for (double a : acc) mass += a;
  }
  for (int l = 0; l < depth; ++l) {
    const double base = 1.0 - mass;
    const int next = l + 1 < kSynthIdHfMaxLayers ? l + 1 : l;  // the last layer's next mass is unused
    double acc[kLanes] = {};
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (size_t q = 0; q < kLanes; ++q) {
        const double v = p[i + q] * (base + g(i + q, l));
        p[i + q] = v;
        acc[q] += v * g(i + q, next);
      }
    }
    for (; i < n; ++i) {
      const double v = p[i] * (base + g(i, l));
      p[i] = v;
      acc[0] += v * g(i, next);
    }
    mass = 0.0;
    for (double a : acc) mass += a;
  }
}

SynthIdHfScore SynthIdHf::Score(std::span<const int32_t> tokens, size_t end,
                                std::span<const uint8_t> skip_mask, TupleSet* corpus) const {
  SynthIdHfScore s;
  const size_t n = static_cast<size_t>(config_.ngram_len);
  end = std::min(end, tokens.size());
  if (end < n) return s;
  const int depth = table_->depth();
  const uint64_t depth_mask = depth >= 64 ? ~uint64_t{0} : ((uint64_t{1} << depth) - 1);
  // Weighted-mean weights: linspace(10, 1, depth) scaled to sum to depth (DeepMind detector_mean).
  double weights[kSynthIdHfMaxLayers];
  double wsum = 0;
  for (int l = 0; l < depth; ++l) {
    weights[l] = depth == 1 ? 10.0 : 10.0 - 9.0 * static_cast<double>(l) / static_cast<double>(depth - 1);
    wsum += weights[l];
  }
  for (int l = 0; l < depth; ++l) weights[l] *= static_cast<double>(depth) / wsum;

  const size_t contexts = end - n + 1;
  LastSeen seen(contexts);
  std::vector<uint64_t> classes(kSynthIdHfTableSize / 64, 0);  // n-gram hash classes scored
  int64_t last_masked = -1;
  for (size_t i = 0; i + 1 < n; ++i) {
    if (i < skip_mask.size() && skip_mask[i] != 0) last_masked = static_cast<int64_t>(i);
  }
  double g_sum = 0, w_sum = 0;
  for (size_t j = 0; j < contexts; ++j) {
    const size_t i = j + n - 1;  // last token of the n-gram
    if (i < skip_mask.size() && skip_mask[i] != 0) last_masked = static_cast<int64_t>(i);
    const uint64_t ctx = ContextHash(tokens, i);
    const int64_t jj = static_cast<int64_t>(j);
    if (RepeatedInRing(ctx, jj, seen.Exchange(ctx, jj), config_.context_history)) continue;
    const uint64_t ngram = SynthIdHfAccumulate(ctx, tokens[i]);
    const uint64_t g = table_->GMask(ngram) & depth_mask;
    ++s.hf_unmasked;
    g_sum += std::popcount(g);
    for (uint64_t b = g; b != 0; b &= b - 1) w_sum += weights[std::countr_zero(b)];
    if (last_masked >= static_cast<int64_t>(i + 1 - n)) continue;
    const uint64_t cls = ngram & kLow16;
    if ((classes[cls >> 6] >> (cls & 63)) & 1u) continue;
    classes[cls >> 6] |= uint64_t{1} << (cls & 63);
    if (corpus != nullptr && !corpus->Insert(cls, kSynthIdHfCorpusToken)) continue;
    ++s.units;
    s.ones += std::popcount(g);
  }
  if (s.hf_unmasked > 0) {
    const double denom = static_cast<double>(depth) * static_cast<double>(s.hf_unmasked);
    s.mean = g_sum / denom;
    s.weighted_mean = w_sum / denom;
  }
  s.trials = s.units * depth;
  s.log_p = s.trials > 0 ? LogBinomialUpperTail(s.ones, s.trials, table_->ones_fraction()) : 0.0;
  return s;
}

// ---- Generation ----

SynthIdHfHook::SynthIdHfHook(SynthIdHf wm)
    : wm_(std::move(wm)),
      context_(static_cast<size_t>(wm_.config().ngram_len - 1), 0),
      history_(static_cast<size_t>(wm_.config().context_history), 0) {}

bool SynthIdHfHook::BeginStep() {
  ++calls_;
  const SynthIdHfConfig& c = wm_.config();
  if (c.skip_first_ngram_calls && calls_ < c.ngram_len) {
    last_repeated_ = false;
    return false;
  }
  uint64_t h = kSynthIdHfInitialHash;
  for (int32_t t : context_) h = SynthIdHfAccumulate(h, t);
  last_context_hash_ = h;
  last_repeated_ = std::find(history_.begin(), history_.end(), h) != history_.end();
  history_[history_head_] = h;
  history_head_ = history_head_ + 1 == history_.size() ? 0 : history_head_ + 1;
  return !last_repeated_;
}

void SynthIdHfHook::WatermarkedProbs(const TokenCandidates& c, std::vector<double>* probs) {
  const size_t n = c.ids.size();
  probs->resize(n);
  for (size_t i = 0; i < n; ++i) (*probs)[i] = c.probs[i] > 0.0f ? static_cast<double>(c.probs[i]) : 0.0;
  wm_.Tournament(last_context_hash_, c.ids, *probs, &masks_);
}

int32_t SynthIdHfHook::Choose(const TokenCandidates& c, std::span<const int32_t> /*context*/, Rng& rng) {
  const size_t n = c.ids.size();
  if (!BeginStep()) {
    if (last_repeated_) ++skipped_repeats_;
    return -1;
  }
  if (n == 0) return -1;
  WatermarkedProbs(c, &probs_);
  const double* p = probs_.data();
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += p[i];
  if (!(total > 0.0)) return -1;
  const double r = rng.Uniform() * total;
  double acc = 0.0;
  int32_t choice = -1;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] <= 0.0) continue;
    choice = c.ids[i];
    acc += p[i];
    if (r < acc) break;
  }
  if (choice >= 0) ++watermarked_steps_;
  return choice;
}

void SynthIdHfHook::Accept(int32_t token) {
  if (context_.empty()) return;
  std::copy(context_.begin() + 1, context_.end(), context_.begin());
  context_.back() = token;
}

// ---- Scheme entry points ----

Result<std::unique_ptr<SamplerHook>> MakeSynthIdHfHook(const Keyring& keyring, int version,
                                                       const SchemeParams& params) {
  TM_ASSIGN_OR_RETURN(SynthIdHfConfig config, ParseSynthIdHfParams(params.synthid_hf));
  TM_ASSIGN_OR_RETURN(SynthIdHf wm, SynthIdHf::FromKeyring(keyring, version, config));
  return std::unique_ptr<SamplerHook>(new SynthIdHfHook(std::move(wm)));
}

Result<Detection> DetectSynthIdHfVersion(const Keyring& keyring, int version, const SchemeParams& params,
                                         std::span<const int32_t> tokens, const DetectOptions& options,
                                         size_t end) {
  TM_ASSIGN_OR_RETURN(SynthIdHfConfig config, ParseSynthIdHfParams(params.synthid_hf));
  TM_ASSIGN_OR_RETURN(SynthIdHf wm, SynthIdHf::FromKeyring(keyring, version, config));
  const SynthIdHfScore s = wm.Score(tokens, end, options.skip_mask, options.corpus_tuples);
  Detection det;
  det.scheme = "synthid-hf:" + config.ToPublicParams();
  det.key_version = version;
  det.tokens_scored = s.units;
  det.provider_tuples = s.units;
  det.log10_p_value = s.log_p / kLn10;
  det.provider_log10_p = det.log10_p_value;
  det.combined_log10_p = det.log10_p_value;
  det.account_note =
      "synthid-hf (transformers-compatible SynthID-Text) uses one key set per keyring version and has no "
      "account lanes: it answers 'is it ours?' only";
  return det;
}

}  // namespace tracemark::watermark
