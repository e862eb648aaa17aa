// ProcessPoolExecutor: results, exceptions, initializers, recycling workers, and workers that
// die mid-call (CPython's test_concurrent_futures/test_process_pool.py is the list).
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "spindle/multiprocessing.hpp"
#include "spindle/threading.hpp"
#include "support/sanitizers.hpp"

namespace mp = spindle::multiprocessing;
using namespace std::chrono_literals;

namespace {

int square(int x) {
  return x * x;
}
// Starts a process of its own and returns its exit code.
int start_a_child_process() {
  mp::Process child(square, 3);
  child.start();
  child.join();
  return child.exitcode().value_or(-1000);
}

int get_pid() {
  return static_cast<int>(::getpid());
}
std::string greet(const std::string& who, int times) {
  std::string out;
  for (int i = 0; i < times; ++i)
    out += "hello " + who + ";";
  return out;
}
void throw_invalid(int) {
  throw std::invalid_argument("bad input");
}
struct OddError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
int throw_odd() {
  throw OddError("odd");
}

int initialized_value = 0;
void set_initialized(int value) {
  initialized_value = value;
}
int get_initialized() {
  return initialized_value;
}
void failing_initializer() {
  throw std::runtime_error("cannot initialise");
}

void abort_now() {
  std::abort();
}
void segfault_now() {
  ::raise(SIGSEGV);
}
int report_pid_then_block(mp::Connection<int> connection) {
  connection.send(static_cast<int>(::getpid()));
  return connection.recv();  // the test kills us first
}
int block_until_told(mp::Connection<int> connection) {
  return connection.recv();
}

// One function for three roles, so the pool times them as one: 0 runs for 25 ms, 1 waits for
// a value on `connection`, 2 sends one on it.
int long_step(mp::Connection<int> connection, int role) {
  if (role == 0) std::this_thread::sleep_for(25ms);
  if (role == 1) return connection.recv();
  if (role == 2) connection.send(role);
  return role;
}

// As long_step, with 2 ms for role 0: calls short enough to be queued two to a worker.
int short_step(mp::Connection<int> connection, int role) {
  if (role == 0) std::this_thread::sleep_for(2ms);
  if (role == 1) return connection.recv();
  if (role == 2) connection.send(role);
  return role;
}

int sleep_then_return(int x) {
  std::this_thread::sleep_for(2ms);
  return x;
}

// Writes `bytes` into every socket this worker holds but `spared`: its stream to the parent
// goes out of step.
void write_to_own_sockets(const void* bytes, std::size_t size, int spared = -1) {
  for (int fd = 3; fd < 1024; ++fd) {
    struct stat info {};
    if (fd != spared && ::fstat(fd, &info) == 0 && S_ISSOCK(info.st_mode)) {
      [[maybe_unused]] const ssize_t n = ::send(fd, bytes, size, MSG_NOSIGNAL);
    }
  }
}

// Once told (a value on `connection`), writes garbage into the worker's stream to the parent.
int corrupt_own_stream_when_told(mp::Connection<int> connection) {
  const int told = connection.recv();
  const char garbage[] = "garbage garbage garbage garbage";
  write_to_own_sockets(garbage, sizeof garbage, connection.fileno());
  return told;
}

// Announces, in the worker's stream to the parent, a frame of almost 1 TiB (which it never
// sends): a corrupt length, more than any machine running these tests could hold.
constexpr std::uint64_t impossible_frame_length = (std::uint64_t{1} << 40) - 1;
int announce_impossible_frame() {
  char header[mp::detail::frame_header_size] = {};
  const std::uint32_t magic = mp::detail::frame_magic;
  std::memcpy(header, &magic, sizeof magic);
  std::memcpy(header + 8, &impossible_frame_length, sizeof impossible_frame_length);
  write_to_own_sockets(header, sizeof header);
  return 0;
}
bool machine_holds_impossible_frame() {
  struct sysinfo info {};
  return ::sysinfo(&info) == 0 &&
         (std::uint64_t{info.totalram} + info.totalswap) * info.mem_unit >= impossible_frame_length;
}

// One function in several roles, so that the pool times all its calls as one: 0 returns at
// once, 1 returns the value it is told, 2 aborts the worker once told, 3 runs for 150 ms,
// 4 writes garbage into the worker's stream once told. `payload` only makes a call large.
int staged(mp::Connection<int> connection, int role, const std::string& payload) {
  switch (role) {
    case 1:
      return connection.recv();
    case 2:
      connection.recv();
      std::abort();
    case 3:
      std::this_thread::sleep_for(150ms);
      return 3;
    case 4:
      return corrupt_own_stream_when_told(std::move(connection));
    default:
      return static_cast<int>(payload.size());
  }
}

// Submits staged(role) to `pool` with a fresh connection; the other end to `other` if given.
spindle::futures::Future<int> submit_staged(mp::ProcessPoolExecutor& pool, int role,
                                            mp::Connection<int>* other = nullptr,
                                            const std::string& payload = {}) {
  auto [mine, theirs] = mp::Pipe<int>();
  if (other != nullptr) *other = std::move(mine);
  return pool.submit(staged, std::move(theirs), role, payload);
}

// More connections than a message may carry descriptors (detail::max_frame_fds).
std::vector<mp::Connection<int>> too_many_connections() {
  std::vector<mp::Connection<int>> ends;
  for (std::size_t i = 0; i <= mp::detail::max_frame_fds; ++i)
    ends.push_back(std::move(mp::Pipe<int>().second));
  return ends;
}
int count_connections(std::vector<mp::Connection<int>> connections) {
  return static_cast<int>(connections.size());
}
void take_connections(std::vector<mp::Connection<int>>) {}

// Sets the start method for a scope, then puts back the one before.
class StartMethodForScope {
 public:
  explicit StartMethodForScope(const char* method) : before_(mp::get_start_method()) {
    mp::set_start_method(method, true);
  }
  ~StartMethodForScope() { mp::set_start_method(before_, true); }
  StartMethodForScope(const StartMethodForScope&) = delete;
  StartMethodForScope& operator=(const StartMethodForScope&) = delete;

