// Evidence loaders for the report: scan output directory, probe JSON, ledger (usage, audit log
// with verified inclusion proofs).
#include <openssl/evp.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "tracemark/base/file.h"
#include "tracemark/ledger/audit_log.h"
#include "tracemark/ledger/merkle.h"
#include "tracemark/ledger/store.h"
#include "tracemark/policy/server_keys.h"
#include "tracemark/report/report.h"
#include "tracemark/scan/record_reader.h"
#include "tracemark/watermark/keyring.h"

namespace tracemark::report {
namespace {

using Json = nlohmann::json;

std::string DayOf(int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
  return buf;
}

// "postgresql://user:secret@host/db" -> "postgresql://user:***@host/db".
std::string RedactUrl(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  const size_t colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

bool Base64Decode32(std::string_view b64, ledger::Hash* out) {
  unsigned char buf[64];
  if (b64.size() != 44) return false;
  const int n = EVP_DecodeBlock(buf, reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
  if (n != 33) return false;  // 32 bytes + 1 for the '=' padding EVP_DecodeBlock does not strip
  std::copy(buf, buf + 32, out->begin());
  return true;
}

// An account id as written by scan outputs: a decimal string, or a number in newer versions.
std::string AccountId(const Json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_number_unsigned()) return std::to_string(j.get<uint64_t>());
  if (j.is_number_integer()) return std::to_string(j.get<int64_t>());
  return "";
}

std::vector<std::string> SplitLines(std::string_view s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b < s.size()) {
    size_t e = s.find('\n', b);
    if (e == std::string_view::npos) e = s.size();
    out.emplace_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

// Reads the texts of the chosen rows from their corpus files (skipped when a file cannot be read).
void LoadSamples(const Json& job, ScanEvidence* scan, const std::vector<const ScanRow*>& chosen) {
  scan::RecordOptions ro;
  if (job.is_object()) {
    const std::string fmt = job.value("format", std::string("auto"));
    ro.format = fmt == "text" ? scan::InputFormat::kText : fmt == "jsonl" ? scan::InputFormat::kJsonl : scan::InputFormat::kAuto;
    ro.whole_file = job.value("whole_file", false);
    ro.field = job.value("field", std::string("text"));
    ro.all_roles = job.value("all_roles", false);
  }
  std::map<std::string, std::set<uint64_t>> wanted;
  for (const ScanRow* r : chosen) wanted[r->file].insert(r->record);
  std::map<std::pair<std::string, uint64_t>, std::string> texts;
  for (const auto& [file, records] : wanted) {
    auto reader = scan::RecordReader::OpenFile(file, ro);
    if (!reader.ok()) continue;
    scan::Record rec;
    scan::ReadError err;
    size_t found = 0;
    while (found < records.size()) {
      const auto outcome = (*reader)->Next([&](uint64_t i) { return records.count(i) > 0; }, &rec, &err);
      if (outcome == scan::RecordReader::Outcome::kEnd) break;
      if (outcome == scan::RecordReader::Outcome::kError) continue;
      if (records.count(rec.index)) {
        texts[{file, rec.index}] = std::move(rec.text);
        ++found;
      }
    }
  }
  for (const ScanRow* r : chosen) {
    auto it = texts.find({r->file, r->record});
    if (it == texts.end()) continue;
    SampleDocument d;
    d.doc_id = r->doc_id;
    d.log10_p = r->log10_p;
    d.account = r->account;
    d.text = it->second;
    if (d.text.size() > kMaxSampleBytes) {
      size_t cut = kMaxSampleBytes;
      while (cut > 0 && (static_cast<unsigned char>(d.text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 boundary
      d.text.resize(cut);
      d.truncated = true;
    }
    for (const Span& s : r->spans) {
      if (s.byte_begin < d.text.size()) d.spans.push_back(s);
    }
    scan->samples.push_back(std::move(d));
  }
}

}  // namespace

Result<ScanEvidence> LoadScanEvidence(const std::string& dir, const std::vector<std::string>& accounts) {
  ScanEvidence scan;
  scan.dir = dir;
  TM_ASSIGN_OR_RETURN(std::string summary_text, ReadFile(dir + "/summary.json", kMaxEvidenceFileBytes));
  const Json summary = Json::parse(summary_text, nullptr, false);
  if (!summary.is_object()) return InvalidArgument(dir + "/summary.json is not a JSON object");
  Json job;
  try {
    scan.documents_scanned = summary.value("documents_scanned", int64_t{0});
    scan.bytes_scanned = summary.value("bytes_scanned", int64_t{0});
    scan.documents_flagged = summary.value("documents_flagged", int64_t{0});
    if (summary.contains("job")) {
      job = summary["job"].is_string() ? Json::parse(summary["job"].get<std::string>(), nullptr, false) : summary["job"];
    }
    if (job.is_object()) {
      scan.threshold = job.value("threshold", scan.threshold);
      if (job.contains("files")) scan.files = job["files"].get<std::vector<std::string>>();
    }
    if (summary.contains("corpus") && summary["corpus"].contains("accounts")) {
      for (const Json& a : summary["corpus"]["accounts"]) {
        CorpusAccount c;
        c.account = AccountId(a.at("account"));
        c.documents = a.contains("flagged_documents") ? a.value("flagged_documents", int64_t{0})
                                                      : a.value("documents", int64_t{0});
        c.tuples = a.value("tuples", int64_t{0});
        c.log10_p = a.value("log10_p_value", 0.0);
        scan.corpus.push_back(c);
      }
    }
  } catch (const Json::exception& e) {
    return InvalidArgument(dir + "/summary.json: " + e.what());
  }

  std::ifstream in(dir + "/results.jsonl");
  if (!in) return NotFound(dir + "/results.jsonl: cannot open (run `tracemark scan ... --out " + dir + "` first)");
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    if (scan.rows.size() >= kMaxScanRows) {
      return ResourceExhausted(dir + "/results.jsonl has more than " + std::to_string(kMaxScanRows) + " rows");
    }
    const Json j = Json::parse(line, nullptr, false);
    if (!j.is_object()) return InvalidArgument(dir + "/results.jsonl:" + std::to_string(line_no) + ": not a JSON object");
    try {
      ScanRow r;
      r.doc_id = j.value("doc_id", std::string());
      r.file = j.value("file", std::string());
      r.record = j.value("record", uint64_t{0});
      r.tokens_scored = j.value("tokens_scored", int64_t{0});
      r.log10_p = j.value("log10_p_value", 0.0);
      if (j.contains("account")) r.account = AccountId(j["account"]);
      r.account_p_value = j.value("account_p_value", 1.0);
      if (j.contains("spans")) {
        for (const Json& s : j["spans"]) {
          r.spans.push_back(Span{s.value("byte_begin", size_t{0}), s.value("byte_end", size_t{0}), s.value("log10_p", 0.0)});
        }
      }
      scan.rows.push_back(std::move(r));
    } catch (const Json::exception& e) {
      return InvalidArgument(dir + "/results.jsonl:" + std::to_string(line_no) + ": " + e.what());
    }
  }
  std::stable_sort(scan.rows.begin(), scan.rows.end(), [](const ScanRow& a, const ScanRow& b) { return a.log10_p < b.log10_p; });
  std::vector<const ScanRow*> chosen;
  const std::set<std::string> want(accounts.begin(), accounts.end());
  for (const ScanRow& r : scan.rows) {
    if (chosen.size() >= kMaxSampleDocuments) break;
    if (!want.empty() && !want.count(r.account)) continue;
    chosen.push_back(&r);
  }
  LoadSamples(job, &scan, chosen);
  return scan;
}

Result<ProbeEvidence> LoadProbeEvidence(const std::string& path) {
  TM_ASSIGN_OR_RETURN(std::string text, ReadFile(path, kMaxEvidenceFileBytes));
  auto r = probe::ProbeResultFromJson(text);
  if (!r.ok()) return r.status().WithContext(path);
  return ProbeEvidence{path, std::move(r).value()};
}

Result<LedgerEvidence> LoadLedgerEvidence(const std::string& url, const std::string& keyring_path,
                                          const std::vector<std::string>& accounts) {
  LedgerEvidence ev;
  ev.url = RedactUrl(url);
  TM_ASSIGN_OR_RETURN(std::unique_ptr<ledger::LedgerStore> store, ledger::OpenLedgerStore(url));

  std::optional<std::array<uint8_t, 32>> public_key;
  if (!keyring_path.empty()) {
    TM_ASSIGN_OR_RETURN(watermark::Keyring ring, watermark::Keyring::Load(keyring_path));
    TM_ASSIGN_OR_RETURN(policy::ServerSecrets secrets, policy::ServerSecretsFromKeyring(ring));
    TM_ASSIGN_OR_RETURN(std::unique_ptr<ledger::AuditSigner> signer,
                        ledger::AuditSigner::FromSeed(secrets.audit_signing_seed.span()));
    public_key = signer->public_key();
  }
  TM_ASSIGN_OR_RETURN(ledger::AuditVerifyReport vr, ledger::VerifyAuditLog(*store, public_key));
  ev.log_verified = vr.ok;
  ev.public_key_pinned = vr.public_key_pinned;
  ev.audit_entries = vr.entries;
  ev.checkpoints = vr.checkpoints;
  ev.signed_size = vr.signed_size;
  ev.problems = vr.problems;

  // The key the checkpoints must verify under: the keyring's, else the one recorded in the store.
  std::array<uint8_t, 32> key{};
  bool have_key = false;
  if (public_key) {
    key = *public_key;
    have_key = true;
  } else {
    TM_ASSIGN_OR_RETURN(std::optional<std::string> hex, store->GetMeta("audit_public_key"));
    if (hex && ledger::HexDecode(*hex, key)) have_key = true;
  }

  TM_ASSIGN_OR_RETURN(std::vector<ledger::AuditRow> rows, store->ReadAudit());
  std::vector<ledger::Hash> leaves;
  leaves.reserve(rows.size());
  for (const auto& r : rows) leaves.push_back(ledger::LeafHash(r.body));
  // Newest checkpoint with a valid signature and the right root.
  TM_ASSIGN_OR_RETURN(std::vector<ledger::CheckpointRow> cps, store->ReadCheckpoints());
  uint64_t signed_size = 0;
  ledger::Hash signed_root{};
  for (const auto& cp : cps) {
    if (!have_key || cp.tree_size > leaves.size() || cp.tree_size <= signed_size) continue;
    if (!ledger::VerifyEd25519(key, cp.note, cp.signature)) continue;
    const std::vector<std::string> lines = SplitLines(cp.note);
    ledger::Hash root{};
    if (lines.size() < 3 || lines[0] != ledger::kAuditOrigin || lines[1] != std::to_string(cp.tree_size) ||
        !Base64Decode32(lines[2], &root)) {
      continue;
    }
    const std::span<const ledger::Hash> prefix(leaves.data(), cp.tree_size);
    if (ledger::TreeHash(prefix) != root) continue;
    signed_size = cp.tree_size;
    signed_root = root;
  }

  std::vector<ledger::AccountRecord> records;
  if (accounts.empty()) {
    TM_ASSIGN_OR_RETURN(records, store->ListAccounts());
  } else {
    for (const std::string& id : accounts) {
      TM_ASSIGN_OR_RETURN(std::optional<ledger::AccountRecord> rec, store->GetAccount(id));
      if (!rec) return NotFound("account " + id + " is not in the ledger " + ev.url);
      records.push_back(*rec);
    }
  }
  for (const ledger::AccountRecord& rec : records) {
    AccountLedger a;
    a.id = rec.id;
    a.name = rec.name;
    a.state = rec.state;
    a.state_reason = rec.state_reason;
    a.org = rec.org;
    a.created_at_ms = rec.created_at_ms;
    TM_ASSIGN_OR_RETURN(std::vector<ledger::UsageRecord> usage, store->ListUsage(rec.id));
    std::map<std::string, UsageDay> days;
    for (const auto& u : usage) {
      UsageDay& d = days[DayOf(u.finished_at_ms)];
      ++d.requests;
      d.prompt_tokens += u.prompt_tokens;
      d.completion_tokens += u.completion_tokens;
    }
    for (auto& [day, d] : days) {
      d.day = day;
      a.usage.push_back(d);
    }
    for (const auto& row : rows) {
      const Json j = Json::parse(row.body, nullptr, false);
      if (!j.is_object() || !j.contains("target") || !j["target"].is_string() || j["target"].get<std::string>() != rec.id) {
        continue;
      }
      AuditProof p;
      p.index = row.index;
      p.body = row.body;
      if (j.contains("action") && j["action"].is_string()) p.action = j["action"].get<std::string>();
      if (j.contains("actor") && j["actor"].is_string()) p.actor = j["actor"].get<std::string>();
      if (j.contains("reason") && j["reason"].is_string()) p.reason = j["reason"].get<std::string>();
      if (j.contains("time_ms") && j["time_ms"].is_number_integer()) p.time_ms = j["time_ms"].get<int64_t>();
      if (row.index < signed_size && row.index < leaves.size()) {
        const std::span<const ledger::Hash> prefix(leaves.data(), signed_size);
        auto proof = ledger::InclusionProof(prefix, row.index);
        if (proof.ok()) {
          p.tree_size = signed_size;
          p.root_hex = ledger::HexEncode(signed_root);
          for (const auto& hsh : *proof) p.path.push_back(ledger::HexEncode(hsh));
          p.verified = ledger::VerifyInclusion(row.index, signed_size, ledger::LeafHash(row.body), *proof, signed_root);
        }
      }
      a.audit.push_back(std::move(p));
    }
    ev.accounts.push_back(std::move(a));
  }
  return ev;
}

}  // namespace tracemark::report
