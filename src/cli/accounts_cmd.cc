// `tracemark accounts {create,list,show,suspend,reinstate,terminate,throttle,unthrottle,
// rotate-key,revoke-key,set-limits}`: the admin CLI over the ledger. Mutations are audit-logged
// with actor "cli:<user>". Output is JSON on stdout (`list --ids`: one id per line).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "tracemark/policy/account_state.h"
#include "tracemark/policy/server_keys.h"

namespace tracemark::cli {
namespace {

struct AccountsArgs {
  std::string db;
  std::string keyring;
  std::string name;
  std::string org;
  std::string id;
  std::string reason;
  std::string evidence;
  int64_t rpm = policy::kDefaultRequestsPerMinute;
  int64_t tpm = policy::kDefaultTokensPerMinute;
  int64_t tokens_per_day = 0;
  int64_t tokens_per_month = 0;
  std::vector<std::string> states;  // list --state: keep accounts in these states
  bool ids_only = false;            // list --ids: one id per line (the `--suspects @FILE` format)
};

std::string Actor() {
  const char* user = std::getenv("USER");
  return std::string("cli:") + (user && *user ? user : "uid" + std::to_string(::getuid()));
}

nlohmann::json AccountJson(const ledger::AccountRecord& a) {
  return {{"id", std::stoull(a.id)},
          {"name", a.name},
          {"state", a.state},
          {"state_reason", a.state_reason},
          {"org", a.org},
          {"created_at_ms", a.created_at_ms},
          {"updated_at_ms", a.updated_at_ms},
          {"limits",
           {{"requests_per_minute", a.limits.requests_per_minute},
            {"tokens_per_minute", a.limits.tokens_per_minute},
            {"tokens_per_day", a.limits.tokens_per_day},
            {"tokens_per_month", a.limits.tokens_per_month}}}};
}

void Print(const nlohmann::json& j) {
  const std::string s = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  std::printf("%s\n", s.c_str());
}

Status RunCreate(const AccountsArgs& a) {
  TM_ASSIGN_OR_RETURN(policy::AdminContext c, policy::OpenAdminContext(a.db, a.keyring));
  ledger::AccountLimits limits{a.rpm, a.tpm, a.tokens_per_day, a.tokens_per_month};
  TM_ASSIGN_OR_RETURN(policy::NewAccount n, c.accounts->CreateAccount(a.name, limits, Actor(), a.org));
  nlohmann::json j = AccountJson(n.account);
  j["api_key"] = n.api_key;
  j["key_id"] = n.key_id;
  Print(j);
  return Status::Ok();
}

// `--state suspended --ids` turns the accounts under investigation into a suspect list for
// `detect`/`scan --suspects @FILE` (docs/cli.md).
Status RunList(const AccountsArgs& a) {
  std::set<std::string> keep;
  for (const std::string& name : a.states) {
    TM_ASSIGN_OR_RETURN(policy::AccountState st, policy::ParseAccountState(name));
    keep.insert(std::string(policy::AccountStateName(st)));
  }
  TM_ASSIGN_OR_RETURN(std::unique_ptr<ledger::LedgerStore> store, ledger::OpenLedgerStore(a.db));
  TM_ASSIGN_OR_RETURN(std::vector<ledger::AccountRecord> accounts, store->ListAccounts());
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& acct : accounts) {
    if (!keep.empty() && keep.count(acct.state) == 0) continue;
    if (a.ids_only) {
      std::printf("%s\n", acct.id.c_str());
    } else {
      arr.push_back(AccountJson(acct));
    }
  }
  if (!a.ids_only) Print(arr);
  return Status::Ok();
}

Status RunShow(const AccountsArgs& a) {
  TM_ASSIGN_OR_RETURN(std::unique_ptr<ledger::LedgerStore> store, ledger::OpenLedgerStore(a.db));
  TM_ASSIGN_OR_RETURN(std::optional<ledger::AccountRecord> acct, store->GetAccount(a.id));
  if (!acct) return NotFound("no account with id '" + a.id + "'; see `tracemark accounts list`");
  nlohmann::json j = AccountJson(*acct);
  TM_ASSIGN_OR_RETURN(std::vector<ledger::ApiKeyRecord> keys, store->ListApiKeys(a.id));
  j["api_keys"] = nlohmann::json::array();
  for (const auto& k : keys) {
    j["api_keys"].push_back({{"key_id", k.key_id},
                             {"display", "tm-" + k.key_id + "-****"},
                             {"created_at_ms", k.created_at_ms},
                             {"revoked_at_ms", k.revoked_at_ms}});
  }
  TM_ASSIGN_OR_RETURN(std::vector<ledger::UsageRecord> usage, store->ListUsage(a.id));
  int64_t prompt = 0, completion = 0;
  for (const auto& u : usage) {
    prompt += u.prompt_tokens;
    completion += u.completion_tokens;
  }
  j["usage"] = {{"requests", usage.size()}, {"prompt_tokens", prompt}, {"completion_tokens", completion}};
  Print(j);
  return Status::Ok();
}

Status RunTransition(const AccountsArgs& a, policy::AccountState to) {
  TM_ASSIGN_OR_RETURN(policy::AdminContext c, policy::OpenAdminContext(a.db, a.keyring));
  TM_RETURN_IF_ERROR(c.accounts->Transition(a.id, to, Actor(), a.reason, a.evidence));
  TM_ASSIGN_OR_RETURN(std::optional<ledger::AccountRecord> acct, c.store->GetAccount(a.id));
  Print(AccountJson(*acct));
  return Status::Ok();
}

Status RunRotateKey(const AccountsArgs& a) {
  TM_ASSIGN_OR_RETURN(policy::AdminContext c, policy::OpenAdminContext(a.db, a.keyring));
  TM_ASSIGN_OR_RETURN(policy::NewAccount n, c.accounts->CreateKey(a.id, Actor()));
  Print({{"id", std::stoull(n.account.id)}, {"api_key", n.api_key}, {"key_id", n.key_id}});
  return Status::Ok();
}

Status RunRevokeKey(const AccountsArgs& a) {
  TM_ASSIGN_OR_RETURN(policy::AdminContext c, policy::OpenAdminContext(a.db, a.keyring));
  TM_RETURN_IF_ERROR(c.accounts->RevokeKey(a.id, Actor(), a.reason));
  Print({{"key_id", a.id}, {"revoked", true}});
  return Status::Ok();
}

Status RunSetLimits(const AccountsArgs& a) {
  TM_ASSIGN_OR_RETURN(policy::AdminContext c, policy::OpenAdminContext(a.db, a.keyring));
  ledger::AccountLimits limits{a.rpm, a.tpm, a.tokens_per_day, a.tokens_per_month};
  TM_RETURN_IF_ERROR(c.accounts->SetLimits(a.id, limits, Actor(), a.reason));
  TM_ASSIGN_OR_RETURN(std::optional<ledger::AccountRecord> acct, c.store->GetAccount(a.id));
  Print(AccountJson(*acct));
  return Status::Ok();
}

}  // namespace

void AddAccountsCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<AccountsArgs>();
  CLI::App* cmd = app.add_subcommand("accounts", "Create and manage API accounts and keys");
  cmd->require_subcommand(1);
  auto common = [&](CLI::App* sub, bool needs_keyring) {
    sub->add_option("--db", args->db, "Ledger database URL (sqlite:PATH or postgresql://...)")->required();
    if (needs_keyring) {
      sub->add_option("--keyring", args->keyring,
                      "Keyring file (default: $TRACEMARK_KEYRING, else the server's recorded keyring)");
    }
  };
  auto limits = [&](CLI::App* sub) {
    sub->add_option("--rpm", args->rpm, "Requests per minute (0: unlimited)");
    sub->add_option("--tpm", args->tpm, "Tokens per minute (0: unlimited)");
    sub->add_option("--tokens-per-day", args->tokens_per_day, "Token quota per UTC day (0: none)");
    sub->add_option("--tokens-per-month", args->tokens_per_month, "Token quota per month (0: none)");
  };
  auto run = [exit_code](const char* name, Status s) {
    *exit_code = s.ok() ? 0 : ReportError(name, s);
  };

  CLI::App* create = cmd->add_subcommand("create", "Create an account; prints its id and API key (shown once)");
  create->add_option("name", args->name, "Account name")->required();
  create->add_option("--org", args->org, "Organization / payment attribute (links accounts for the monitor)");
  common(create, true);
  limits(create);
  create->callback([args, run] { run("accounts create", RunCreate(*args)); });

  CLI::App* list = cmd->add_subcommand("list", "List accounts");
  list->add_option("--state", args->states,
                   "Only accounts in these states (active, throttled, suspended, reinstated, terminated)")
      ->delimiter(',');
  list->add_flag("--ids", args->ids_only, "Print one account id per line (a --suspects @FILE list) instead of JSON");
  common(list, false);
  list->callback([args, run] { run("accounts list", RunList(*args)); });

  CLI::App* show = cmd->add_subcommand("show", "Show one account, its keys and usage totals");
  show->add_option("id", args->id, "Account id")->required();
  common(show, false);
  show->callback([args, run] { run("accounts show", RunShow(*args)); });

  struct T {
    const char* name;
    const char* help;
    policy::AccountState to;
  };
  for (const T& t : {T{"suspend", "Suspend pending investigation (403 account_suspended)", policy::AccountState::kSuspended},
                     T{"reinstate", "Reinstate a suspended account", policy::AccountState::kReinstated},
                     T{"terminate", "Terminate for good (403 account_deactivated)", policy::AccountState::kTerminated},
                     T{"throttle", "Serve under a quarter of the limits", policy::AccountState::kThrottled},
                     T{"activate", "Back to active from throttled or reinstated", policy::AccountState::kActive}}) {
    CLI::App* sub = cmd->add_subcommand(t.name, t.help);
    sub->add_option("id", args->id, "Account id")->required();
    sub->add_option("--reason", args->reason, "Why (recorded in the audit log)");
    sub->add_option("--evidence-sha256", args->evidence, "Hex SHA-256 of the evidence bundle");
    common(sub, true);
    const std::string label = std::string("accounts ") + t.name;
    const policy::AccountState to = t.to;
    sub->callback([args, run, label, to] { run(label.c_str(), RunTransition(*args, to)); });
  }

  CLI::App* rotate = cmd->add_subcommand("rotate-key", "Issue a new API key for an account (old keys stay valid until revoked)");
  rotate->add_option("id", args->id, "Account id")->required();
  common(rotate, true);
  rotate->callback([args, run] { run("accounts rotate-key", RunRotateKey(*args)); });

  CLI::App* revoke = cmd->add_subcommand("revoke-key", "Revoke an API key by its key id");
  revoke->add_option("key_id", args->id, "Key id (the 16 hex digits after tm-)")->required();
  revoke->add_option("--reason", args->reason, "Why (recorded in the audit log)");
  common(revoke, true);
  revoke->callback([args, run] { run("accounts revoke-key", RunRevokeKey(*args)); });

  CLI::App* set = cmd->add_subcommand("set-limits", "Change an account's limits and quotas");
  set->add_option("id", args->id, "Account id")->required();
  set->add_option("--reason", args->reason, "Why (recorded in the audit log)");
  common(set, true);
  limits(set);
  set->callback([args, run] { run("accounts set-limits", RunSetLimits(*args)); });
}

}  // namespace tracemark::cli
