// spindle fetch end to end against nginx and test servers on 127.0.0.1.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "command_runner.hpp"
#include "nginx_server.hpp"

using spindle_test::NginxServer;
using spindle_test::read_file;
using spindle_test::run_spindle;
using spindle_test::TemporaryFolder;

namespace {

// The names of the files in `folder`, sorted.
std::vector<std::string> names_in(const std::filesystem::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string bytes_of(std::size_t size) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    data[i] = static_cast<char>((i * 7919) % 251);
  return data;
}

class Fetch : public ::testing::Test {
 protected:
  Fetch() {
    site.write("a.txt", "alpha\n");
    site.write("b.txt", "bravo\n");
    site.write("index.html", "<p>index</p>\n");
    site.write("big.bin", bytes_of(5u << 20));
  }
  std::string output() const { return (out / "files").string(); }

  TemporaryFolder site;
  TemporaryFolder out;
  NginxServer nginx{site.path()};
};

}  // namespace

TEST_F(Fetch, DownloadsEveryUrlIntoTheOutputFolder) {
  const auto result = run_spindle({"fetch", "-j", "3", "-o", output(), nginx.url("/files/a.txt"),
                                   nginx.url("/files/b.txt"), nginx.url("/files/big.bin")});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(names_in(output()), (std::vector<std::string>{"a.txt", "b.txt", "big.bin"}));
  EXPECT_EQ(read_file(out / "files/a.txt"), "alpha\n");
  EXPECT_EQ(read_file(out / "files/big.bin"), bytes_of(5u << 20));
  EXPECT_NE(result.out.find("200 6 B " + nginx.url("/files/a.txt") + " -> "), std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("200 5.2 MB " + nginx.url("/files/big.bin")), std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("fetched 3 of 3 URL(s), 5.2 MB in "), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("MB/s)"), std::string::npos) << result.out;
  EXPECT_EQ(result.err, "");
}

TEST_F(Fetch, EachFailureHasItsOwnLineAndTheRestAreDownloaded) {
  spindle_test::RefusingPort refusing;
  spindle_test::SilentListener silent;
  const std::string refused = "http://127.0.0.1:" + std::to_string(refusing.port()) + "/r.txt";
  const std::string hanging = "http://127.0.0.1:" + std::to_string(silent.port()) + "/t.txt";
  const std::string malformed = "http://[::1/m.txt";
  const std::string missing = nginx.url("/files/missing.txt");
  const auto result =
      run_spindle({"fetch", "--retries", "0", "--timeout", "0.5", "-o", output(), malformed,
                   refused, nginx.url("/files/a.txt"), hanging, missing});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(names_in(output()), std::vector<std::string>{"a.txt"});  // no partial files
  const auto& err = result.err;
  EXPECT_NE(err.find("error: " + malformed + ": malformed URL"), std::string::npos) << err;
  EXPECT_NE(err.find("error: " + refused + ": connection refused"), std::string::npos) << err;
  EXPECT_NE(err.find("error: " + hanging + ": timed out"), std::string::npos) << err;
  EXPECT_NE(err.find("error: " + missing + ": HTTP 404"), std::string::npos) << err;
  EXPECT_NE(result.out.find("fetched 1 of 5 URL(s)"), std::string::npos) << result.out;
}

TEST_F(Fetch, UnknownHostHasItsOwnLine) {
  // On its own, with the default timeout: a slow resolver must not turn it into a timeout.
  const std::string unknown = "http://no-such-host.invalid/u.txt";  // .invalid: RFC 6761
  const auto result =
      run_spindle({"fetch", "--retries", "0", "-o", output(), unknown, nginx.url("/files/b.txt")});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("error: " + unknown + ": unknown host"), std::string::npos)
      << result.err;
  EXPECT_EQ(names_in(output()), std::vector<std::string>{"b.txt"});
}

TEST_F(Fetch, ServerErrorsAreRetriedWithBackoff) {
  const auto result = run_spindle({"fetch", "--retries", "2", "--backoff", "0.01", "-o", output(),
                                   nginx.url("/status/503"), nginx.url("/files/a.txt")});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(nginx.requests_for("/status/503"), 3);
  EXPECT_NE(result.err.find(nginx.url("/status/503") + ": HTTP 503 after 3 attempts"),
            std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("retrying " + nginx.url("/status/503")), std::string::npos)
      << result.err;
  EXPECT_EQ(names_in(output()), std::vector<std::string>{"a.txt"});
}