 private:
  std::string before_;
};

std::size_t open_descriptors() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    ++count;
  return count;
}

int scheduling_policy() {
  return ::sched_getscheduler(0);
}

}  // namespace

TEST(ProcessPoolExecutor, SubmitRunsInAnotherProcess) {
  mp::ProcessPoolExecutor pool({.max_workers = 2});
  EXPECT_EQ(pool.submit(square, 7).result(), 49);
  EXPECT_NE(pool.submit(get_pid).result(), ::getpid());
  EXPECT_EQ(pool.submit(greet, "ada", 2).result(), "hello ada;hello ada;");
  EXPECT_EQ(pool.submit([](int a, int b) { return a - b; }, 10, 3).result(), 7);
  EXPECT_EQ(pool.max_workers(), 2u);
}

TEST(ProcessPoolExecutor, WorkersRunAsBatchTasksAndTheCallerKeepsItsPolicy) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  EXPECT_EQ(pool.submit(scheduling_policy).result(), SCHED_BATCH);
  EXPECT_EQ(scheduling_policy(), SCHED_OTHER);
}

TEST(ProcessPoolExecutor, ManyCallsAllComplete) {
  mp::ProcessPoolExecutor pool({.max_workers = 2});
  std::vector<spindle::futures::Future<int>> futures;
  for (int i = 0; i < 5000; ++i)
    futures.push_back(pool.submit(square, i));
  long long sum = 0;
  for (auto& future : futures)
    sum += future.result();
  long long expected = 0;
  for (long long i = 0; i < 5000; ++i)
    expected += i * i;
  EXPECT_EQ(sum, expected);
}

// A thread waiting for the pool's only call out may read its result itself, rather than the
// collector thread: results, exceptions and done callbacks are the same either way, and a
// worker that dies under such a wait still breaks the pool.
TEST(ProcessPoolExecutor, WhoeverReadsAResultTheCallerSeesTheSame) {
  mp::ProcessPoolExecutor pool({.max_workers = 2});
  constexpr int rounds = 300;
  std::atomic<int> called{0};
  spindle::threading::Event all_called;
  for (int i = 0; i < rounds; ++i) {
    auto future = pool.submit(square, i);
    future.add_done_callback([&](const spindle::futures::Future<int>&) {
      if (called.fetch_add(1) + 1 == rounds) all_called.set();
    });
    ASSERT_EQ(future.result(), i * i);
  }
  EXPECT_TRUE(all_called.wait(30s));
  EXPECT_EQ(called.load(), rounds);
  EXPECT_THROW(pool.submit(throw_invalid, 1).result(), std::invalid_argument);
  EXPECT_EQ(pool.submit(square, 7).result(), 49);
  EXPECT_THROW(pool.submit(abort_now).result(), mp::BrokenProcessPool);
}

TEST(ProcessPoolExecutor, AResultArrivesWhileTheNextQueuedCallStillRuns) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  EXPECT_EQ(pool.submit(square, 2).result(), 4);
  auto [release_first, first_end] = mp::Pipe<int>();
  auto [release_last, last_end] = mp::Pipe<int>();
  // `quick` and `last` queue up in the worker while `first` runs.
  auto first = pool.submit(block_until_told, std::move(first_end));
  auto quick = pool.submit(square, 7);
  auto last = pool.submit(block_until_told, std::move(last_end));
  release_first.send(1);
  EXPECT_EQ(first.result(30s), 1);
  EXPECT_EQ(quick.result(10s), 49);  // not held back while `last` runs
  EXPECT_FALSE(last.done());
  release_last.send(2);
  EXPECT_EQ(last.result(30s), 2);
}

