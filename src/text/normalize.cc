#include "text/normalize.h"

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "text/unicode.h"

namespace tracemark::text {
namespace {

// Hangul syllable arithmetic (Unicode chapter 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr uint32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

uint8_t Ccc(uint32_t cp) {
  if (cp < 0x300) return 0;
  const auto* begin = internal::kCombiningClasses;
  const auto* end = begin + internal::kNumCombiningClasses;
  const auto* it = std::lower_bound(begin, end, cp,
                                    [](const auto& e, uint32_t v) { return e.cp < v; });
  return it != end && it->cp == cp ? it->ccc : 0;
}

const internal::Decomposition* FindDecomposition(uint32_t cp) {
  const auto* begin = internal::kDecompositions;
  const auto* end = begin + internal::kNumDecompositions;
  const auto* it = std::lower_bound(begin, end, cp,
                                    [](const auto& e, uint32_t v) { return e.cp < v; });
  return it != end && it->cp == cp ? it : nullptr;
}

void Decompose(uint32_t cp, std::vector<uint32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out->push_back(kTBase + s % kTCount);
    return;
  }
  const internal::Decomposition* d = FindDecomposition(cp);
  if (!d) {
    out->push_back(cp);
    return;
  }
  Decompose(d->first, out);
  if (d->second) Decompose(d->second, out);
}

const std::unordered_map<uint64_t, uint32_t>& CompositionTable() {
  static const auto* const table = [] {
    auto* t = new std::unordered_map<uint64_t, uint32_t>();
    for (size_t i = 0; i < internal::kNumDecompositions; ++i) {
      const internal::Decomposition& d = internal::kDecompositions[i];
      if (!d.second) continue;
      // Primary composites only: excluded and non-starter decompositions are NFC-unstable
      // themselves (they never appear in NFC output).
      if (CodepointFlags(d.cp) & kCpNfcUnstable) continue;
      t->emplace((static_cast<uint64_t>(d.first) << 32) | d.second, d.cp);
    }
    return t;
  }();
  return *table;
}

uint32_t Compose(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto& table = CompositionTable();
  const auto it = table.find((static_cast<uint64_t>(a) << 32) | b);
  return it == table.end() ? 0 : it->second;
}

// NFC of a run of valid codepoints.
void NormalizeRun(std::vector<uint32_t>& cps, std::string* out) {
  std::vector<uint32_t> d;
  d.reserve(cps.size() + 8);
  for (const uint32_t cp : cps) Decompose(cp, &d);
  // Canonical ordering: stable sort of each run of non-starters by class.
  for (size_t i = 0; i < d.size();) {
    if (Ccc(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && Ccc(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j,
                     [](uint32_t x, uint32_t y) { return Ccc(x) < Ccc(y); });
    i = j;
  }
  // Canonical composition.
  size_t starter = SIZE_MAX;
  uint8_t last_ccc = 0;
  std::vector<uint32_t> result;
  result.reserve(d.size());
  for (const uint32_t cp : d) {
    const uint8_t c = Ccc(cp);
    if (starter != SIZE_MAX) {
      const bool blocked = result.size() - 1 != starter && (last_ccc == 0 || last_ccc >= c);
      if (!blocked) {
        const uint32_t composed = Compose(result[starter], cp);
        if (composed) {
          result[starter] = composed;
          continue;
        }
      }
    }
    if (c == 0) {
      starter = result.size();
    }
    last_ccc = c;
    result.push_back(cp);
  }
  for (const uint32_t cp : result) AppendUtf8(cp, out);
  cps.clear();
}

}  // namespace

bool IsNfcQuick(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = 1;
    const uint32_t cp = DecodeUtf8(text, i, &len);
    if (cp != kInvalidCodepoint && (CodepointFlags(cp) & kCpNfcUnstable)) return false;
    i += len;
  }
  return true;
}

void NormalizeNfc(std::string_view text, std::string* out) {
  std::vector<uint32_t> run;
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    const uint32_t cp = DecodeUtf8(text, i, &len);
    if (cp == kInvalidCodepoint) {
      NormalizeRun(run, out);
      out->push_back(text[i]);
    } else {
      run.push_back(cp);
    }
    i += len;
  }
  NormalizeRun(run, out);
}

}  // namespace tracemark::text
