// Detection: token ids (+ a skip mask) and a keyring -> p-value, attribution and marked spans.
//
// For each key version (and its recorded scheme) the detector walks the tokens once, hashing each
// context and keeping only the first occurrence of every (context, token) tuple (Three Bricks
// "v2" de-duplication), skipping tuples that touch a masked token and everything from the first
// EOS on. It then computes, all with exact tails in log space (stats.h):
//   provider  the provider lane alone                          -> "is it ours?", O(tokens)
//   account   payload lane list-decoded into <= max_candidates ids; each is verified on the
//             account lane with its own HKDF key, Bonferroni over the candidates verified
//   combined  provider + account lane of the best candidate, Bonferroni over the candidates
//   window    sliding windows over provider-lane tuples, Bonferroni over the windows
// p_value = min(1, 3 * min(provider, combined, window)), then Bonferroni over the versions tried.
// Cost: O(tokens) PRF calls plus O(max_candidates * account-lane tuples), independent of the
// number of accounts. docs/watermark.md has the derivations and the validity argument.
// Targeted detection (DetectOptions::suspects, an investigation's suspect accounts S):
//   targeted  provider lane + payload lane under b's digits + account lane under b's key, one
//             exact tail per suspect b, Bonferroni over |S|; replaces `combined`, not gated
//   account   b's account lane alone, Bonferroni over |S| (no list decoding)
// Cost: |S| key derivations per Detector and key version (cached), then per document O(tokens)
// plus |S| * account-lane tuples PRF calls (the payload lane costs the same for any |S|).
// A Detector keeps scratch buffers: one per thread; Detect() is not reentrant. It holds its own
// (shared, immutable) copy of the keyring; copies of a Detector share it and are independent.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/scheme.h"
#include "tracemark/watermark/tuple_set.h"

