// spindle replace end to end, including being killed at random points.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <random>

#include "command_runner.hpp"

using spindle_test::read_file;
using spindle_test::run_spindle;
using spindle_test::TemporaryFolder;

namespace {

// Files in `folder` whose name starts with '.' (left-over temporary files).
int hidden_files(const std::filesystem::path& folder) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder))
    if (entry.path().filename().string().front() == '.') ++count;
  return count;
}

mode_t mode_of(const std::filesystem::path& file) {
  struct stat info {};
  ::stat(file.c_str(), &info);
  return info.st_mode & 07777;
}

}  // namespace

TEST(Replace, ReplacesEveryOccurrenceInEachFile) {
  TemporaryFolder folder;
  const auto a = folder.write("a.txt", "cat dog cat\ncatalog");
  const auto b = folder.write("b.txt", "no match here");
  const auto result = run_spindle({"replace", "cat", "lion", a.string(), b.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(read_file(a), "lion dog lion\nlionalog");
  EXPECT_EQ(read_file(b), "no match here");
  EXPECT_EQ(result.out,
            "3 " + a.string() + "\n0 " + b.string() + "\n3 total in 1 changed file(s)\n");
  EXPECT_EQ(hidden_files(folder.path()), 0);
}

TEST(Replace, NewTextMayBeEmptyOrContainOld) {
  TemporaryFolder folder;
  const auto a = folder.write("a.txt", "aXbXc");
  EXPECT_EQ(run_spindle({"replace", "X", "", a.string()}).exit_code, 0);
  EXPECT_EQ(read_file(a), "abc");
  const auto b = folder.write("b.txt", "ab");
  EXPECT_EQ(run_spindle({"replace", "a", "aa", b.string()}).exit_code, 0);
  EXPECT_EQ(read_file(b), "aab");
}

TEST(Replace, OccurrencesAcrossReadBlocksAreReplaced) {
  TemporaryFolder folder;
  std::string text(3u << 20, '.');
  for (std::size_t at : {(1u << 20) - 2, (2u << 20) - 1, (3u << 20) - 5})
    text.replace(at, 5, "needl");  // reads are 1 MiB: the first two straddle a block edge
  const auto file = folder.write("big.txt", text);
  std::string expected = text;
  for (auto at = expected.find("needl"); at != std::string::npos; at = expected.find("needl"))
    expected.replace(at, 5, "pin");
  const auto result = run_spindle({"replace", "needl", "pin", file.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(read_file(file), expected);
}

TEST(Replace, KeepsThePermissions) {
  TemporaryFolder folder;
  const auto file = folder.write("script.sh", "echo old");
  ::chmod(file.c_str(), 0751);
  EXPECT_EQ(run_spindle({"replace", "old", "new", file.string()}).exit_code, 0);
  EXPECT_EQ(read_file(file), "echo new");
  EXPECT_EQ(mode_of(file), 0751u);
}

TEST(Replace, ASymlinkIsFollowedAndStaysALink) {
  TemporaryFolder folder;
  const auto target = folder.write("target.txt", "old");
  const auto link = folder / "link.txt";
  std::filesystem::create_symlink(target, link);
  EXPECT_EQ(run_spindle({"replace", "old", "new", link.string()}).exit_code, 0);
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(read_file(target), "new");
}

TEST(Replace, ProblemsAreReportedAndTheRestDone) {
  TemporaryFolder folder;
  const auto good = folder.write("good.txt", "old");
  const auto read_only = folder.write("read-only.txt", "old");
  ::chmod(read_only.c_str(), 0444);
  const auto missing = folder / "missing.txt";
  const auto result = run_spindle({"replace", "old", "new", missing.string(), read_only.string(),
                                   folder.path().string(), good.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(read_file(good), "new");
  EXPECT_EQ(read_file(read_only), "old");
  EXPECT_NE(result.err.find(missing.string() + ": No such file or directory"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find(read_only.string() + ": not writable"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find(folder.path().string() + ": is a directory"), std::string::npos)
      << result.err;
  EXPECT_EQ(result.out, "1 " + good.string() + "\n1 total in 1 changed file(s)\n");
}

TEST(Replace, FileInAFolderThatCannotBeWrittenIsReported) {
  // /proc's files can be read, but no file can be created next to them.
  const auto result = run_spindle({"replace", "Linux", "Linus", "/proc/version"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("/proc/version: "), std::string::npos) << result.err;
}

TEST(Replace, JsonOutput) {
  TemporaryFolder folder;
  const auto a = folder.write("a.txt", "x x x");
  const auto result = run_spindle({"--json", "replace", "x", "y", a.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const auto document = nlohmann::json::parse(result.out);
  EXPECT_EQ(document["total"], 3);
  EXPECT_EQ(document["files"][0]["replacements"], 3);
}

TEST(Replace, EmptyOldIsBadUsage) {
  TemporaryFolder folder;
  const auto a = folder.write("a.txt", "x");
  const auto result = run_spindle({"replace", "", "y", a.string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("OLD"), std::string::npos) << result.err;
}

// SIGKILL at random moments of a run over many files: afterwards each file holds exactly its
// old or exactly its new contents.
TEST(Replace, KilledAtRandomPointsEveryFileIsWhollyOldOrWhollyNew) {
  TemporaryFolder folder;
  std::string old_text;
  std::string new_text;
  while (old_text.size() < (256u << 10)) {
    old_text += "alpha beta gamma\n";
    new_text += "omega-omega beta gamma\n";
  }
  constexpr int kFiles = 8;
  std::vector<std::string> args = {"replace", "-j", "3", "alpha", "omega-omega"};
  std::vector<std::filesystem::path> files;
  for (int i = 0; i < kFiles; ++i) {
    files.push_back(folder / ("f" + std::to_string(i) + ".txt"));
    args.push_back(files.back().string());
  }
  auto write_old = [&] {
    for (const auto& file : files)
      std::ofstream(file, std::ios::binary) << old_text;
  };
  // How long an undisturbed run takes, to spread the kills over it.
  write_old();
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(run_spindle(args).exit_code, 0);
  const auto full_run = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  for (const auto& file : files)
    ASSERT_EQ(read_file(file), new_text);

  std::mt19937 random(std::random_device{}());
  int runs_caught_midway = 0;
  int rounds = 0;
  // At least 5 rounds; more while the time allows (sanitizer builds are many times slower).
  const auto budget_end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int round = 0; round < 25 && (round < 5 || std::chrono::steady_clock::now() < budget_end);
       ++round) {
    ++rounds;
    write_old();
    const pid_t pid = spindle_test::spawn_spindle(args);
    // Not synchronisation: the kill point is meant to be random within the run.
    std::this_thread::sleep_for(std::chrono::microseconds(random() % (full_run.count() + 1)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    int old_files = 0;
    int new_files = 0;
    for (const auto& file : files) {
      const std::string contents = read_file(file);
      if (contents == old_text)
        ++old_files;
      else if (contents == new_text)
        ++new_files;
      else
        ADD_FAILURE() << file << " is neither old nor new after a kill (" << contents.size()
                      << " bytes) in round " << round;
    }
    if (old_files > 0 && new_files > 0) ++runs_caught_midway;
    // Temporary files a kill leaves behind are never mistaken for the files themselves.
    for (const auto& entry : std::filesystem::directory_iterator(folder.path()))
      if (entry.path().filename().string().front() == '.') std::filesystem::remove(entry.path());
  }
  std::cout << "rounds killed with some files done and others not: " << runs_caught_midway << " of "
            << rounds << " (full run " << full_run.count() << " us)\n";
}