// Once a function's calls are known to run long, a worker holds one at a time: the third call
// waits in the parent for the first worker free, not behind a call that may run for long (here
// for ever, unless the third call runs).
TEST(ProcessPoolExecutor, CallsKnownToRunLongGoToAWorkerOneAtATime) {
  mp::ProcessPoolExecutor pool({.max_workers = 2});
  auto [unused_mine, unused_theirs] = mp::Pipe<int>();
  EXPECT_EQ(pool.submit(long_step, std::move(unused_theirs), 0).result(30s), 0);
  auto [teller, waiter] = mp::Pipe<int>();
  auto [other_mine, other_theirs] = mp::Pipe<int>();
  auto waiting = pool.submit(long_step, std::move(waiter), 1);
  auto running = pool.submit(long_step, std::move(other_theirs), 0);
  auto telling = pool.submit(long_step, std::move(teller), 2);
  EXPECT_EQ(running.result(30s), 0);
  EXPECT_EQ(telling.result(30s), 2);
  EXPECT_EQ(waiting.result(30s), 2);
}

// The last calls wait for an idle worker rather than queue behind a running call: here the
// last call is the one the first worker's call waits for, so queued behind it, it would
// never run.
TEST(ProcessPoolExecutor, TheLastCallsGoToTheFirstWorkerThatIsFree) {
  mp::ProcessPoolExecutor pool({.max_workers = 2});
  auto [unused_mine, unused_theirs] = mp::Pipe<int>();
  EXPECT_EQ(pool.submit(short_step, std::move(unused_theirs), 0).result(30s), 0);
  auto [teller, first_waiter] = mp::Pipe<int>();
  auto [test_end, second_waiter] = mp::Pipe<int>();
  auto first = pool.submit(short_step, std::move(first_waiter), 1);
  auto second = pool.submit(short_step, std::move(second_waiter), 1);
  auto telling = pool.submit(short_step, std::move(teller), 2);
  test_end.send(5);
  EXPECT_EQ(second.result(30s), 5);
  EXPECT_EQ(telling.result(30s), 2);
  EXPECT_EQ(first.result(30s), 2);
}

// A thread waiting on a call known to run long sleeps at once instead of spinning first; that
// holds as well for calls submitted before the first of them had been timed.
TEST(ProcessPoolExecutor, CallsSubmittedBeforeTheirFunctionWasTimedAreMarkedLongOnceItIs) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  std::vector<spindle::futures::Future<int>> futures;
  for (int i = 0; i < 4; ++i)
    futures.push_back(pool.submit(sleep_then_return, i));
  EXPECT_EQ(futures[0].result(30s), 0);
  for (int i = 1; i < 4; ++i) {
    EXPECT_TRUE(spindle::futures::internal::state_of(futures[i])->long_wait_expected())
        << "call " << i;
  }
  EXPECT_EQ(futures[3].result(30s), 3);
  EXPECT_TRUE(spindle::futures::internal::state_of(pool.submit(sleep_then_return, 4))
                  ->long_wait_expected());
}

TEST(ProcessPoolExecutor, ThroughExecutorReferenceShipsPlainFunctions) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  spindle::futures::Executor& executor = pool;
  EXPECT_EQ(executor.submit(square, 5).result(), 25);
  std::vector<int> inputs{1, 2, 3};
  std::vector<int> results;
  for (int value : executor.map(square, inputs))
    results.push_back(value);
  EXPECT_EQ(results, (std::vector<int>{1, 4, 9}));
}

TEST(ProcessPoolExecutor, ThroughExecutorReferenceACapturingLambdaIsInvalidArgument) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  spindle::futures::Executor& executor = pool;
  int captured = 3;
  EXPECT_THROW(executor.submit([captured] { return captured; }), std::invalid_argument);
}

TEST(ProcessPoolExecutor, ExceptionsKeepTheirTypeOrBecomeRemoteError) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  EXPECT_THROW(pool.submit(throw_invalid, 1).result(), std::invalid_argument);
  try {
    pool.submit(throw_odd).result();
    FAIL() << "no exception";
  } catch (const spindle::RemoteError& e) {
    EXPECT_STREQ(e.what(), "odd");
    EXPECT_NE(e.type_name().find("OddError"), std::string::npos);
  }
  EXPECT_EQ(pool.submit(square, 3).result(), 9);  // the worker lives on
}

TEST(ProcessPoolExecutor, InitializerRunsWithItsArgumentsInEveryWorker) {
  mp::ProcessPoolExecutor pool({.max_workers = 2, .initializer = {set_initialized, 17}});
  EXPECT_EQ(pool.submit(get_initialized).result(), 17);
  EXPECT_EQ(initialized_value, 0);  // not in the parent
}