namespace tracemark::watermark {

inline constexpr double kDefaultThreshold = 1e-6;
inline constexpr int kDefaultWindowTuples = 48;
inline constexpr int kDefaultMaxCandidates = 16;
// DetectOptions::min_entropy (nats of the model's temperature-1 distribution; see
// docs/watermark.md for the measurement behind it).
inline constexpr double kDefaultMinEntropy = 0.3;
// DetectOptions::max_token_prob: tuples whose token the model gave more than this probability
// are not scored (docs/watermark.md, "Real model": chosen once on the 4/2/2 T = 0.7 answers,
// validated on the 6/1/1 and T = 1.0 answers).
inline constexpr double kDefaultMaxTokenProb = 0.5;
inline constexpr int kMaxCandidatesLimit = 4096;
// Attribution is attempted only when the provider lane alone (whole text or best window) has
// p below this; see DetectVersion.
inline constexpr double kAttributionGate = 1e-2;
// Documents longer than this are scored on their first kMaxDetectTokens tokens.
inline constexpr size_t kMaxDetectTokens = size_t{1} << 26;
// Largest suspect list of a targeted detection (DetectOptions::suspects): each suspect costs one
// key derivation per Detector and one pass over the account-lane tuples per document.
inline constexpr size_t kMaxSuspects = 4096;

struct DetectOptions {
  double threshold = kDefaultThreshold;          // watermarked iff p_value < threshold
  double account_threshold = kDefaultThreshold;  // account named iff account_p_value < this
  std::span<const uint8_t> skip_mask;            // non-zero = masked token (placeholder, PII)
  std::span<const int32_t> eos_ids;              // scoring stops at the first of these
  int window_tuples = kDefaultWindowTuples;      // provider-lane tuples per window; 0 = off
  int max_candidates = kDefaultMaxCandidates;    // list-decoding size for attribution
  int version = 0;                               // 0 = every version in the keyring
  // Corpus-level de-duplication: when set, a tuple already in this set (scored in an earlier
  // document) is skipped, and every tuple scored here is added. Documents of one corpus then
  // share no tuple, so for a fixed key their p-values are independent (per-key calibration,
  // docs/watermark.md). Not owned; one set per corpus and thread.
  TupleSet* corpus_tuples = nullptr;
  // Entropy filter (SWEET, Lee et al. 2023): token_entropy[i] is the entropy in nats of a model's
  // next-token distribution before token i, computed from the text alone (no key); tuples whose
  // token has entropy below min_entropy are not scored. Near-deterministic tokens carry no
  // watermark evidence but add null noise, so dropping them raises power; the selection does not
  // depend on the key, so every test stays exact. Empty = off (positions past the end: scored).
  std::span<const float> token_entropy;
  double min_entropy = kDefaultMinEntropy;
  // Token-probability filter: token_prob[i] is the probability a model gives tokens[i] after
  // tokens[0, i) (text alone, temperature 1, no key); tuples whose token has probability above
  // max_token_prob are not scored. A Gumbel-max choice of probability p has u ~ Beta(1/p, 1), so
  // a likely token carries little evidence (E[-log(1-u)] - 1 = psi(1/p + 1) + gamma - 1: 0.07 at
  // p = 0.9, 0.50 at p = 0.5, 1.08 at p = 0.25) but a full Exp(1) of null noise. The selection
  // depends on the text only, so every test stays exact. Empty = off (positions past the end:
  // scored). Measured far stronger than the entropy filter on real answers (docs/watermark.md).
  std::span<const float> token_prob;
  double max_token_prob = kDefaultMaxTokenProb;
  // Targeted detection: the accounts under investigation (at most kMaxSuspects distinct ids, each
  // inside every tested version's payload space). When non-empty, `combined` becomes the targeted
  // presence test (Detection::targeted_log10_p) and attribution verifies these ids instead of the
  // decoded list (an account outside the list is never named). Ignored, with a note in
  // Detection::account_note, by schemes without account lanes (synthid-hf). docs/watermark.md,
  // "Suspects (targeted detection)".
  std::span<const uint64_t> suspects;
};

struct MarkedSpan {
  size_t begin = 0;  // token offsets [begin, end)
  size_t end = 0;
  double log10_p = 0;  // best window p inside, corrected for the number of windows
};

struct Detection {
  double p_value = 1.0;  // never 0 (clamped to the smallest double); see log10_p_value
  double log10_p_value = 0.0;
  bool watermarked = false;
  int64_t tokens_scored = 0;  // unique (context, token) tuples scored, all lanes
  std::string scheme;         // canonical spec of the best version
  int key_version = 0;
  std::optional<uint64_t> account;
  double account_p_value = 1.0;
  double account_log10_p_value = 0.0;
  std::optional<uint64_t> decoded_account;  // best candidate even when not significant
  std::vector<MarkedSpan> spans;
  // Components (log10, before the final correction) for reports and tests.
  double provider_log10_p = 0, combined_log10_p = 0, window_log10_p = 0;
  int64_t provider_tuples = 0, payload_tuples = 0, account_tuples = 0;
  int candidates_verified = 0;
  bool attribution_in_spans = false;  // attribution used only the tuples inside `spans`
  int versions_tested = 0;
  std::string account_note;  // why no account can be named (e.g. synthid-hf has no account lanes)
  // Targeted detection (DetectOptions::suspects; 0 / empty without suspects): log10 of the
  // targeted presence test, Bonferroni over the suspects, before the final correction (it takes
  // the place of combined_log10_p, which is then 0), and the suspect with the smallest p. The
  // suspect says "whose digits and key fit best", not who: the provider lane is shared, so only
  // `account` attributes.
  double targeted_log10_p = 0;
  std::optional<uint64_t> targeted_suspect;
  int suspects_tested = 0;
};

// Sufficient statistic of a set of scores under one key/slot.
struct ScoreSum {
  double sum = 0;     // gumbel: sum of -log(1-u); kgw: green count; synthid: g=1 count
  int64_t count = 0;  // tuples
  void Add(double s) {
    sum += s;
    ++count;
  }
};

// The score of one PRF word under a scheme, and the exact log tail of a ScoreSum.
double WordScore(const SchemeParams& params, uint32_t word);
double LogTail(const SchemeParams& params, const ScoreSum& s);

// Parses a suspect list: decimal account ids separated by commas (`lines` false: "101, 202") or
// one per line (`lines` true: blank lines and lines starting with '#' are skipped). Errors name
// the offending entry: an empty entry, a non-number, a duplicate, more than kMaxSuspects ids.
Result<std::vector<uint64_t>> ParseSuspects(std::string_view text, bool lines);
// A command-line suspect list: "ID[,ID...]", or "@FILE" for a file with one id per line (at most
// kMaxSuspectFileBytes).
inline constexpr size_t kMaxSuspectFileBytes = size_t{1} << 20;
Result<std::vector<uint64_t>> ParseSuspectsArg(std::string_view arg);

class Detector {
 public:
  static Result<Detector> Create(const Keyring& keyring);
  Result<Detection> Detect(std::span<const int32_t> tokens, const DetectOptions& options);
  // Validates a suspect list (size, duplicates, every id inside the payload space of every key
  // version with account lanes) and derives the suspects' account keys, once: Detect() with the
  // same list reuses them. Detect() calls it itself; call it first to fail before any document.
  Status PrepareSuspects(std::span<const uint64_t> suspects);

