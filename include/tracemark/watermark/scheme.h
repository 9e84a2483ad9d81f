// Watermark schemes, their parameters, and the per-token key schedule shared by generation and
// detection (docs/watermark.md explains the design).
//
// Every scheme draws from the same keyed PRF (prf.h) over (key, context hash, token, slot):
//   gumbel         exponential-minimum (Gumbel-max) sampling; score -log(1-u) ~ Exp(1) under H0
//   kgw-lefthash   KGW green list, context width h=1: +delta on green logits; green ~ Bern(gamma)
//   kgw-selfhash   same with h=4 (the candidate is always part of the PRF input, SBW-style)
//   synthid        SynthID-Text tournament (closed form), m layers of Bernoulli(1/2) g-values
// Context PRF (`ctx=` parameter): `hash` (default) hashes all h window tokens together; `min`
// keeps only the window token with the smallest keyed rank (MinHash seeding, Kirchenbauer et al.
// 2023, "On the Reliability of Watermarks for LLMs"), so an edit that does not touch that token
// leaves the context, hence the tuple, intact (docs/watermark.md, "Robust context").
// Attribution lanes: the keyed context hash puts each (context) in one of three lanes, shares set
// by the `lanes=P/Y/A` parameter (eighths or sixteenths; 4/2/2 when absent, e.g. 6/1/1 for more power):
//   provider lane  provider key, slot 0                          -> "is it ours?"
//   payload lane   provider key, slot 4 + 16*position + digit     -> decodes the account id
//   account lane   the account's own key, slot 0                 -> verifies the decoded id
// Plain values; thread-safe as values.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "tracemark/base/status.h"
#include "tracemark/watermark/prf.h"

namespace tracemark::watermark {

enum class SchemeKind { kGumbel, kKgw, kSynthId, kSynthIdHf };  // kSynthIdHf: synthid_hf.h

inline constexpr int kMaxContextWidth = 8;
inline constexpr int kMaxSynthIdLayers = 32;  // one 32-bit word per (context, token, slot)
inline constexpr int kPayloadRadix = 16;      // 4 bits per payload digit
inline constexpr int kMaxPayloadDigits = 8;   // up to 2^32 account ids
// Lane shares on the 32-bit lane word (its top 4 bits), in sixteenths of the space. The values of
// key versions created before lanes were a parameter (specs without `lanes=`): provider 8/16,
// payload 4/16, account 4/16. Specs written in eighths (sum 8, e.g. `lanes=6/1/1`) map to the same
// words as before the sixteenths existed (top 3 bits < P  <=>  top 4 bits < 2P).
inline constexpr uint32_t kProviderLaneSixteenths = 8;
inline constexpr uint32_t kPayloadLaneSixteenths = 4;
inline constexpr uint32_t kLaneSixteenths = 16;

// How the last h tokens become the PRF context. Specs without `ctx=` mean kHash, the only mode
// that existed before the parameter, so every stored key version keeps its meaning.
enum class ContextMode : uint8_t {
  kHash,  // one Philox block over the h tokens (position-sensitive; any edit in the window breaks it)
  kMin,   // the window token of smallest keyed rank, hashed alone (survives edits elsewhere)
};

struct SchemeParams {
  SchemeKind kind = SchemeKind::kGumbel;
  int context_width = 4;          // h: tokens of context hashed with the candidate
  ContextMode context_mode = ContextMode::kHash;
  double gamma = 0.25;            // KGW green fraction
  double delta = 2.0;             // KGW logit bias
  int layers = 30;                // SynthID tournament layers (m)
  double unkeyed_fraction = 0.1;  // gumbel: share of steps drawn by the request RNG (diversity)
  int payload_digits = 5;         // account id space = 16^digits (default 2^20)
  bool skip_repeated_contexts = true;
  // Bounded per-request history of watermarked contexts (repeated-context skipping).
  int context_history = 8192;
  // Lane split in sixteenths (provider / payload; the account lane gets the rest), every lane >= 1.
  uint32_t provider_sixteenths = kProviderLaneSixteenths;
  uint32_t payload_sixteenths = kPayloadLaneSixteenths;
  // synthid-hf (transformers-compatible SynthID-Text, synthid_hf.h): its canonical parameter
  // list; the fields above do not apply to it.
  std::string synthid_hf;

  uint64_t AccountSpace() const { return uint64_t{1} << (4 * payload_digits); }
  // Canonical text form, recorded in the keyring and in detection results.
  std::string ToSpec() const;
  std::string_view Name() const;
};

// Parses "gumbel", "kgw-lefthash", "kgw-selfhash", "synthid" ("synthid-hf" takes its own
// parameters, see ParseSynthIdHfParams in synthid_hf.h), optionally followed by
// ":key=value,..." with keys h, gamma, delta, layers, unkeyed, payload (digits), dedup (0/1),
// history, lanes (P/Y/A for the provider, payload and account lanes, in eighths summing to 8 or
// sixteenths summing to 16), ctx
// (hash|min, the context PRF; not for synthid-hf). Validates ranges; errors name the offending
// key. A parameter added after key versions were first stored (lanes, ctx) takes its original
// value (4/2/2, hash) when absent, so every stored spec keeps its meaning; ToSpec() writes it only
// when it differs from that value.
Result<SchemeParams> ParseSchemeSpec(std::string_view spec);

// A spec safe to print: synthid-hf's explicit key list is replaced by its length; every other
// spec is returned as given (they hold no secrets).
std::string PublicSchemeSpec(std::string_view spec);

// The scheme of new key versions (keyring init/rotate without --scheme). "gumbel:lanes=6/1/1"
// detects with fewer tokens but attributes later (docs/watermark.md, "Real model"); the default
// stays the 4/2/2 split that scan, serve and the red-team tests rely on for attribution.
inline constexpr std::string_view kDefaultSchemeSpec = "gumbel";

enum class Lane : uint8_t { kProvider, kPayload, kAccount };

struct ContextInfo {
  uint64_t hash = 0;
  Lane lane = Lane::kProvider;
  int position = 0;  // payload digit position (payload lane)
};

// Hashes the last h tokens of `tokens[0, end)` (kPadToken before the start) under the context key:
// all of them (ctx=hash) or the one of smallest MinRank (ctx=min).
ContextInfo HashContext(uint64_t context_key, const SchemeParams& params,
                        std::span<const int32_t> tokens, size_t end);

// ctx=min: the keyed rank of a token (a 64-bit mix of the context key and the id; ties, which
// need equal ranks of different ids, go to the smaller id). Pure.
uint64_t MinRank(uint64_t context_key, uint32_t token);

// The context hash, lane and payload position encoded in a context block (HashContext's output).
ContextInfo ContextFromBlock(const PhiloxBlock& block, const SchemeParams& params);

inline uint32_t PayloadSlot(int position, int digit) {
  return 4u + static_cast<uint32_t>(position) * kPayloadRadix + static_cast<uint32_t>(digit);
}

// Digit `position` (least significant first) of an account id.
inline int PayloadDigit(uint64_t account_id, int position) {
  return static_cast<int>((account_id >> (4 * position)) & 15u);
}

}  // namespace tracemark::watermark