TEST(ProcessPoolExecutor, FailingInitializerBreaksThePool) {
  mp::ProcessPoolExecutor pool({.max_workers = 1, .initializer = failing_initializer});
  auto future = pool.submit(square, 2);
  try {
    future.result(30s);
    FAIL() << "no exception";
  } catch (const mp::BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("cannot initialise"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pool.submit(square, 2), mp::BrokenProcessPool);
}

TEST(ProcessPoolExecutor, MaxTasksPerChildStartsFreshWorkers) {
  mp::ProcessPoolExecutor pool({.max_workers = 1, .max_tasks_per_child = 1});
  std::set<int> pids;
  for (int i = 0; i < 3; ++i)
    pids.insert(pool.submit(get_pid).result());
  EXPECT_EQ(pids.size(), 3u);
}

TEST(ProcessPoolExecutor, InvalidOptions) {
  EXPECT_THROW(mp::ProcessPoolExecutor({.max_workers = 0}), std::invalid_argument);
  EXPECT_THROW(mp::ProcessPoolExecutor({.max_tasks_per_child = 0}), std::invalid_argument);
}

TEST(ProcessPoolExecutor, NegativeCountsAreInvalidArgumentNotHugeOnes) {
  try {
    mp::ProcessPoolExecutor pool({.max_workers = -1});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "max_workers must be greater than 0");
  }
  EXPECT_THROW(mp::ProcessPoolExecutor({.max_tasks_per_child = -1}), std::invalid_argument);
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  EXPECT_THROW(pool.map({.chunksize = -1}, square, std::vector<int>{1, 2}), std::invalid_argument);
}

TEST(ProcessPoolExecutor, MaxTasksPerChildWithTheForkStartMethodIsInvalidArgument) {
  {
    const StartMethodForScope fork("fork");
    try {
      mp::ProcessPoolExecutor pool({.max_tasks_per_child = 1});
      FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("'fork'"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(mp::ProcessPoolExecutor({.max_workers = 1}));
  }
  const StartMethodForScope spawn("spawn");
  EXPECT_NO_THROW(mp::ProcessPoolExecutor({.max_tasks_per_child = 1}));
}

// The initializer is sent to every worker; one that cannot be sent breaks the pool, and
// leaves no worker process (nor its socket) behind.
TEST(ProcessPoolExecutor, WorkersThatCannotStartLeaveNoDescriptorBehind) {
  const std::size_t before = open_descriptors();
  {
    mp::ProcessPoolExecutor pool(
        {.max_workers = 2, .initializer = {take_connections, too_many_connections()}});
    EXPECT_THROW(pool.submit(square, 2), mp::BrokenProcessPool);
  }
  EXPECT_EQ(open_descriptors(), before);
}

TEST(ProcessPoolExecutor, SubmitAfterShutdownIsLogicError) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  EXPECT_EQ(pool.submit(square, 2).result(), 4);
  pool.shutdown();
  EXPECT_THROW(pool.submit(square, 2), std::logic_error);
  pool.shutdown();  // again: nothing
}

// The calls a dead worker had queued behind its running call (replace_worker) have started:
// they wait in the pool to run again, and shutdown(cancel_futures=true) must let them run.
// They wait there only while the pool hands a worker one call at a time, which it does for
// a function known to run 20 ms or more: here the pool learns it while they are queued.
TEST(ProcessPoolExecutor, ShutdownWithCancelFuturesRunsTheCallsADeadWorkerHadQueued) {
  mp::ProcessPoolExecutor pool({.max_workers = 1, .on_worker_crash = mp::replace_worker});
  EXPECT_EQ(submit_staged(pool, 0).result(30s), 0);  // quick: the worker may hold many calls
  auto long_call = submit_staged(pool, 3);
  mp::Connection<int> abort_teller;
  auto crashing = submit_staged(pool, 2, &abort_teller);
  std::vector<spindle::futures::Future<int>> queued;
  for (int i = 0; i < 6; ++i)
    queued.push_back(
        submit_staged(pool, 0, nullptr, std::string(static_cast<std::size_t>(i), 'q')));
  EXPECT_EQ(long_call.result(30s), 3);  // from now on, one call at a time to a worker
  abort_teller.send(1);
  EXPECT_THROW(crashing.result(30s), mp::BrokenProcessPool);
  pool.shutdown(true, true);
  // Each call ran, or was cancelled if it never reached the worker (a slow build times the
  // quick calls too long for the worker to hold them all); none is left hanging.
  std::size_t ran = 0;
  for (int i = 0; i < 6; ++i) {
    const auto& future = queued[static_cast<std::size_t>(i)];
    ASSERT_TRUE(future.done()) << "call " << i;
    if (future.cancelled()) continue;
    EXPECT_EQ(future.result(), i);
    ++ran;
  }
  EXPECT_GE(ran, 1u);
}

TEST(ProcessPoolExecutor, ShutdownWithCancelFuturesCancelsQueuedCalls) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [keep, other] = mp::Pipe<int>();
  auto blocker = pool.submit(block_until_told, std::move(other));
  std::vector<spindle::futures::Future<int>> queued;
  // Longer calls are handed out one at a time: make the pool see a slow call first.
  for (int i = 0; i < 200; ++i)
    queued.push_back(pool.submit(square, i));
  keep.send(5);
  pool.shutdown(true, true);
  EXPECT_EQ(blocker.result(), 5);
  for (auto& future : queued)
    EXPECT_TRUE(future.done());
}

