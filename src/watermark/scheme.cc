#include "tracemark/watermark/scheme.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

#include "tracemark/watermark/synthid_hf.h"

namespace tracemark::watermark {
namespace {

// ctx=min: salt of the rank mix and the tag word of the context block ("min\0").
constexpr uint64_t kMinRankSalt = 0x6D696E72616E6B31ull;
constexpr uint32_t kMinContextTag = 0x6D696E00u;

std::string FormatDouble(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

Result<double> ParseDouble(std::string_view key, std::string_view text) {
  double v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v)) {
    return InvalidArgument("scheme spec: '" + std::string(key) + "=" + std::string(text) +
                           "' is not a number");
  }
  return v;
}

Result<int> ParseInt(std::string_view key, std::string_view text) {
  int v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return InvalidArgument("scheme spec: '" + std::string(key) + "=" + std::string(text) +
                           "' is not an integer");
  }
  return v;
}

// "P/Y/A": provider, payload and account lanes in eighths (sum 8, e.g. 6/1/1) or sixteenths
// (sum 16, e.g. 14/1/1); every lane >= 1.
Status ParseLanes(std::string_view text, SchemeParams& p) {
  int parts[3] = {0, 0, 0};
  size_t k = 0;
  for (int i = 0; i < 3; ++i) {
    const size_t slash = text.find('/', k);
    const std::string_view part = text.substr(k, slash == std::string_view::npos ? slash : slash - k);
    const auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), parts[i]);
    if (ec != std::errc() || ptr != part.data() + part.size() || part.empty() ||
        (i < 2 && slash == std::string_view::npos) || (i == 2 && slash != std::string_view::npos)) {
      return InvalidArgument("scheme spec: lanes must be P/Y/A (eighths or sixteenths, e.g. 6/1/1), got '" +
                             std::string(text) + "'");
    }
    k = slash + 1;
  }
  const int sum = parts[0] + parts[1] + parts[2];
  if (parts[0] < 1 || parts[1] < 1 || parts[2] < 1 || (sum != 8 && sum != 16)) {
    return InvalidArgument("scheme spec: lanes P/Y/A must each be >= 1 and sum to 8 or 16, got '" +
                           std::string(text) + "'");
  }
  const int scale = static_cast<int>(kLaneSixteenths) / sum;
  p.provider_sixteenths = static_cast<uint32_t>(parts[0] * scale);
  p.payload_sixteenths = static_cast<uint32_t>(parts[1] * scale);
  return Status();
}

}  // namespace

std::string_view SchemeParams::Name() const {
  switch (kind) {
    case SchemeKind::kGumbel:
      return "gumbel";
    case SchemeKind::kKgw:
      return context_width == 1 ? "kgw-lefthash" : "kgw-selfhash";
    case SchemeKind::kSynthId:
      return "synthid";
    case SchemeKind::kSynthIdHf:
      return "synthid-hf";
  }
  return "unknown";
}

std::string SchemeParams::ToSpec() const {
  if (kind == SchemeKind::kSynthIdHf) return "synthid-hf:" + synthid_hf;
  std::string s(Name());
  s += ":h=" + std::to_string(context_width);
  switch (kind) {
    case SchemeKind::kGumbel:
      s += ",unkeyed=" + FormatDouble(unkeyed_fraction);
      break;
    case SchemeKind::kKgw:
      s += ",gamma=" + FormatDouble(gamma) + ",delta=" + FormatDouble(delta);
      break;
    case SchemeKind::kSynthId:
      s += ",layers=" + std::to_string(layers);
      break;
    case SchemeKind::kSynthIdHf:
      break;
  }
  s += ",payload=" + std::to_string(payload_digits);
  s += ",dedup=" + std::string(skip_repeated_contexts ? "1" : "0");
  s += ",history=" + std::to_string(context_history);
  if (provider_sixteenths != kProviderLaneSixteenths || payload_sixteenths != kPayloadLaneSixteenths) {
    // Eighths when the split has them (the form every key version before sixteenths stored).
    const uint32_t account = kLaneSixteenths - provider_sixteenths - payload_sixteenths;
    const uint32_t div = (provider_sixteenths % 2 == 0 && payload_sixteenths % 2 == 0 && account % 2 == 0) ? 2 : 1;
    s += ",lanes=" + std::to_string(provider_sixteenths / div) + "/" + std::to_string(payload_sixteenths / div) +
         "/" + std::to_string(account / div);
  }
  if (context_mode == ContextMode::kMin) s += ",ctx=min";
  return s;
}

