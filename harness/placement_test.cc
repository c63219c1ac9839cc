#include "harness/placement.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace harness {
namespace {

TEST(PlacementTest, ListsParseAndFormat) {
  EXPECT_EQ(ParseCpuList("0", false), (CpuList{0}));
  EXPECT_EQ(ParseCpuList("3,0-1,1", false), (CpuList{0, 1, 3}));
  EXPECT_EQ(ParseCpuList("", false), CpuList{});
  EXPECT_EQ(FormatCpuList({0, 2, 3, 4, 7}), "0,2-4,7");
  EXPECT_EQ(FormatCpuList({}), "");
  for (const char* bad : {"a", "1-", "-1", "3-1", "1,,2", "0x1", "1 2", "5000"}) {
    EXPECT_THROW(ParseCpuList(bad, false), std::invalid_argument) << bad;
  }
}

TEST(PlacementTest, ACpuTheProcessCannotUseIsRefused) {
  try {
    ParseCpuList("4095");
    ADD_FAILURE() << "CPU 4095 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("CPU 4095 is not"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ParseCpuList(FormatCpuList(AvailableCpus())), AvailableCpus());
}

TEST(PlacementTest, DefaultSplitsTheCoresAndSharedPinsNothing) {
  const CpuList all = AvailableCpus();
  const Placement split = ResolvePlacement("split", "", "", true);
  if (all.size() >= 2 && SmtSiblings(all.front()).size() < all.size()) {
    EXPECT_EQ(split.mode, "split");
    EXPECT_FALSE(split.server.empty());
    EXPECT_FALSE(split.client.empty());
    CpuList both = split.server;
    both.insert(both.end(), split.client.begin(), split.client.end());
    std::sort(both.begin(), both.end());
    EXPECT_EQ(both, all);  // disjoint, and together every CPU
    EXPECT_GE(split.server.size(), split.client.size());
  }
  const Placement shared = ResolvePlacement("shared", "", "", true);
  EXPECT_EQ(shared.mode, "shared");
  EXPECT_TRUE(shared.server.empty() && shared.client.empty());
  const Placement no_client = ResolvePlacement("split", "", "", false);
  EXPECT_EQ(no_client.server, all);
  EXPECT_TRUE(no_client.client.empty());
  EXPECT_THROW(ResolvePlacement("sometimes", "", "", true), std::invalid_argument);
  EXPECT_THROW(ResolvePlacement("shared", FormatCpuList({all.front()}), "", true), std::invalid_argument);
}

TEST(PlacementTest, OneSideGivenTheOtherGetsTheRest) {
  const CpuList all = AvailableCpus();
  if (all.size() < 2) GTEST_SKIP() << "one CPU";
  const Placement p = ResolvePlacement("split", FormatCpuList({all.front()}), "", true);
  EXPECT_EQ(p.mode, "given");
  EXPECT_EQ(p.server, CpuList{all.front()});
  EXPECT_EQ(p.client, CpuList(all.begin() + 1, all.end()));
}

TEST(PlacementTest, PinningIsReadBackFromProc) {
  const CpuList one = {AvailableCpus().back()};
  PinThisThread(one);
  EXPECT_EQ(ReadAffinity(getpid(), gettid()), one);
  PinThisThread({});
  EXPECT_EQ(ReadAffinity(getpid(), gettid()), AvailableCpus());
}

}  // namespace
}  // namespace harness
