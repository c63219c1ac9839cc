#include "harness/params.h"

#include <gtest/gtest.h>

namespace harness {
namespace {

using namespace std::chrono_literals;

TEST(ParamsTest, Durations) {
  EXPECT_EQ(ParseDuration("2s"), Duration(2s));
  EXPECT_EQ(ParseDuration("1.5s"), Duration(1500ms));
  EXPECT_EQ(ParseDuration("500ms"), Duration(500ms));
  EXPECT_EQ(ParseDuration("250us"), Duration(250us));
  EXPECT_EQ(ParseDuration("3"), Duration(3s));
  EXPECT_EQ(ParseDuration("1m"), Duration(60s));
  EXPECT_EQ(ParseDuration("24h"), Duration(86400s));
  EXPECT_EQ(ParseDuration("0ms", Duration(0)), Duration(0));
  EXPECT_THROW(ParseDuration("5ms", Duration(10ms)), std::invalid_argument);
  try {
    ParseDuration("25h", Duration(10ms));
    ADD_FAILURE() << "25h accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "must be between 10ms and 24h: '25h'");
  }
  for (const char* bad : {"", "s", "2x", "-1s", "0s", "abc", "1e9m"}) {
    EXPECT_THROW(ParseDuration(bad), std::invalid_argument) << bad;
  }
  EXPECT_EQ(FormatDuration(Duration(1500ms)), "1.5s");
  EXPECT_EQ(FormatDuration(Duration(200ms)), "200ms");
}

TEST(ParamsTest, Counts) {
  EXPECT_EQ(ParseCount("64", 1, 100), 64u);
  EXPECT_EQ(ParseCount("64K", 1, 1 << 20), 65536u);
  EXPECT_EQ(ParseCount("1M", 1, 1 << 20), 1u << 20);
  EXPECT_THROW(ParseCount("0", 1, 100), std::invalid_argument);
  EXPECT_THROW(ParseCount("101", 1, 100), std::invalid_argument);
  EXPECT_THROW(ParseCount("-3", 1, 100), std::invalid_argument);
  EXPECT_THROW(ParseCount("12abc", 1, 100), std::invalid_argument);
  EXPECT_THROW(ParseCount("99999999999999999999", 1, 100), std::invalid_argument);
}

TEST(ParamsTest, Lists) {
  EXPECT_EQ(SplitList("1,10,100"), (std::vector<std::string>{"1", "10", "100"}));
  EXPECT_EQ(SplitList("asio"), (std::vector<std::string>{"asio"}));
  EXPECT_THROW(SplitList("1,,2"), std::invalid_argument);
  EXPECT_THROW(SplitList(""), std::invalid_argument);
  EXPECT_THROW(SplitList("1,"), std::invalid_argument);
}

TEST(ParamsTest, Endpoints) {
  const Endpoint e = ParseEndpoint("127.0.0.1:8080", false);
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 8080);
  EXPECT_EQ(ParseEndpoint("[::1]:9", false).ToString(), "[::1]:9");
  EXPECT_EQ(ParseEndpoint("127.0.0.1:0", true).port, 0);
  EXPECT_THROW(ParseEndpoint("127.0.0.1:0", false), std::invalid_argument);
  EXPECT_THROW(ParseEndpoint("localhost:80", false), std::invalid_argument);
  EXPECT_THROW(ParseEndpoint("127.0.0.1", false), std::invalid_argument);
  EXPECT_THROW(ParseEndpoint("127.0.0.1:70000", false), std::invalid_argument);
}

}  // namespace
}  // namespace harness
