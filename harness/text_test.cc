#include "harness/text.h"

#include <gtest/gtest.h>

#include <vector>

namespace harness {
namespace {

TEST(TextTest, Utf8IsTellsWellFormedFromNot) {
  for (const char* good : {"", "plain", "caf\xc3\xa9", "\xe4\xb8\xad\xe6\x96\x87", "\xf0\x9f\x98\x80"}) {
    EXPECT_TRUE(IsUtf8(good)) << good;
  }
  for (const char* bad : {"\xff", "lat\xe9.json", "\xc0\xaf" /* overlong '/' */, "\xed\xa0\x80" /* surrogate */,
                          "\xf4\x90\x80\x80" /* past U+10FFFF */, "\xe4\xb8" /* cut short */}) {
    EXPECT_FALSE(IsUtf8(bad)) << Printable(bad);
  }
}

TEST(TextTest, PrintableIsOneLineOfUtf8) {
  EXPECT_EQ(Printable("b\xff"
                      "d"),
            "b\\xffd");
  EXPECT_EQ(Printable("a\nb\tc\x1b[31m\x7f"), "a\\nb\\tc\\x1b[31m\\x7f");
  EXPECT_EQ(Printable("caf\xc3\xa9 \\ ok"), "caf\xc3\xa9 \\ ok");
  EXPECT_TRUE(IsUtf8(Printable("\xc0\xaf\xed\xa0\x80\xff")));
}

TEST(TextTest, JsonTextNeverThrowsOnBytes) {
  const nlohmann::json j = {{"busiest",
                             "b\xff"
                             "d (pid 7)"},
                            {"ok", "caf\xc3\xa9"}};
  EXPECT_THROW(j.dump(), nlohmann::json::type_error);  // what used to abort the harness
  const std::string text = JsonText(j);
  EXPECT_TRUE(IsUtf8(text));
  const auto back = nlohmann::json::parse(text);
  EXPECT_EQ(back["busiest"],
            "b\xef\xbf\xbd"
            "d (pid 7)");  // U+FFFD in place of the bad byte
  EXPECT_EQ(back["ok"], "caf\xc3\xa9");
  EXPECT_EQ(JsonText({{"a", 1}}, 2), nlohmann::json({{"a", 1}}).dump(2));
}

std::string Bad(std::vector<const char*> args) {
  args.insert(args.begin(), "harness");
  return BadArgument(static_cast<int>(args.size()), args.data());
}

TEST(TextTest, BadArgumentRefusesEmptyValuesAndBytes) {
  EXPECT_EQ(Bad({"run", "--model=epoll", "--capacity", "--reply=prefix:Echo=>"}), "");
  EXPECT_EQ(Bad({"merge", "a.json", "b.json", "--out=m.json"}), "");
  EXPECT_NE(Bad({"merge", "A.json", "--out=", "B.json"}).find("--out= has no value"), std::string::npos);
  EXPECT_NE(Bad({"slurm", "--partition=", "--dry-run"}).find("--partition="), std::string::npos);
  EXPECT_NE(Bad({"run", "--out", ""}).find("argument 3 is empty"), std::string::npos);
  EXPECT_NE(Bad({"run", "--reply=prefix:\xff"}).find("not UTF-8"), std::string::npos);
  EXPECT_NE(Bad({"merge", "lat\xe9.json"}).find("'lat\\xe9.json'"), std::string::npos);
  EXPECT_EQ(Bad({"run", "--filter=a=b"}), "");  // an '=' inside a value is a value
}

}  // namespace
}  // namespace harness
