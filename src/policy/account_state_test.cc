// The account state machine's transition table, exhaustively.
#include "tracemark/policy/account_state.h"

#include <gtest/gtest.h>

namespace tracemark::policy {
namespace {

TEST(AccountState, NamesRoundTrip) {
  for (int i = 0; i < kAccountStateCount; ++i) {
    const auto s = static_cast<AccountState>(i);
    auto parsed = ParseAccountState(AccountStateName(s));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_FALSE(ParseAccountState("banned").ok());
}

TEST(AccountState, TransitionTableIsExactlyAsDocumented) {
  using S = AccountState;
  const std::vector<std::pair<S, S>> allowed = {
      {S::kActive, S::kThrottled},     {S::kActive, S::kSuspended},     {S::kActive, S::kTerminated},
      {S::kThrottled, S::kActive},     {S::kThrottled, S::kSuspended},  {S::kThrottled, S::kTerminated},
      {S::kSuspended, S::kReinstated}, {S::kSuspended, S::kTerminated}, {S::kReinstated, S::kActive},
      {S::kReinstated, S::kThrottled}, {S::kReinstated, S::kSuspended}, {S::kReinstated, S::kTerminated},
  };
  for (int a = 0; a < kAccountStateCount; ++a) {
    for (int b = 0; b < kAccountStateCount; ++b) {
      const bool expect = std::find(allowed.begin(), allowed.end(),
                                    std::make_pair(static_cast<S>(a), static_cast<S>(b))) != allowed.end();
      EXPECT_EQ(CanTransition(static_cast<S>(a), static_cast<S>(b)), expect) << a << "->" << b;
    }
  }
}

TEST(AccountState, OnlyServingStatesServe) {
  EXPECT_TRUE(MayServe(AccountState::kActive));
  EXPECT_TRUE(MayServe(AccountState::kThrottled));
  EXPECT_TRUE(MayServe(AccountState::kReinstated));
  EXPECT_FALSE(MayServe(AccountState::kSuspended));
  EXPECT_FALSE(MayServe(AccountState::kTerminated));
}

}  // namespace
}  // namespace tracemark::policy