TEST_F(Fetch, ClientErrorsAreNotRetried) {
  const auto result =
      run_spindle({"fetch", "--retries", "3", "-o", output(), nginx.url("/files/nothing")});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(nginx.requests_for("/files/nothing"), 1);
}

TEST_F(Fetch, TimeoutsAreRetried) {
  spindle_test::SilentListener silent;
  const std::string hanging = "http://127.0.0.1:" + std::to_string(silent.port()) + "/t";
  const auto result = run_spindle(
      {"fetch", "--retries", "1", "--backoff", "0", "--timeout", "0.2", "-o", output(), hanging});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find(hanging + ": timed out"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("after 2 attempts"), std::string::npos) << result.err;
}

TEST_F(Fetch, RedirectsAreFollowed) {
  const auto result = run_spindle({"fetch", "-o", output(), nginx.url("/redirect")});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(read_file(out / "files/redirect"), "alpha\n");
}

TEST_F(Fetch, UrlsFromAFileWithCommentsAndBlankLines) {
  const auto list = out.write("urls.txt", "# the list\n" + nginx.url("/files/a.txt") + "\n\n  " +
                                              nginx.url("/files/b.txt") + "  \n");
  const auto result = run_spindle({"fetch", "-i", list.string(), "-o", output()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(names_in(output()), (std::vector<std::string>{"a.txt", "b.txt"}));
}

TEST_F(Fetch, UrlsFromStandardInput) {
  const auto result = run_spindle({"fetch", "-i", "-", "-o", output()},
                                  {.input = nginx.url("/files/b.txt") + "\n"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(read_file(out / "files/b.txt"), "bravo\n");
}

TEST_F(Fetch, TheSameNameTwiceGetsTwoFiles) {
  const auto result = run_spindle({"fetch", "-o", output(), nginx.url("/files/a.txt"),
                                   nginx.url("/files/a.txt?again"), nginx.url("/files/")});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(names_in(output()), (std::vector<std::string>{"a.txt", "a.txt.1", "index.html"}));
}

TEST_F(Fetch, JsonOutputHasEveryUrlInInputOrder) {
  const auto result = run_spindle(
      {"fetch", "--json", "-o", output(), nginx.url("/files/a.txt"), nginx.url("/files/zzz")});
  EXPECT_EQ(result.exit_code, 1);
  const auto document = nlohmann::json::parse(result.out);
  ASSERT_EQ(document["results"].size(), 2u);
  EXPECT_EQ(document["results"][0]["status"], 200);
  EXPECT_EQ(document["results"][0]["bytes"], 6);
  EXPECT_EQ(document["results"][1]["status"], 404);
  EXPECT_EQ(document["results"][1]["error"], "HTTP 404");
  EXPECT_EQ(document["succeeded"], 1);
  EXPECT_EQ(document["failed"], 1);
  EXPECT_EQ(document["bytes"], 6);
}

TEST_F(Fetch, InterruptedDownloadLeavesNoPartialFile) {
  // /slow/ sends 100 kB/s: the 5 MB file is still arriving when SIGINT comes.
  const pid_t pid =
      spindle_test::spawn_spindle({"fetch", "-o", output(), nginx.url("/slow/big.bin")});
  // Wait (on another process) for the download to be under way: its temporary file exists.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool started = false;
  while (!started && std::chrono::steady_clock::now() < deadline) {
    std::error_code ignored;
    if (std::filesystem::is_directory(output(), ignored))
      for (const auto& entry : std::filesystem::directory_iterator(output(), ignored))
        if (entry.file_size(ignored) > 0) started = true;
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(started);
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_TRUE(names_in(output()).empty());
}

TEST(FetchUsage, NoUrlIsBadUsage) {
  const auto result = run_spindle({"fetch"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("no URL given"), std::string::npos) << result.err;
}

TEST(FetchUsage, UnreadableUrlListIsBadUsage) {
  const auto result = run_spindle({"fetch", "-i", "/nonexistent/urls.txt"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("/nonexistent/urls.txt"), std::string::npos) << result.err;
}

TEST(FetchUsage, ZeroJobsIsBadUsage) {
  const auto result = run_spindle({"fetch", "-j", "0", "http://127.0.0.1/"});
  EXPECT_EQ(result.exit_code, 2);
}
