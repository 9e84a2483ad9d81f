// `tracemark audit {verify,list}`: checks the tamper-evident audit log (signatures, Merkle roots,
// consistency and inclusion proofs) and lists its entries.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "tracemark/policy/server_keys.h"

namespace tracemark::cli {
namespace {

struct AuditArgs {
  std::string db;
  std::string keyring;
};

Status RunVerify(const AuditArgs& a, int* exit_code) {
  TM_ASSIGN_OR_RETURN(std::unique_ptr<ledger::LedgerStore> store, ledger::OpenLedgerStore(a.db));
  std::optional<std::array<uint8_t, 32>> pinned;
  if (!a.keyring.empty()) {
    TM_ASSIGN_OR_RETURN(watermark::Keyring keyring, watermark::Keyring::Load(a.keyring));
    TM_ASSIGN_OR_RETURN(policy::ServerSecrets secrets, policy::ServerSecretsFromKeyring(keyring));
    TM_ASSIGN_OR_RETURN(std::unique_ptr<ledger::AuditSigner> signer,
                        ledger::AuditSigner::FromSeed(secrets.audit_signing_seed.span()));
    pinned = signer->public_key();
  }
  TM_ASSIGN_OR_RETURN(ledger::AuditVerifyReport r, ledger::VerifyAuditLog(*store, pinned));
  nlohmann::json j = {{"ok", r.ok},
                      {"entries", r.entries},
                      {"checkpoints", r.checkpoints},
                      {"signed_size", r.signed_size},
                      {"public_key_pinned", r.public_key_pinned},
                      {"problems", r.problems}};
  std::printf("%s\n", j.dump(2).c_str());
  if (!r.ok) {
    std::fprintf(stderr, "tracemark audit verify: %s\n", r.problems.front().c_str());
    *exit_code = 1;
  }
  return Status::Ok();
}

Status RunList(const AuditArgs& a) {
  TM_ASSIGN_OR_RETURN(std::unique_ptr<ledger::LedgerStore> store, ledger::OpenLedgerStore(a.db));
  TM_ASSIGN_OR_RETURN(std::vector<ledger::AuditRow> rows, store->ReadAudit());
  for (const auto& row : rows) std::printf("%s\n", row.body.c_str());
  return Status::Ok();
}

}  // namespace

void AddAuditCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<AuditArgs>();
  CLI::App* cmd = app.add_subcommand("audit", "Verify and read the tamper-evident audit log");
  cmd->require_subcommand(1);
  CLI::App* verify = cmd->add_subcommand(
      "verify", "Check signatures, roots, consistency and inclusion proofs; exit 1 on tampering");
  verify->add_option("--db", args->db, "Ledger database URL (sqlite:PATH or postgresql://...)")->required();
  verify->add_option("--keyring", args->keyring,
                     "Keyring whose audit key the checkpoints must verify under (recommended)");
  verify->callback([args, exit_code] {
    Status s = RunVerify(*args, exit_code);
    if (!s.ok()) *exit_code = ReportError("audit verify", s);
  });
  CLI::App* list = cmd->add_subcommand("list", "Print every entry (one JSON object per line)");
  list->add_option("--db", args->db, "Ledger database URL (sqlite:PATH or postgresql://...)")->required();
  list->callback([args, exit_code] {
    Status s = RunList(*args);
    *exit_code = s.ok() ? 0 : ReportError("audit list", s);
  });
}

}  // namespace tracemark::cli