 private:
  struct VersionState {
    int version = 0;
    SchemeParams params;
    SchemeKeys keys;
  };
  struct AccountTuple {
    uint64_t hash;
    int32_t token;
    size_t index;
  };
  struct PayloadTuple {
    uint64_t hash;
    int32_t token;
    int position;
    size_t index;
  };
  struct ProviderPoint {
    size_t index;  // token offset
    double score;
  };
  explicit Detector(std::shared_ptr<const Keyring> keyring) : keyring_(std::move(keyring)) {}
  Result<Detection> DetectVersion(size_t vi, std::span<const int32_t> tokens,
                                  const DetectOptions& options, size_t end);
  // Fills digit_sums_ from payload_tuples_ (see detector.cc).
  void SumPayloadDigits(const VersionState& vs, double (*score)(const SchemeParams&, uint32_t));
  // The targeted presence and suspect attribution tests of one version (see DetectVersion).
  void ScoreSuspects(size_t vi, const ScoreSum& provider, bool in_spans_only, Detection& det,
                     double& log_targeted, double& log_account);

  std::shared_ptr<const Keyring> keyring_;  // a shared copy: the caller's keyring may go away
  std::vector<VersionState> versions_;
  TupleSet tuples_;
  std::vector<AccountTuple> account_tuples_;
  std::vector<ProviderPoint> provider_points_;
  std::vector<PayloadTuple> payload_tuples_;
  std::vector<ScoreSum> digit_sums_;  // payload_digits * 16
  // Suspects: the list PrepareSuspects validated last and, per entry of versions_, their account
  // keys in the same order (empty for synthid-hf versions).
  std::vector<uint64_t> suspect_ids_;
  std::vector<std::vector<uint64_t>> suspect_keys_;
  std::vector<uint8_t> account_in_span_;  // per account_tuples_ entry: inside det.spans
  // Structure-of-arrays scratch for the batched PRF: context blocks, provider-lane inputs/words.
  std::vector<uint32_t> blk0_, blk1_, blk2_, blk3_, p_lo_, p_hi_, p_tok_, w0_, w1_, w2_, w3_, zeros_;
};

// Corpus-level evidence: pools documents into one test over tuples de-duplicated across the whole
// corpus (not a product of per-document p-values, which would double count shared n-grams).
// Scores the provider lane, plus the account lane of `account` when given. Not thread-safe.
class CorpusDetector {
 public:
  static Result<CorpusDetector> Create(const Keyring& keyring, int version,
                                       std::optional<uint64_t> account);
  void AddDocument(std::span<const int32_t> tokens, std::span<const uint8_t> skip_mask = {},
                   std::span<const int32_t> eos_ids = {});
  int64_t tuples() const { return sum_.count; }
  int64_t documents() const { return documents_; }
  double LogPValue() const { return LogTail(params_, sum_); }

 private:
  CorpusDetector() = default;
  SchemeParams params_;
  SchemeKeys keys_;
  std::optional<uint64_t> account_;
  uint64_t account_key_ = 0;
  TupleSet tuples_;
  ScoreSum sum_;
  int64_t documents_ = 0;
};

}  // namespace tracemark::watermark