Result<SchemeParams> ParseSchemeSpec(std::string_view spec) {
  SchemeParams p;
  const size_t colon = spec.find(':');
  const std::string_view name = spec.substr(0, colon);
  if (name == "synthid-hf") {
    p.kind = SchemeKind::kSynthIdHf;
    TM_ASSIGN_OR_RETURN(SynthIdHfConfig hf, ParseSynthIdHfParams(colon == std::string_view::npos
                                                                      ? std::string_view()
                                                                      : spec.substr(colon + 1)));
    p.synthid_hf = hf.ToParams();
    return p;
  }
  if (name == "gumbel") {
    p.kind = SchemeKind::kGumbel;
    p.context_width = 4;
  } else if (name == "kgw-lefthash") {
    p.kind = SchemeKind::kKgw;
    p.context_width = 1;
  } else if (name == "kgw-selfhash") {
    p.kind = SchemeKind::kKgw;
    p.context_width = 4;
  } else if (name == "synthid") {
    p.kind = SchemeKind::kSynthId;
    p.context_width = 4;
  } else {
    return InvalidArgument("scheme spec: unknown scheme '" + std::string(name) +
                           "' (expected gumbel, kgw-lefthash, kgw-selfhash, synthid or synthid-hf)");
  }
  std::string_view rest = colon == std::string_view::npos ? std::string_view() : spec.substr(colon + 1);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgument("scheme spec: '" + std::string(item) + "' is not key=value");
    }
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "h") {
      TM_ASSIGN_OR_RETURN(p.context_width, ParseInt(key, value));
    } else if (key == "gamma") {
      TM_ASSIGN_OR_RETURN(p.gamma, ParseDouble(key, value));
    } else if (key == "delta") {
      TM_ASSIGN_OR_RETURN(p.delta, ParseDouble(key, value));
    } else if (key == "layers") {
      TM_ASSIGN_OR_RETURN(p.layers, ParseInt(key, value));
    } else if (key == "unkeyed") {
      TM_ASSIGN_OR_RETURN(p.unkeyed_fraction, ParseDouble(key, value));
    } else if (key == "payload") {
      TM_ASSIGN_OR_RETURN(p.payload_digits, ParseInt(key, value));
    } else if (key == "dedup") {
      TM_ASSIGN_OR_RETURN(int v, ParseInt(key, value));
      if (v != 0 && v != 1) return InvalidArgument("scheme spec: dedup must be 0 or 1");
      p.skip_repeated_contexts = v == 1;
    } else if (key == "history") {
      TM_ASSIGN_OR_RETURN(p.context_history, ParseInt(key, value));
    } else if (key == "lanes") {
      TM_RETURN_IF_ERROR(ParseLanes(value, p));
    } else if (key == "ctx") {
      if (value == "hash") {
        p.context_mode = ContextMode::kHash;
      } else if (value == "min") {
        p.context_mode = ContextMode::kMin;
      } else {
        return InvalidArgument("scheme spec: ctx must be hash or min, got '" + std::string(value) + "'");
      }
    } else {
      return InvalidArgument("scheme spec: unknown parameter '" + std::string(key) + "'");
    }
  }
  if (p.context_width < 1 || p.context_width > kMaxContextWidth) {
    return InvalidArgument("scheme spec: h must be in [1, " + std::to_string(kMaxContextWidth) + "]");
  }
  if (!(p.gamma > 0.0 && p.gamma < 1.0)) return InvalidArgument("scheme spec: gamma must be in (0, 1)");
  if (!(p.delta >= 0.0 && p.delta <= 20.0)) return InvalidArgument("scheme spec: delta must be in [0, 20]");
  if (p.layers < 1 || p.layers > kMaxSynthIdLayers) {
    return InvalidArgument("scheme spec: layers must be in [1, " + std::to_string(kMaxSynthIdLayers) + "]");
  }
  if (!(p.unkeyed_fraction >= 0.0 && p.unkeyed_fraction < 1.0)) {
    return InvalidArgument("scheme spec: unkeyed must be in [0, 1)");
  }
  if (p.payload_digits < 1 || p.payload_digits > kMaxPayloadDigits) {
    return InvalidArgument("scheme spec: payload (digits of 4 bits) must be in [1, " +
                           std::to_string(kMaxPayloadDigits) + "]");
  }
  if (p.context_history < 0 || p.context_history > (1 << 20)) {
    return InvalidArgument("scheme spec: history must be in [0, 1048576]");
  }
  return p;
}

