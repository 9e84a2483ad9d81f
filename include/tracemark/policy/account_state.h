// The account state machine: active, throttled, suspended (pending investigation), reinstated,
// terminated, with an explicit table of allowed transitions. A suspended account keeps its keys
// and data and is refused with 403 account_suspended; a terminated one is final and refused with
// 403 account_deactivated (never 429, which clients retry). Throttled accounts are served under
// reduced limits (kThrottleDivisor).
// Pure functions; safe from any thread.
#pragma once

#include <string_view>

#include "tracemark/base/status.h"

namespace tracemark::policy {

enum class AccountState { kActive, kThrottled, kSuspended, kReinstated, kTerminated };

inline constexpr int kAccountStateCount = 5;

std::string_view AccountStateName(AccountState s);
Result<AccountState> ParseAccountState(std::string_view name);

// The transition table (docs/api.md): active -> throttled | suspended | terminated;
// throttled -> active | suspended | terminated; suspended -> reinstated | terminated;
// reinstated -> active | throttled | suspended | terminated; terminated -> (none).
bool CanTransition(AccountState from, AccountState to);

// Whether requests are served at all (active, throttled, reinstated).
bool MayServe(AccountState s);

}  // namespace tracemark::policy
