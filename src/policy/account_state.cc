// Account state machine: see include/tracemark/policy/account_state.h.
#include "tracemark/policy/account_state.h"

#include <string>

namespace tracemark::policy {
namespace {

constexpr std::string_view kNames[kAccountStateCount] = {"active", "throttled", "suspended",
                                                         "reinstated", "terminated"};

// kAllowed[from][to].
constexpr bool kAllowed[kAccountStateCount][kAccountStateCount] = {
    //            active throttled suspended reinstated terminated
    /* active */ {false, true, true, false, true},
    /* thrott */ {true, false, true, false, true},
    /* susp   */ {false, false, false, true, true},
    /* reinst */ {true, true, true, false, true},
    /* term   */ {false, false, false, false, false},
};

}  // namespace

std::string_view AccountStateName(AccountState s) { return kNames[static_cast<int>(s)]; }

Result<AccountState> ParseAccountState(std::string_view name) {
  for (int i = 0; i < kAccountStateCount; ++i) {
    if (kNames[i] == name) return static_cast<AccountState>(i);
  }
  return InvalidArgument("unknown account state '" + std::string(name) +
                         "' (expected active, throttled, suspended, reinstated or terminated)");
}

bool CanTransition(AccountState from, AccountState to) {
  return kAllowed[static_cast<int>(from)][static_cast<int>(to)];
}

bool MayServe(AccountState s) {
  return s == AccountState::kActive || s == AccountState::kThrottled || s == AccountState::kReinstated;
}

}  // namespace tracemark::policy