TEST(ProcessPoolExecutor, DoneCallbacksRunWithTheResult) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  std::atomic<int> seen{0};
  spindle::threading::Event done;
  auto future = pool.submit(square, 6);
  future.add_done_callback([&](const spindle::futures::Future<int>& f) {
    seen = f.result();
    done.set();
  });
  ASSERT_TRUE(done.wait(30s));
  EXPECT_EQ(seen.load(), 36);
}

TEST(ProcessPoolExecutor, AbortingWorkerBreaksThePoolQuickly) {
  mp::ProcessPoolExecutor pool({.max_workers = 2});
  EXPECT_EQ(pool.submit(square, 2).result(), 4);
  auto crash = pool.submit(abort_now);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(crash.result(30s), mp::BrokenProcessPool);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_THROW(pool.submit(square, 2), mp::BrokenProcessPool);
}

TEST(ProcessPoolExecutor, SegfaultingWorkerFailsPendingFutures) {
#if SPINDLE_TEST_SANITIZED
  GTEST_SKIP() << "the sanitizer turns the worker's SIGSEGV into a report and an exit; "
                  "AbortingWorkerBreaksThePoolQuickly covers a crash under it";
#endif
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [keep, other] = mp::Pipe<int>();
  auto crash = pool.submit(segfault_now);
  auto later = pool.submit(square, 3);
  EXPECT_THROW(crash.result(30s), mp::BrokenProcessPool);
  EXPECT_THROW(later.result(30s), mp::BrokenProcessPool);
}

TEST(ProcessPoolExecutor, WorkerKilledFromOutsideBreaksThePool) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [mine, theirs] = mp::Pipe<int>();
  auto future = pool.submit(report_pid_then_block, std::move(theirs));
  const int worker = mine.recv();
  ::kill(worker, SIGKILL);
  try {
    future.result(30s);
    FAIL() << "no exception";
  } catch (const mp::BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("signal 9"), std::string::npos) << e.what();
  }
}

TEST(ProcessPoolExecutor, ReplaceWorkerFailsOnlyTheRunningCall) {
  mp::ProcessPoolExecutor pool({.max_workers = 1, .on_worker_crash = mp::replace_worker});
  auto crash = pool.submit(abort_now);
  auto after = pool.submit(square, 4);
  EXPECT_THROW(crash.result(30s), mp::BrokenProcessPool);
  EXPECT_EQ(after.result(30s), 16);
  EXPECT_EQ(pool.submit(square, 5).result(), 25);
}