std::string PublicSchemeSpec(std::string_view spec) {
  const size_t colon = spec.find(':');
  if (spec.substr(0, colon) != "synthid-hf") return std::string(spec);
  auto hf = ParseSynthIdHfParams(colon == std::string_view::npos ? std::string_view() : spec.substr(colon + 1));
  return hf.ok() ? "synthid-hf:" + hf->ToPublicParams() : std::string("synthid-hf:(unparsable)");
}

uint64_t MinRank(uint64_t context_key, uint32_t token) {
  // SplitMix64's finalizer (Steele et al. 2014) over the key and the id: a statistical mix, like
  // Philox; the rank only chooses which window token becomes the context.
  uint64_t z = (context_key ^ kMinRankSalt) + (static_cast<uint64_t>(token) + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

ContextInfo HashContext(uint64_t context_key, const SchemeParams& params,
                        std::span<const int32_t> tokens, size_t end) {
  auto at = [&](int back) -> uint32_t {  // back = 1 is the token just before `end`
    return end >= static_cast<size_t>(back) ? static_cast<uint32_t>(tokens[end - back]) : kPadToken;
  };
  const int h = params.context_width;
  if (params.context_mode == ContextMode::kMin) {
    uint32_t best = at(1);
    uint64_t best_rank = MinRank(context_key, best);
    for (int back = 2; back <= h; ++back) {
      const uint32_t t = at(back);
      const uint64_t r = MinRank(context_key, t);
      if (r < best_rank || (r == best_rank && t < best)) {
        best = t;
        best_rank = r;
      }
    }
    // The tag keeps these blocks apart from ctx=hash blocks of one-token contexts.
    return ContextFromBlock(Philox4x32(context_key, {best, kMinContextTag, 0u, 0u}), params);
  }
  // Up to four tokens per Philox block; wider contexts chain blocks through the hash.
  PhiloxBlock block{at(1), h >= 2 ? at(2) : 0u, h >= 3 ? at(3) : 0u, h >= 4 ? at(4) : 0u};
  block = Philox4x32(context_key, block);
  if (h > 4) {
    block = Philox4x32(context_key ^ 0x9E3779B97F4A7C15ull,
                       {block[0] ^ at(5), block[1] ^ (h >= 6 ? at(6) : 0u),
                        block[2] ^ (h >= 7 ? at(7) : 0u), block[3] ^ (h >= 8 ? at(8) : 0u)});
  }
  return ContextFromBlock(block, params);
}

ContextInfo ContextFromBlock(const PhiloxBlock& block, const SchemeParams& params) {
  ContextInfo info;
  info.hash = (static_cast<uint64_t>(block[1]) << 32) | block[0];
  const uint32_t lane_word = block[2] >> 28;  // sixteenths
  if (lane_word < params.provider_sixteenths) {
    info.lane = Lane::kProvider;
  } else if (lane_word < params.provider_sixteenths + params.payload_sixteenths) {
    info.lane = Lane::kPayload;
    info.position = static_cast<int>(block[3] % static_cast<uint32_t>(params.payload_digits));
  } else {
    info.lane = Lane::kAccount;
  }
  return info;
}

}  // namespace tracemark::watermark
