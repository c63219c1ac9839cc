#include "scenarios/echo/slurm_script.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <stdexcept>
#include <vector>

namespace echo {
namespace {

// What bash makes of `word` as a command's argument.
std::string BashSees(const std::string& word) {
  const std::string command = "bash -c " + ShellWord("printf %s " + ShellWord(word));
  FILE* p = popen(command.c_str(), "r");
  std::string out;
  char buf[256];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  pclose(p);
  return out;
}

TEST(ShellWordTest, EveryWordReachesBashAsItIs) {
  for (const std::string word : {"plain", "it's", "'", "''", "$(touch /tmp/x)", "`id`", "$HOME", "a b", "*", "\\",
                                 "\"q\"", "; echo INJECTED", "caf\xc3\xa9", "--reply=prefix:Echo=> "}) {
    EXPECT_EQ(BashSees(word), word) << word;
  }
}

TEST(ShellWordTest, ControlBytesAndNonUtf8AreRefused) {
  for (const std::string& word : std::vector<std::string>{"b\necho INJECTED", "a\rb", std::string("a\0b", 3),
                                                          "tab\there", "\x1b[2J", "\x7f", "\xff"}) {
    EXPECT_THROW(ShellWord(word), std::invalid_argument) << word;
  }
}

SlurmJob Job() {
  SlurmJob job;
  job.harness = "/opt/harness";
  job.dir = "/shared/run-1";
  job.model = "asio";
  return job;
}

void ExpectRefused(const SlurmJob& job, const std::string& flag) {
  try {
    BatchScript(job);
    ADD_FAILURE() << "accepted: " << flag;
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind(flag + ":", 0), 0u) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

TEST(BatchScriptTest, SbatchLinesTakePlainWordsOnly) {
  for (const std::string partition : {"b\necho INJECTED", "a b", "x'y", "$(id)", ""}) {
    SlurmJob job = Job();
    job.partition = partition;
    if (partition.empty()) {
      EXPECT_EQ(BatchScript(job).find("--partition"), std::string::npos);
      continue;
    }
    ExpectRefused(job, "--partition");
  }
  for (const std::string dir : {"/shared/a b", "/shared/it's", "/shared/a\nb"}) {
    SlurmJob job = Job();
    job.dir = dir;
    ExpectRefused(job, "--out");
  }
  for (const std::string option : {"--time=10\necho INJECTED", "--comment=a b", "time=10"}) {
    SlurmJob job = Job();
    job.sbatch = {option};
    ExpectRefused(job, "--sbatch");
  }
  SlurmJob job = Job();
  job.load["reply"] = "prefix:\n";
  ExpectRefused(job, "--reply");
  job = Job();
  job.partition = "batch";
  job.sbatch = {"--time=10", "--exclusive"};
  job.load["reply"] = "prefix:it's $(id) ";
  const std::string script = BatchScript(job);
  EXPECT_NE(script.find("#SBATCH --partition=batch\n#SBATCH --time=10\n#SBATCH --exclusive\n"), std::string::npos);
  EXPECT_NE(script.find("'--reply=prefix:it'\\''s $(id) '"), std::string::npos) << script;
}

}  // namespace
}  // namespace echo