// Under break_pool, a worker whose stream goes out of step breaks the pool: every call fails
// with BrokenProcessPool naming the cause, the one queued behind (whose message went to the
// worker) too.
TEST(ProcessPoolExecutor, ACorruptFrameBreaksThePoolNamingTheCause) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [teller, told] = mp::Pipe<int>();
  // The futures outlive the handlers: the collector thread must not drop the last reference
  // to an exception while it is read here (libstdc++ counts those references with atomics
  // ThreadSanitizer cannot see, so it would report a race that is not there).
  auto corrupting = pool.submit(corrupt_own_stream_when_told, std::move(told));
  auto behind = pool.submit(square, 5);
  teller.send(1);
  for (auto* future : {&corrupting, &behind}) {
    try {
      future->result(30s);
      FAIL() << "no exception";
    } catch (const mp::BrokenProcessPool& e) {
      EXPECT_NE(std::string(e.what()).find("corrupt frame"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(pool.submit(square, 5), mp::BrokenProcessPool);
}

// Under replace_worker, the call whose result was corrupt fails with CorruptMessage. The worker
// ran on past it, so a call it had received may have run: that one fails too; a call it never
// received (still waiting to be written, behind a large one) runs again on a fresh worker.
TEST(ProcessPoolExecutor, ACorruptFrameUnderReplaceWorkerRerunsOnlyTheCallsNeverReceived) {
  mp::ProcessPoolExecutor pool({.max_workers = 1, .on_worker_crash = mp::replace_worker});
  EXPECT_EQ(submit_staged(pool, 0).result(30s), 0);  // quick: the worker may hold many calls
  mp::Connection<int> teller;
  auto corrupting = submit_staged(pool, 4, &teller);
  // More than the socket holds: written in part while the worker waits to be told.
  auto received = submit_staged(pool, 0, nullptr, std::string(std::size_t{16} << 20, 'r'));
  auto never_received = submit_staged(pool, 0, nullptr, "never");
  teller.send(1);
  try {
    corrupting.result(30s);
    FAIL() << "no exception";
  } catch (const mp::detail::CorruptMessage& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt frame"), std::string::npos) << e.what();
  }
  try {
    received.result(30s);
    FAIL() << "no exception";
  } catch (const mp::BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("may have run"), std::string::npos) << e.what();
  }
  EXPECT_EQ(never_received.result(30s), 5);
  EXPECT_EQ(pool.submit(square, 5).result(30s), 25);
}

// A worker announcing a frame longer than the machine could hold: its calls fail (the pool
// breaks, by default) instead of the parent trying to allocate it.
TEST(ProcessPoolExecutor, AnImpossibleFrameLengthFailsTheWorkersCalls) {
  if (machine_holds_impossible_frame()) GTEST_SKIP() << "this machine could hold such a frame";
  {
    mp::ProcessPoolExecutor pool({.max_workers = 1});
    auto future = pool.submit(announce_impossible_frame);
    try {
      future.result(30s);
      FAIL() << "no exception";
    } catch (const mp::BrokenProcessPool& e) {
      EXPECT_NE(std::string(e.what()).find("impossible length"), std::string::npos) << e.what();
    }
  }
  mp::ProcessPoolExecutor pool({.max_workers = 1, .on_worker_crash = mp::replace_worker});
  auto future = pool.submit(announce_impossible_frame);
  EXPECT_THROW(future.result(30s), mp::detail::CorruptMessage);
  EXPECT_EQ(pool.submit(square, 5).result(30s), 25);
}

// A call whose future was completed by hand (through a copy) before a worker was free for it
// is not run, as the thread pool does; the pool goes on.
TEST(ProcessPoolExecutor, ACallCompletedByHandBeforeItStartsIsNotRun) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [teller, told] = mp::Pipe<int>();
  auto blocking = pool.submit(block_until_told, std::move(told));
  auto queued = pool.submit(square, 3);     // in the worker, behind `blocking`
  auto completed = pool.submit(square, 4);  // in the pool: a worker holds two untimed calls
  completed.set_result(7);
  teller.send(1);
  EXPECT_EQ(blocking.result(30s), 1);
  EXPECT_EQ(queued.result(30s), 9);
  EXPECT_EQ(completed.result(), 7);
  EXPECT_EQ(pool.submit(square, 5).result(30s), 25);
}

// A call that cannot be sent (more descriptors than a message carries) fails alone, whether it
// is sent at once or later by the collector thread; the pool goes on.
TEST(ProcessPoolExecutor, ACallThatCannotBeSentFailsAloneAndThePoolGoesOn) {
  for (const mp::OnWorkerCrash mode : {mp::break_pool, mp::replace_worker}) {
    mp::ProcessPoolExecutor pool({.max_workers = 1, .on_worker_crash = mode});
    auto at_once = pool.submit(count_connections, too_many_connections());
    try {
      at_once.result(30s);
      FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("file descriptors"), std::string::npos) << e.what();
    }
    auto [teller, told] = mp::Pipe<int>();
    auto blocking = pool.submit(block_until_told, std::move(told));
    auto queued = pool.submit(square, 3);
    auto later = pool.submit(count_connections, too_many_connections());
    teller.send(1);
    EXPECT_EQ(blocking.result(30s), 1);
    EXPECT_EQ(queued.result(30s), 9);
    EXPECT_THROW(later.result(30s), std::invalid_argument);
    EXPECT_EQ(pool.submit(square, 5).result(30s), 25);
  }
}

// The last reference to a pool dropped in a done callback: its destructor runs on the
// collector thread, which cannot wait for itself. It does not wait; the calls still run.
TEST(ProcessPoolExecutor, DestroyedInItsOwnDoneCallbackItDoesNotWaitForItself) {
  auto pool = std::make_shared<mp::ProcessPoolExecutor>(mp::ProcessPoolOptions{.max_workers = 1});
  auto [teller, told] = mp::Pipe<int>();
  auto first = pool->submit(block_until_told, std::move(told));
  auto second = pool->submit(square, 6);
  spindle::threading::Event destroyed;
  first.add_done_callback([pool, &destroyed](const spindle::futures::Future<int>&) mutable {
    pool.reset();
    destroyed.set();
  });
  pool.reset();  // the callback holds the last reference
  teller.send(1);
  ASSERT_TRUE(destroyed.wait(30s));
  EXPECT_EQ(first.result(), 1);
  EXPECT_EQ(second.result(30s), 36);
}

TEST(ProcessPoolExecutor, ShutdownWaitingInItsOwnDoneCallbackIsLogicError) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [teller, told] = mp::Pipe<int>();
  auto first = pool.submit(block_until_told, std::move(told));
  std::exception_ptr error;
  spindle::threading::Event called;
  first.add_done_callback([&](const spindle::futures::Future<int>&) {
    try {
      pool.shutdown(true);
    } catch (...) {
      error = std::current_exception();
    }
    called.set();
  });
  teller.send(1);
  ASSERT_TRUE(called.wait(30s));
  EXPECT_THROW(std::rethrow_exception(error), std::logic_error);
  EXPECT_EQ(pool.submit(square, 4).result(30s), 16);  // nothing was shut down
}

