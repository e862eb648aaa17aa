// asyncio subprocesses: pipes, communicate, return codes, signals, redirections, errors and
// cancellation (CPython's test_asyncio/test_subprocess.py behaviours).
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <string>
#include <system_error>
#include <vector>

#include "spindle/asyncio.hpp"

namespace {

namespace asyncio = spindle::asyncio;
namespace subprocess = spindle::asyncio::subprocess;
using asyncio::Process;
using asyncio::Task;
using Args = std::vector<std::string>;
using namespace std::chrono_literals;

TEST(Subprocess, ReadsStdoutAndGetsTheReturnCode) {
  asyncio::run([]() -> Task<> {
    Args args{"hello", "world"};
    Process process =
        co_await asyncio::create_subprocess_exec("echo", args, {.out = subprocess::PIPE});
    EXPECT_GT(process.pid(), 0);
    EXPECT_EQ(co_await process.out().read(), "hello world\n");
    EXPECT_EQ(co_await process.wait(), 0);
    EXPECT_EQ(process.returncode(), 0);
  }());
}

TEST(Subprocess, ExitCodeIsReported) {
  asyncio::run([]() -> Task<> {
    Process process = co_await asyncio::create_subprocess_shell("exit 7");
    EXPECT_FALSE(process.returncode().has_value());
    EXPECT_EQ(co_await process.wait(), 7);
    EXPECT_EQ(co_await process.wait(), 7);
  }());
}

TEST(Subprocess, CommunicateFeedsStdinAndCollectsBothOutputs) {
  asyncio::run([]() -> Task<> {
    Process process = co_await asyncio::create_subprocess_shell(
        "cat; echo done >&2",
        {.in = subprocess::PIPE, .out = subprocess::PIPE, .err = subprocess::PIPE});
    std::string input(1024 * 1024, 'i');
    auto [out, err] = co_await process.communicate(input);
    EXPECT_EQ(out.size(), input.size());
    EXPECT_TRUE(out == input);
    EXPECT_EQ(err, "done\n");
    EXPECT_EQ(process.returncode(), 0);
  }());
}

TEST(Subprocess, ReadlineFromAChildLineByLine) {
  asyncio::run([]() -> Task<> {
    Process process = co_await asyncio::create_subprocess_shell(
        "for i in 1 2 3; do echo line $i; done", {.out = subprocess::PIPE});
    std::vector<std::string> lines;
    for (;;) {
      std::string line = co_await process.out().readline();
      if (line.empty()) break;
      lines.push_back(line);
    }
    EXPECT_EQ(lines, (std::vector<std::string>{"line 1\n", "line 2\n", "line 3\n"}));
    EXPECT_EQ(co_await process.wait(), 0);
  }());
}

TEST(Subprocess, StderrToStdoutAndDevnull) {
  asyncio::run([]() -> Task<> {
    Process merged = co_await asyncio::create_subprocess_shell(
        "echo out; echo err >&2", {.out = subprocess::PIPE, .err = subprocess::STDOUT});
    auto [out, err] = co_await merged.communicate();
    EXPECT_EQ(out, "out\nerr\n");
    EXPECT_EQ(err, "");
    Args args{};
    Process quiet = co_await asyncio::create_subprocess_exec(
        "cat", args, {.in = subprocess::DEVNULL, .out = subprocess::PIPE});
    EXPECT_EQ(co_await quiet.out().read(), "");
    EXPECT_EQ(co_await quiet.wait(), 0);
  }());
}

TEST(Subprocess, WritingToStdinThenClosingIt) {
  asyncio::run([]() -> Task<> {
    Args args{"-c"};
    Process process = co_await asyncio::create_subprocess_exec(
        "wc", args, {.in = subprocess::PIPE, .out = subprocess::PIPE});
    process.in().write("12345");
    co_await process.in().drain();
    process.in().close();
    std::string count = co_await process.out().read();
    EXPECT_EQ(std::stoi(count), 5);
    EXPECT_EQ(co_await process.wait(), 0);
  }());
}

TEST(Subprocess, TerminateAndKillGiveNegativeSignalNumbers) {
  asyncio::run([]() -> Task<> {
    Args args{"30"};
    Process sleeper = co_await asyncio::create_subprocess_exec("sleep", args);
    sleeper.terminate();
    EXPECT_EQ(co_await sleeper.wait(), -SIGTERM);
    sleeper.kill();  // exited already: no effect
    Process other = co_await asyncio::create_subprocess_exec("sleep", args);
    other.kill();
    EXPECT_EQ(co_await other.wait(), -SIGKILL);
    Process third = co_await asyncio::create_subprocess_exec("sleep", args);
    third.send_signal(SIGINT);
    EXPECT_EQ(co_await third.wait(), -SIGINT);
  }());
}

TEST(Subprocess, CwdAndEnvironment) {
  asyncio::run([]() -> Task<> {
    Args args{"-c", "pwd; echo $SPINDLE_TEST_VALUE"};
    asyncio::SubprocessOptions options{.out = subprocess::PIPE, .cwd = "/tmp"};
    options.env = Args{"SPINDLE_TEST_VALUE=42"};
    Process process = co_await asyncio::create_subprocess_exec("/bin/sh", args, options);
    auto [out, err] = co_await process.communicate();
    EXPECT_EQ(out, "/tmp\n42\n");
  }());
}

TEST(Subprocess, MissingProgramIsENOENTNamingIt) {
  asyncio::run([]() -> Task<> {
    try {
      co_await asyncio::create_subprocess_exec("spindle-no-such-program");
      ADD_FAILURE() << "expected ENOENT";
    } catch (const std::system_error& error) {
      EXPECT_EQ(error.code().value(), ENOENT);
      EXPECT_NE(std::string(error.what()).find("spindle-no-such-program"), std::string::npos);
    }
  }());
}

TEST(Subprocess, MisuseThrowsLogicErrors) {
  asyncio::run([]() -> Task<> {
    Process process = co_await asyncio::create_subprocess_exec("true");
    EXPECT_THROW(process.in(), std::logic_error);
    EXPECT_THROW(process.out(), std::logic_error);
    EXPECT_THROW(co_await process.communicate("input"), std::logic_error);
    EXPECT_EQ(co_await process.wait(), 0);
    Args args{};
    EXPECT_THROW(
        co_await asyncio::create_subprocess_exec("true", args, {.out = subprocess::STDOUT}),
        std::invalid_argument);
  }());
}

TEST(Subprocess, ChildExitingBeforeReadingStdinIsNotAnError) {
  asyncio::run([]() -> Task<> {
    Args args{};
    Process process = co_await asyncio::create_subprocess_exec(
        "true", args, {.in = subprocess::PIPE, .out = subprocess::PIPE});
    auto [out, err] = co_await process.communicate(std::string(4 * 1024 * 1024, 'x'));
    EXPECT_EQ(out, "");
    EXPECT_EQ(process.returncode(), 0);
  }());
}

TEST(Subprocess, CancelledWaitAndDroppedProcessKillTheChild) {
  asyncio::run([]() -> Task<> {
    Args args{"30"};
    Process process =
        co_await asyncio::create_subprocess_exec("sleep", args, {.out = subprocess::PIPE});
    auto waiting = asyncio::create_task(process.wait());
    co_await asyncio::sleep(0ms);
    waiting.cancel();
    EXPECT_THROW(co_await waiting, asyncio::CancelledError);
    EXPECT_THROW(co_await asyncio::wait_for(process.communicate(), 10ms), asyncio::TimeoutError);
    EXPECT_FALSE(process.returncode().has_value());
    // Dropping the process kills and reaps it: the test ends at once, not after 30 s.
  }());
}

TEST(Subprocess, LoopClosedWhileATaskWaitsForAChild) {
  asyncio::EventLoop loop;
  int reports = 0;
  loop.set_exception_handler(
      [&](asyncio::EventLoop&, const asyncio::ExceptionContext&) { ++reports; });
  loop.run_until_complete([]() -> Task<> {
    auto waiter = [](Process process) -> Task<> { co_await process.communicate(); };
    Args args{"30"};
    Process process =
        co_await asyncio::create_subprocess_exec("sleep", args, {.out = subprocess::PIPE});
    (void)asyncio::create_task(waiter(std::move(process)));
    co_await asyncio::sleep(1ms);
  }());
  loop.close();
  EXPECT_GE(reports, 1);
}

}  // namespace
