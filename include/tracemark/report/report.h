// Evidence report: one self-contained HTML file (inline CSS, inline SVG charts drawn here, no
// script, no external reference) that answers "did our outputs end up there, and from which
// account?" for a reader who is not an engineer, and prints cleanly to PDF (@media print).
//
// Sections: the question; the data examined; per-account findings with exact p-values; the
// per-document score distribution against the uniform null (scan); marked spans highlighted in
// sample documents; the probe's p-value curve(s); per account the ledger timeline (usage by day,
// state changes) and the audit entries with their Merkle inclusion proofs, verified while the
// report is written (a failed check is shown as failed, never hidden).
//
// Loading (LoadScanEvidence, LoadProbeEvidence, LoadLedgerEvidence) is separate from rendering
// (RenderReportHtml, a pure function of ReportData), so tests render hand-made data. Every piece
// of text that comes from a corpus, a ledger or a file name is HTML-escaped.
// Thread-safety: plain values and functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/probe/probe.h"

namespace tracemark::report {

// Flagged documents read from a scan (the rows are sorted by p-value in the report).
inline constexpr size_t kMaxScanRows = 1000000;
// Sample documents shown with their marked spans, and bytes shown per sample.
inline constexpr size_t kMaxSampleDocuments = 5;
inline constexpr size_t kMaxSampleBytes = 4000;
// Audit entries listed per account, and days in a usage timeline.
inline constexpr size_t kMaxAuditEntriesShown = 200;
inline constexpr size_t kMaxTimelineDays = 400;
// Bytes of a probe JSON file or scan summary read.
inline constexpr size_t kMaxEvidenceFileBytes = size_t{64} << 20;

struct Span {
  size_t byte_begin = 0, byte_end = 0;
  double log10_p = 0;
};

struct ScanRow {
  std::string doc_id;
  std::string file;
  uint64_t record = 0;
  int64_t tokens_scored = 0;
  double log10_p = 0;
  std::string account;  // "" when not attributed
  double account_p_value = 1;
  std::vector<Span> spans;
};

struct SampleDocument {
  std::string doc_id;
  std::string text;  // raw (unescaped) document text, possibly truncated to kMaxSampleBytes
  bool truncated = false;
  double log10_p = 0;
  std::string account;
  std::vector<Span> spans;  // byte offsets into text
};

struct CorpusAccount {
  std::string account;
  int64_t documents = 0, tuples = 0;
  double log10_p = 0;
};

struct ScanEvidence {
  std::string dir;
  int64_t documents_scanned = 0;
  int64_t bytes_scanned = 0;
  int64_t documents_flagged = 0;
  double threshold = 1e-6;
  std::vector<std::string> files;  // the corpus files of the job
  std::vector<ScanRow> rows;       // flagged documents
  std::vector<CorpusAccount> corpus;
  std::vector<SampleDocument> samples;
};

struct ProbeEvidence {
  std::string file;
  probe::ProbeResult result;
};

struct UsageDay {
  std::string day;  // YYYY-MM-DD (UTC)
  int64_t requests = 0;
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

struct AuditProof {
  uint64_t index = 0;
  std::string body;              // the canonical entry (raw)
  std::string action, actor, reason;
  int64_t time_ms = 0;
  uint64_t tree_size = 0;        // of the signed checkpoint the proof is against
  std::vector<std::string> path; // hex hashes of the inclusion proof
  std::string root_hex;
  bool verified = false;         // inclusion proof verified against a signature-checked root
};

struct AccountLedger {
  std::string id;
  std::string name, state, state_reason, org;
  int64_t created_at_ms = 0;
  std::vector<UsageDay> usage;  // ascending days
  std::vector<AuditProof> audit;
};

struct LedgerEvidence {
  std::string url;              // with any password removed
  bool log_verified = false;    // VerifyAuditLog of the whole log
  bool public_key_pinned = false;
  uint64_t audit_entries = 0, checkpoints = 0, signed_size = 0;
  std::vector<std::string> problems;
  std::vector<AccountLedger> accounts;
};

struct ReportData {
  std::string title = "Watermark evidence report";
  std::string generated_at;  // UTC, ISO 8601
  std::vector<std::string> accounts;  // accounts under investigation ("" = all found)
  std::optional<ScanEvidence> scan;
  std::vector<ProbeEvidence> probes;
  std::optional<LedgerEvidence> ledger;
};

// Reads DIR/summary.json and DIR/results.jsonl (docs/formats/scan.md) and up to
// kMaxSampleDocuments sample texts (the most significant flagged documents, of `accounts` when
// given) from the corpus files named in the rows, when those files can still be read.
Result<ScanEvidence> LoadScanEvidence(const std::string& dir, const std::vector<std::string>& accounts);
Result<ProbeEvidence> LoadProbeEvidence(const std::string& path);
// Reads the ledger at `url` (ledger/store.h): the accounts' records, usage by day and audit
// entries (those whose target is the account), each with an inclusion proof against the newest
// checkpoint whose Ed25519 signature verifies under the keyring's audit key; plus a full
// VerifyAuditLog. `accounts` empty: every account in the ledger.
Result<LedgerEvidence> LoadLedgerEvidence(const std::string& url, const std::string& keyring_path,
                                          const std::vector<std::string>& accounts);

std::string HtmlEscape(std::string_view text);
std::string RenderReportHtml(const ReportData& data);

}  // namespace tracemark::report