// Done callbacks run on the collector thread, the only one that delivers the pool's
// results; a callback that waits for one goes on collecting meanwhile (Python's would wait
// for ever).
TEST(ProcessPoolExecutor, ADoneCallbackMayWaitForAResultOfTheSamePool) {
  mp::ProcessPoolExecutor pool({.max_workers = 2});
  auto [teller, told] = mp::Pipe<int>();
  // Not a structured binding: the callback captures it (clang 14 cannot).
  auto other_pipe = mp::Pipe<int>();
  auto& other_teller = other_pipe.first;
  auto& other_told = other_pipe.second;
  auto first = pool.submit(block_until_told, std::move(told));
  auto second = pool.submit(block_until_told, std::move(other_told));
  std::vector<int> seen;
  std::exception_ptr error;
  spindle::threading::Event called;
  first.add_done_callback([&](const spindle::futures::Future<int>&) {
    try {
      other_teller.send(2);  // second finishes only now, while this callback waits for it
      seen.push_back(second.result());
      seen.push_back(pool.submit(square, 3).result());
      std::vector<spindle::futures::Future<int>> more{pool.submit(square, 4),
                                                      pool.submit(square, 5)};
      int sum = 0;
      for (auto future : spindle::futures::as_completed(more))
        sum += future.result();
      seen.push_back(sum);
      for (int x : pool.map(square, std::vector<int>{6, 7}))
        seen.push_back(x);
      // A future that another thread completes is seen too.
      spindle::futures::Future<int> outside;
      std::thread completer([&] { outside.set_result(8); });
      seen.push_back(outside.result());
      completer.join();
    } catch (...) {
      error = std::current_exception();
    }
    called.set();
  });
  teller.send(1);
  ASSERT_TRUE(called.wait(30s));
  if (error) std::rethrow_exception(error);
  EXPECT_EQ(seen, (std::vector<int>{2, 9, 16 + 25, 36, 49, 8}));
}

// Results read together are delivered one by one: a callback waiting for a result that came
// in the same read sees it delivered first. Each callback here waits for the next result.
TEST(ProcessPoolExecutor, DoneCallbacksMayWaitForResultsThatCameWithTheirOwn) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [teller, told] = mp::Pipe<int>();
  std::vector<spindle::futures::Future<int>> futures{
      pool.submit(block_until_told, std::move(told))};
  for (int i = 1; i <= 20; ++i)
    futures.push_back(pool.submit(square, i));
  std::atomic<int> waited{0};
  for (std::size_t i = 0; i + 1 < futures.size(); ++i) {
    futures[i].add_done_callback([&, i](const spindle::futures::Future<int>&) {
      if (futures[i + 1].result() == static_cast<int>((i + 1) * (i + 1))) ++waited;
    });
  }
  teller.send(0);
  EXPECT_EQ(futures.back().result(30s), 400);
  pool.shutdown(true);  // every callback has run
  EXPECT_EQ(waited.load(), 20);
}

TEST(ProcessPoolExecutor, ADoneCallbackWaitingForAResultThatDoesNotComeTimesOut) {
  mp::ProcessPoolExecutor pool({.max_workers = 2});
  auto [teller, told] = mp::Pipe<int>();
  auto [other_teller, other_told] = mp::Pipe<int>();
  auto first = pool.submit(block_until_told, std::move(told));
  auto second = pool.submit(block_until_told, std::move(other_told));
  std::exception_ptr error;
  spindle::threading::Event called;
  first.add_done_callback([&](const spindle::futures::Future<int>&) {
    try {
      second.result(50ms);
    } catch (...) {
      error = std::current_exception();
    }
    called.set();
  });
  teller.send(1);
  ASSERT_TRUE(called.wait(30s));
  EXPECT_THROW(std::rethrow_exception(error), spindle::TimeoutError);
  other_teller.send(2);
  EXPECT_EQ(second.result(30s), 2);
}

// Each waiting callback nests a frame on the collector thread; past 64 a wait is refused.
TEST(ProcessPoolExecutor, DoneCallbacksWaitingNestedTooDeepAreRuntimeError) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [teller, told] = mp::Pipe<int>();
  std::vector<spindle::futures::Future<int>> futures{
      pool.submit(block_until_told, std::move(told))};
  for (int i = 1; i <= 70; ++i)
    futures.push_back(pool.submit(square, i));
  std::vector<std::string> refused;  // only the collector thread touches it
  for (std::size_t i = 0; i + 1 < futures.size(); ++i) {
    futures[i].add_done_callback([&, i](const spindle::futures::Future<int>&) {
      try {
        futures[i + 1].result();
      } catch (const std::runtime_error& error) {
        refused.push_back(std::to_string(i) + ": " + error.what());
      }
    });
  }
  teller.send(0);
  EXPECT_EQ(futures.back().result(30s), 4900);
  pool.shutdown(true);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0],
            "64: more than 64 done callbacks of a ProcessPoolExecutor wait nested in each other "
            "on its collector thread");
}

