#include "tracemark/model/stop.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tracemark {
namespace {

struct StreamRun {
  std::vector<std::string> emitted;  // what each Feed appended
  std::string all;
  bool stopped = false;
};

StreamRun FeedAll(StopMatcher& m, const std::vector<std::string>& pieces) {
  StreamRun r;
  for (const std::string& p : pieces) {
    std::string out;
    r.stopped = m.Feed(p, &out);
    r.emitted.push_back(out);
    r.all += out;
    if (r.stopped) break;
  }
  if (!r.stopped) {
    std::string out;
    m.Flush(&out);
    r.all += out;
  }
  return r;
}

TEST(StopMatcherTest, NoStopsPassesEverythingThrough) {
  auto m = StopMatcher::Create({});
  ASSERT_TRUE(m.ok());
  StreamRun r = FeedAll(*m, {"Hello", ", ", "world"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"Hello", ", ", "world"}));
  EXPECT_FALSE(r.stopped);
}

TEST(StopMatcherTest, StopSplitAcrossPiecesIsHeldThenDropped) {
  auto m = StopMatcher::Create({"</end>"});
  ASSERT_TRUE(m.ok());
  StreamRun r = FeedAll(*m, {"abc</", "en", "d>tail"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"abc", "", ""}));
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.all, "abc");
  EXPECT_EQ(m->matched_index(), 0);
  std::string more;
  EXPECT_TRUE(m->Feed("x", &more));
  EXPECT_EQ(more, "");
}

TEST(StopMatcherTest, FalseStartIsReleased) {
  auto m = StopMatcher::Create({"STOP"});
  ASSERT_TRUE(m.ok());
  StreamRun r = FeedAll(*m, {"a ST", "ORM S", "T"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"a ", "STORM ", ""}));
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.all, "a STORM ST");  // Flush releases the held "ST"
}

TEST(StopMatcherTest, EarliestOfSeveralStopsWins) {
  auto m = StopMatcher::Create({"world", "lo, w", "\n\n"});
  ASSERT_TRUE(m.ok());
  StreamRun r = FeedAll(*m, {"Hel", "lo, world"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.all, "Hel");
  EXPECT_EQ(m->matched_index(), 1);
}

TEST(StopMatcherTest, StopInsideOnePieceAndOverlappingPrefixes) {
  auto m = StopMatcher::Create({"aab"});
  ASSERT_TRUE(m.ok());
  StreamRun r = FeedAll(*m, {"xa", "a", "a", "ab"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"x", "", "a", "a"}));
  EXPECT_EQ(r.all, "xaa");
  EXPECT_TRUE(r.stopped);
}

TEST(StopMatcherTest, HoldsIncompleteUtf8) {
  auto m = StopMatcher::Create({});
  ASSERT_TRUE(m.ok());
  const std::string euro = "\xE2\x82\xAC";
  StreamRun r = FeedAll(*m, {"a\xE2", "\x82", "\xAC!"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"a", "", euro + "!"}));
}

TEST(StopMatcherTest, RejectsBadLists) {
  EXPECT_FALSE(StopMatcher::Create({"a", "b", "c", "d", "e"}).ok());
  EXPECT_TRUE(StopMatcher::Create({"a", "b", "c", "d"}).ok());
  EXPECT_FALSE(StopMatcher::Create({""}).ok());
  EXPECT_FALSE(StopMatcher::Create({std::string(kMaxStopStringBytes + 1, 'x')}).ok());
}

TEST(StopMatcherTest, ByteAtATimeEqualsWholeText) {
  const std::string text = "The answer is 42.\nUser: next question\nmore";
  for (const std::vector<std::string>& stops :
       std::vector<std::vector<std::string>>{{"\nUser:"}, {"xyz"}, {"42", "answer"}, {"more"}}) {
    auto whole = StopMatcher::Create(stops);
    auto bytes = StopMatcher::Create(stops);
    ASSERT_TRUE(whole.ok() && bytes.ok());
    StreamRun a = FeedAll(*whole, {text});
    std::vector<std::string> pieces;
    for (char c : text) pieces.emplace_back(1, c);
    StreamRun b = FeedAll(*bytes, pieces);
    EXPECT_EQ(a.all, b.all);
    EXPECT_EQ(a.stopped, b.stopped);
  }
}

}  // namespace
}  // namespace tracemark
