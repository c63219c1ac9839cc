// --work: its specs, its distributions, its header and the CPU it burns.
#include "scenarios/echo/work.h"

#include <gtest/gtest.h>
#include <time.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "scenarios/echo/protocol.h"

namespace echo {
namespace {

TEST(WorkSpecTest, ParsesAndWritesBackEachForm) {
  for (const auto& [given, canonical] : std::vector<std::pair<std::string, std::string>>{
           {"cpu:fixed:50us", "cpu:fixed:50us"},
           {"cpu:exp:20us", "cpu:exp:20us"},
           {"cpu:bimodal:0.995:10us:1ms", "cpu:bimodal:0.995:10us:1ms"},
           {"wait:fixed:1ms", "wait:fixed:1ms"},
           {"wait:exp:0.001", "wait:exp:1ms"},
           {"wait:fixed:1ms+cpu:exp:20us", "cpu:exp:20us+wait:fixed:1ms"},
       }) {
    SCOPED_TRACE(given);
    const WorkSpec spec = WorkSpec::Parse(given);
    EXPECT_EQ(spec.ToString(), canonical);
    EXPECT_EQ(WorkSpec::Parse(canonical).ToString(), canonical);
    EXPECT_FALSE(spec.empty());
  }
  EXPECT_TRUE(WorkSpec().empty());
  EXPECT_EQ(WorkSpec::Parse("cpu:bimodal:0.5:1ms:10us").classes(), 2);
  EXPECT_EQ(WorkSpec::Parse("cpu:fixed:1ms").classes(), 1);
}

TEST(WorkSpecTest, RefusesWhatIsNotASpecSayingWhy) {
  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {"", "empty"},
           {"cpu", "fixed, exp or bimodal"},
           {"cpu:fixed", "one duration"},
           {"cpu:fixed:", "missing"},
           {"cpu:fixed:50us:1", "one duration"},
           {"cpu:normal:5us", "not 'normal'"},
           {"io:fixed:1ms", "not 'io'"},
           {"cpu:fixed:abc", "abc"},
           {"cpu:fixed:-1ms", "-1ms"},
           {"cpu:fixed:2s", "at most 1s"},
           {"cpu:bimodal:1:1us:2us", "strictly between 0 and 1"},
           {"cpu:bimodal:0:1us:2us", "strictly between 0 and 1"},
           {"cpu:bimodal:x:1us:2us", "'x'"},
           {"cpu:bimodal:0.5:1us", "P:FIRST:SECOND"},
           {"cpu:fixed:1us+cpu:fixed:2us", "twice"},
           {"cpu:fixed:1us+", "a part is"},
           {"cpu:exp:1us+wait:exp:1ms", "not both"},
       }) {
    SCOPED_TRACE(bad);
    try {
      WorkSpec::Parse(bad);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  }
}

// 100,000 draws over many connections: the mean within 2%, the bimodal's share within 0.2 points,
// the classes as defined; and every model gets the same sequence (a pure function of stream, seq).
TEST(WorkSpecTest, DrawsFollowTheirDistributions) {
  constexpr int kDraws = 100000;
  for (const char* text : {"cpu:fixed:50us", "cpu:exp:20us", "cpu:bimodal:0.995:10us:1ms", "wait:exp:1ms"}) {
    SCOPED_TRACE(text);
    const WorkSpec spec = WorkSpec::Parse(text);
    const Distribution& d = spec.cpu().kind != Distribution::Kind::kNone ? spec.cpu() : spec.wait();
    double sum = 0;
    int first = 0, class1 = 0;
    for (int i = 0; i < kDraws; ++i) {
      const Work w = spec.Of(static_cast<uint64_t>(i % 100), static_cast<uint64_t>(i / 100));
      const double ns = static_cast<double>(spec.cpu().kind != Distribution::Kind::kNone ? w.cpu_ns : w.wait_ns);
      sum += ns;
      first += ns == d.first_ns;
      class1 += w.cls;
      ASSERT_EQ(w.cls, d.ClassOf(ns));
      ASSERT_EQ(spec.Of(i % 100, i / 100).cpu_ns, w.cpu_ns);
    }
    EXPECT_NEAR(sum / kDraws, d.Mean(), 0.02 * d.Mean());
    if (d.kind == Distribution::Kind::kBimodal) {
      EXPECT_NEAR(static_cast<double>(first) / kDraws, d.p, 0.002);
      EXPECT_EQ(class1, kDraws - first);
    }
    if (d.kind == Distribution::Kind::kExp) {
      EXPECT_NEAR(static_cast<double>(class1) / kDraws, 0.5, 0.01);
    }
  }
}

TEST(WorkHeaderTest, WrittenAndReadBack) {
  WorkHeader h;
  h.length = 4096;
  h.cpu_ns = 123456;
  h.wait_ns = 999'000'000;
  char data[WorkHeader::kSize + 8] = {};
  h.WriteRequest(data);
  EXPECT_EQ(std::string(data, 4), "work");
  WorkHeader read;
  EXPECT_EQ(WorkHeader::From(data, WorkHeader::kSize, 16384, &read), WorkHeader::Read::kOk);
  EXPECT_EQ(read.length, 4096u);
  EXPECT_EQ(read.cpu_ns, 123456u);
  EXPECT_EQ(read.wait_ns, 999'000'000u);
  for (size_t n = 0; n < WorkHeader::kSize; ++n) {
    EXPECT_EQ(WorkHeader::From(data, n, 16384, &read), WorkHeader::Read::kNeedMore) << n;
  }
  EXPECT_EQ(WorkHeader::From(data, WorkHeader::kSize, 4095, &read), WorkHeader::Read::kBad);  // too long
  h.WriteReply(data);
  EXPECT_EQ(std::string(data, 4), "done");
  EXPECT_EQ(WorkHeader::From(data, 2, 16384, &read), WorkHeader::Read::kBad);  // not a request, seen early
  for (const auto& [length, cpu] : std::vector<std::pair<uint32_t, uint64_t>>{{23, 0}, {64, 2'000'000'000}}) {
    WorkHeader odd;
    odd.length = length;
    odd.cpu_ns = cpu;
    odd.WriteRequest(data);
    EXPECT_EQ(WorkHeader::From(data, WorkHeader::kSize, 16384, &read), WorkHeader::Read::kBad) << length;
  }
}

int64_t ThreadCpuNs() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}

// The thread's CPU clock advances by at least the work: noise can only add to it.
TEST(BurnCpuTest, BurnsAtLeastWhatWasAsked) {
  for (uint64_t ns : {uint64_t{1000}, uint64_t{50'000}, uint64_t{3'000'000}}) {
    const int64_t before = ThreadCpuNs();
    BurnCpu(ns);
    EXPECT_GE(ThreadCpuNs() - before, static_cast<int64_t>(ns));
  }
}

// With work, a request begins with its header, and the reply is checked against "done" and the
// request's fields under each reply rule; a plain echo of the request is named as such.
TEST(WorkProtocolTest, RequestsCarryTheirWorkAndRepliesAreChecked) {
  const WorkSpec spec = WorkSpec::Parse("cpu:bimodal:0.5:1us:2us+wait:fixed:3us");
  for (const char* rule : {"upper", "same", "prefix:Echo=>"}) {
    SCOPED_TRACE(rule);
    const ReplyMode mode = ReplyMode::Parse(rule);
    const MessagePattern p(100, 7, mode, spec);
    std::vector<char> scratch(p.size());
    for (uint64_t seq = 0; seq < 50; ++seq) {
      const char* request = p.Request(3, seq, scratch.data());
      WorkHeader h;
      ASSERT_EQ(WorkHeader::From(request, p.size(), 16384, &h), WorkHeader::Read::kOk);
      const Work w = spec.Of(3, seq);
      EXPECT_EQ(h.length, 100u);
      EXPECT_EQ(h.cpu_ns, w.cpu_ns);
      EXPECT_EQ(h.wait_ns, 3000u);
      // What a server that does --work sends back.
      std::vector<char> reply(mode.headroom() + p.size());
      std::memcpy(reply.data() + mode.headroom(), request, p.size());
      h.WriteReply(reply.data() + mode.headroom());
      mode.Make(reply.data(), p.size());
      uint64_t unread = 0;
      EXPECT_EQ(p.Wrong(3, seq, 0, reply.data(), reply.size(), &unread), 0u);
      EXPECT_EQ(p.Wrong(3, seq, 5, reply.data() + 5, 30, &unread), 0u);  // a piece across the header's end
      EXPECT_EQ(unread, 0u);
      // A plain echo of it: the header comes back "work", named unread (3 of its 4 bytes: "work"
      // and "done" share their 'o').
      std::vector<char> echoed(mode.headroom() + p.size());
      std::memcpy(echoed.data() + mode.headroom(), request, p.size());
      mode.Make(echoed.data(), p.size());
      EXPECT_EQ(p.Wrong(3, seq, 0, echoed.data(), echoed.size(), &unread), 3u);
      EXPECT_EQ(unread, 3u);
    }
  }
  EXPECT_THROW(MessagePattern(WorkHeader::kSize - 1, 0, {}, spec), std::invalid_argument);
}

}  // namespace
}  // namespace echo