TEST(ProcessPoolExecutor, MapSendsChunksAndKeepsInputOrder) {
  mp::ProcessPoolExecutor pool({.max_workers = 2});
  std::vector<int> inputs(1000);
  for (int i = 0; i < 1000; ++i)
    inputs[i] = i;
  std::vector<int> results;
  for (int value : pool.map(square, inputs))
    results.push_back(value);
  ASSERT_EQ(results.size(), 1000u);
  for (int i = 0; i < 1000; ++i)
    EXPECT_EQ(results[i], i * i);
  std::vector<int> small;
  for (int value : pool.map({.chunksize = 3}, square, std::vector<int>{1, 2, 3, 4})) {
    small.push_back(value);
  }
  EXPECT_EQ(small, (std::vector<int>{1, 4, 9, 16}));
  EXPECT_THROW(pool.map({.chunksize = 0}, square, inputs), std::invalid_argument);
}

TEST(ProcessPoolExecutor, MapRethrowsWhenTheElementIsReached) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto results = pool.map({.chunksize = 1}, throw_invalid, std::vector<int>{1});
  EXPECT_THROW(results.next(), std::invalid_argument);
}

TEST(ProcessPoolExecutor, MapTimesOut) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [keep, other] = mp::Pipe<int>();
  auto blocker = pool.submit(block_until_told, std::move(other));
  auto results = pool.map({.timeout = std::chrono::milliseconds(20)}, square, std::vector<int>{1});
  EXPECT_THROW(results.next(), spindle::TimeoutError);
  keep.send(1);
  EXPECT_EQ(blocker.result(), 1);
}

// As Python's: once the timeout passed, the iteration is over (no result is skipped silently:
// there are none after it) and the chunks not started are cancelled.
TEST(ProcessPoolExecutor, MapTimeoutEndsTheIteration) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [keep, other] = mp::Pipe<int>();
  auto blocker = pool.submit(block_until_told, std::move(other));
  auto results = pool.map({.timeout = std::chrono::milliseconds(20), .chunksize = 1}, square,
                          std::vector<int>{1, 2, 3});
  EXPECT_THROW(results.next(), spindle::TimeoutError);
  keep.send(1);
  EXPECT_EQ(blocker.result(30s), 1);
  pool.shutdown();  // whatever was not cancelled has run
  EXPECT_THROW(results.next(), std::out_of_range);
}

// next(timeout) on a map with a timeout of its own: the earlier deadline decides. Past the
// map's, the iteration is over; past next's alone, it goes on.
TEST(ProcessPoolExecutor, MapNextWithATimeoutHonoursTheMapsOwnDeadline) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [keep, other] = mp::Pipe<int>();
  auto blocker = pool.submit(block_until_told, std::move(other));
  auto patient = pool.map({.timeout = std::chrono::seconds(60), .chunksize = 1}, square,
                          std::vector<int>{1, 2});
  auto hasty = pool.map({.timeout = std::chrono::milliseconds(20), .chunksize = 1}, square,
                        std::vector<int>{3, 4});
  EXPECT_THROW(patient.next(10ms), spindle::TimeoutError);  // next's own: goes on
  EXPECT_THROW(hasty.next(30s), spindle::TimeoutError);     // the map's: over
  EXPECT_THROW(hasty.next(30s), std::out_of_range);
  keep.send(1);
  EXPECT_EQ(blocker.result(30s), 1);
  EXPECT_EQ(patient.next(30s), 1);
  EXPECT_EQ(patient.next(30s), 4);
}

// A chunk cancelled by shutdown(cancel_futures=true) ends next(timeout) as it ends next():
// CancelledError, and the iteration moves on past it.
TEST(ProcessPoolExecutor, MapNextWithATimeoutMovesPastACancelledChunk) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto [keep, other] = mp::Pipe<int>();
  auto blocker = pool.submit(block_until_told, std::move(other));
  auto results = pool.map({.chunksize = 1}, square, std::vector<int>{1, 2, 3, 4});
  pool.shutdown(false, true);  // the worker holds at most the first chunk: the rest go
  keep.send(1);
  EXPECT_EQ(blocker.result(30s), 1);
  int cancelled = 0;
  for (int i = 0; i < 4; ++i) {
    try {
      EXPECT_EQ(results.next(30s), (i + 1) * (i + 1));
    } catch (const spindle::futures::CancelledError&) {
      ++cancelled;
    }
  }
  EXPECT_GE(cancelled, 1);
  EXPECT_THROW(results.next(30s), std::out_of_range);
}

TEST(ProcessPoolExecutor, ItsCallsMayStartProcessesOfTheirOwn) {
  // As in Python: an executor's workers are not daemons (a Pool's are).
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  EXPECT_EQ(pool.submit(start_a_child_process).result(), 0);
}
