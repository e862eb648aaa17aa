#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace {

TEST(Print, FormatsWithFmtSyntaxAndEndsTheLine) {
  testing::internal::CaptureStdout();
  spindle::print("{} + {} = {:>3}", 1, 2, 3);
  std::fflush(stdout);
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "1 + 2 =   3\n");
}

TEST(Print, WritesToTheGivenStream) {
  testing::internal::CaptureStderr();
  spindle::print(stderr, "to {}", "stderr");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "to stderr\n");
}

TEST(Print, LinesFromManyThreadsNeverInterleave) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  constexpr int kThreads = 8;
  constexpr int kLines = 500;
  std::vector<std::unique_ptr<spindle::threading::Thread>> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.push_back(std::make_unique<spindle::threading::Thread>([file, t] {
      const std::string body(100, static_cast<char>('a' + t));
      for (int i = 0; i < kLines; ++i)
        spindle::print(file, "Thread {} started.{}", t, body);
    }));
    threads.back()->start();
  }
  for (auto& thread : threads)
    thread->join();
  std::rewind(file);
  char buffer[512];
  int lines = 0;
  while (std::fgets(buffer, sizeof buffer, file) != nullptr) {
    const std::string line(buffer);
    ASSERT_EQ(line.size(), std::string("Thread 0 started.").size() + 100 + 1) << line;
    const char letter = static_cast<char>('a' + (line[7] - '0'));
    EXPECT_EQ(line.find_first_not_of(letter, 17), line.size() - 1) << line;
    ++lines;
  }
  std::fclose(file);
  EXPECT_EQ(lines, kThreads * kLines);
}

}  // namespace
