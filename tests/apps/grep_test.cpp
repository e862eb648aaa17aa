// spindle grep end to end.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <random>

#include "command_runner.hpp"

using spindle_test::run_spindle;
using spindle_test::TemporaryFolder;

TEST(Grep, CountsWholeWordsPerFileAndTotal) {
  TemporaryFolder folder;
  const auto a = folder.write("a.log", "error: disk error\nerrors are not error_codes; (error)\n");
  const auto b = folder.write("b.log", "error");
  const auto result = run_spindle({"grep", "error", a.string(), b.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "3 " + a.string() + "\n1 " + b.string() + "\n4 total\n");
  EXPECT_EQ(result.err, "");
}

TEST(Grep, IsCaseSensitiveUnlessIgnoreCase) {
  TemporaryFolder folder;
  const auto file = folder.write("a.txt", "Error ERROR error eRRoR errOr1");
  EXPECT_EQ(run_spindle({"grep", "error", file.string()}).out,
            "1 " + file.string() + "\n1 total\n");
  EXPECT_EQ(run_spindle({"grep", "-i", "error", file.string()}).out,
            "4 " + file.string() + "\n4 total\n");
  EXPECT_EQ(run_spindle({"grep", "--ignore-case", "ERROR", file.string()}).out,
            "4 " + file.string() + "\n4 total\n");
}

TEST(Grep, WordsAtTheEdgesOfTheFileCount) {
  TemporaryFolder folder;
  const auto file = folder.write("a.txt", "word middle word");
  EXPECT_EQ(run_spindle({"grep", "word", file.string()}).out, "2 " + file.string() + "\n2 total\n");
}

TEST(Grep, EmptyFileCountsZero) {
  TemporaryFolder folder;
  const auto file = folder.write("empty.txt", "");
  const auto result = run_spindle({"grep", "word", file.string()});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "0 " + file.string() + "\n0 total\n");
}

TEST(Grep, WordsAcrossChunkBoundariesCountOnce) {
  // Chunks are 4 MiB: put occurrences just before, across and just after each boundary.
  TemporaryFolder folder;
  const std::size_t chunk = 4u << 20;
  std::string text(3 * chunk + 1000, ' ');
  int expected = 0;
  const std::pair<std::size_t, std::vector<long>> placements[] = {
      {chunk, {-12, -3, 2, 10}},  // -3: straddles the boundary
      {2 * chunk, {-4, 5}},       // -4: ends at the boundary
      {3 * chunk, {-9, 0, 6}}};   // 0: starts at it
  for (const auto& [boundary, offsets] : placements) {
    for (long offset : offsets) {
      text.replace(static_cast<std::size_t>(static_cast<long>(boundary) + offset), 4, "word");
      ++expected;
    }
  }
  // Glued to a word byte on the other side of a boundary: not a whole word.
  text.replace(chunk + 40, 5, "xword");
  text.replace(2 * chunk - 20, 5, "wordy");
  const auto file = folder.write("big.txt", text);
  const auto result = run_spindle({"grep", "word", file.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, std::to_string(expected) + " " + file.string() + "\n" +
                            std::to_string(expected) + " total\n");
}

TEST(Grep, MatchesGrepWordCountOnRandomText) {
  TemporaryFolder folder;
  std::mt19937 random(42);
  const char* pieces[] = {"the",   "The", "THE", "then", "other", "the_", "_the",    "9the",
                          "-the-", " ",   " ",   "\n",   ".",     "x",    "théâtre", "the\tthe"};
  std::string text;
  while (text.size() < (9u << 20))
    text += pieces[random() % std::size(pieces)];
  const auto file = folder.write("random.txt", text);
  for (bool ignore_case : {false, true}) {
    const std::string flag = ignore_case ? "-i " : "";
    const std::string command = "LC_ALL=C grep -o -w -F " + flag + "the '" + file.string() +
                                "' | wc -l > '" + (folder / "expected").string() + "'";
    ASSERT_EQ(std::system(command.c_str()), 0);
    const long expected = std::stol(spindle_test::read_file(folder / "expected"));
    std::vector<std::string> args = {"grep"};
    if (ignore_case) args.push_back("-i");
    args.insert(args.end(), {"the", file.string()});
    const auto result = run_spindle(args);
    EXPECT_EQ(result.out, std::to_string(expected) + " " + file.string() + "\n" +
                              std::to_string(expected) + " total\n")
        << "ignore_case " << ignore_case;
  }
}

TEST(Grep, MissingUnreadableBinaryAndFoldersAreReportedOthersCounted) {
  TemporaryFolder folder;
  const auto good = folder.write("good.txt", "word word");
  const auto binary = folder.write("binary.bin", std::string("word\0word", 9));
  const auto missing = folder / "missing.txt";
  const auto result = run_spindle(
      {"grep", "word", missing.string(), binary.string(), folder.path().string(), good.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "2 " + good.string() + "\n2 total\n");
  EXPECT_NE(result.err.find(missing.string() + ": No such file or directory"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find(binary.string() + ": binary file"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(folder.path().string() + ": is a directory"), std::string::npos)
      << result.err;
}

TEST(Grep, UnreadableFileIsReported) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  TemporaryFolder folder;
  const auto locked = folder.write("locked.txt", "word");
  std::filesystem::permissions(locked, std::filesystem::perms::none);
  const auto result = run_spindle({"grep", "word", locked.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find(locked.string() + ": Permission denied"), std::string::npos)
      << result.err;
}

TEST(Grep, JsonOutputHasPerFileCountsErrorsAndTotal) {
  TemporaryFolder folder;
  const auto good = folder.write("good.txt", "a word, another word");
  const auto missing = folder / "missing.txt";
  const auto result = run_spindle({"grep", "--json", "word", good.string(), missing.string()});
  EXPECT_EQ(result.exit_code, 1);
  const auto document = nlohmann::json::parse(result.out);
  EXPECT_EQ(document["word"], "word");
  EXPECT_EQ(document["total"], 2);
  ASSERT_EQ(document["files"].size(), 2u);
  EXPECT_EQ(document["files"][0]["file"], good.string());
  EXPECT_EQ(document["files"][0]["count"], 2);
  EXPECT_EQ(document["files"][1]["file"], missing.string());
  EXPECT_EQ(document["files"][1]["error"], "No such file or directory");
}

TEST(Grep, ManyFilesInParallelKeepInputOrder) {
  TemporaryFolder folder;
  std::vector<std::string> args = {"grep", "-j", "4", "hit"};
  std::string expected;
  int total = 0;
  for (int i = 0; i < 40; ++i) {
    std::string text;
    for (int k = 0; k < i; ++k)
      text += "hit miss ";
    const auto file = folder.write("f" + std::to_string(i) + ".txt", text);
    args.push_back(file.string());
    expected += std::to_string(i) + " " + file.string() + "\n";
    total += i;
  }
  const auto result = run_spindle(args);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, expected + std::to_string(total) + " total\n");
}

TEST(Grep, EmptyWordIsBadUsage) {
  TemporaryFolder folder;
  const auto file = folder.write("a.txt", "x");
  const auto result = run_spindle({"grep", "", file.string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("WORD"), std::string::npos) << result.err;
}

TEST(Grep, MissingFileArgumentIsBadUsage) {
  const auto result = run_spindle({"grep", "word"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("FILE"), std::string::npos) << result.err;
}
