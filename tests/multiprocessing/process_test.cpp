// Process: starting, joining, exit codes, signals, names, daemons, targets in shared
// libraries, and children that do not outlive their parent.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <string>
#include <vector>

#include "spindle/multiprocessing.hpp"
#include "support/sanitizers.hpp"
#include "test_library.hpp"

namespace mp = spindle::multiprocessing;
using namespace std::chrono_literals;

namespace {

void report_pid_and_name(mp::Connection<std::string> out) {
  out.send(std::to_string(::getpid()) + " " + mp::current_process().name());
}

void add_and_send(int a, int b, mp::Connection<int> out) {
  out.send(a + b);
}

void wait_for_word(mp::Connection<int> in) {
  in.recv();
}

void throw_in_child() {
  throw std::runtime_error("child failed");
}

void echo(mp::Connection<std::vector<char>> connection) {
  for (;;) {
    std::vector<char> message;
    try {
      message = connection.recv();
    } catch (const spindle::EOFError&) {
      return;
    }
    connection.send(message);
  }
}

void try_to_start_grandchild(mp::Connection<std::string> out) {
  try {
    mp::Process child(throw_in_child);
    child.start();
    out.send("started");
  } catch (const std::logic_error& e) {
    out.send(e.what());
  }
}

// Blocks until a signal ends the process. Nothing it holds ends when its parent dies, so only
// the library can end it then.
[[noreturn]] void block_until_killed() {
  for (;;)
    ::pause();
}

// Reports its pid once it runs (so its parent-death signal is armed) and blocks until killed.
int report_pid_and_block(mp::Connection<int> out) {
  out.send(static_cast<int>(::getpid()));
  block_until_killed();
}

void report_pid_twice_and_block(mp::Connection<int> out, mp::Connection<int> parent) {
  out.send(static_cast<int>(::getpid()));  // first: the parent may end once it hears
  parent.send(static_cast<int>(::getpid()));
  block_until_killed();
}

// Starts a child that reports its pid and blocks until killed; once it has reported, blocks
// too (or returns, when `leave`).
void start_blocked_grandchild(mp::Connection<int> out, bool daemon_grandchild, bool leave) {
  auto [reported, report] = mp::Pipe<int>(false);
  mp::Process grandchild({.daemon = daemon_grandchild}, report_pid_twice_and_block, std::move(out),
                         std::move(report));
  grandchild.start();
  reported.recv();
  if (!leave) block_until_killed();
}

// Starts a process pool whose worker reports its pid and blocks; then blocks itself.
void start_blocked_pool_worker(mp::Connection<int> out) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  auto future = pool.submit(report_pid_and_block, std::move(out));
  block_until_killed();
}

// Waits until process `pid` (any process, not only a child) has ended; kills it when it has
// not, so a failing test leaves no process behind.
bool ended_within(int pid, std::chrono::milliseconds timeout) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  const auto deadline = spindle::detail::Clock::now() + timeout;
  const bool ended = mp::detail::wait_readable(fd, &deadline);
  if (!ended) ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
  ::close(fd);
  return ended;
}

// How many of this process's sockets a program it starts would inherit.
int inheritable_sockets() {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    const auto target = std::filesystem::read_symlink(entry.path(), error);
    if (error || target.string().rfind("socket:", 0) != 0) continue;
    const int flags = ::fcntl(std::stoi(entry.path().filename().string()), F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0) ++count;
  }
  return count;
}

int square(int x) {
  return x * x;
}

mp::Process* forked_sibling = nullptr;

// In a forked child: starts a (forked) child of its own and a pool of its own.
void use_children_of_its_own(mp::Connection<int> out) {
  out.send(static_cast<int>(mp::active_children().size()));
  try {
    forked_sibling->join();  // the parent's Process object, copied by fork
    out.send(-1);
  } catch (const std::logic_error&) {
    out.send(1);
  }
  auto [in, back] = mp::Pipe<int>(false);
  mp::Process grandchild(add_and_send, 40, 2, std::move(back));
  grandchild.start();
  out.send(in.recv());
  grandchild.join();
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  out.send(pool.submit(square, 7).result());
}

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr std::uint32_t kAuditArch = 0;  // no filter: the test is skipped
#endif

// Makes pidfd_open and pidfd_send_signal fail with ENOSYS in this process and every process
// it starts, as on a kernel before 5.3. False when the filter cannot be installed.
bool refuse_pidfds() {
  if (kAuditArch == 0) return false;
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_send_signal, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
  };
  const sock_fprog program{static_cast<unsigned short>(std::size(filter)), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

// In a child without pidfds: starts children of its own and reports what join, is_alive,
// exitcode, terminate and kill said of them, or why it could not.
void use_children_without_pidfds(mp::Connection<std::string> out) {
  if (!refuse_pidfds()) return out.send("skip: cannot install a seccomp filter here");
  if (::syscall(SYS_pidfd_open, ::getpid(), 0) >= 0 || errno != ENOSYS) {
    return out.send("pidfd_open still works under the filter");
  }
  std::string seen;
  auto say = [&](const std::string& what, auto value) {
    seen += what + "=" + std::to_string(value) + " ";
  };
  auto [keep, other] = mp::Pipe<int>();
  mp::Process waiting(wait_for_word, std::move(other));
  waiting.start();
  say("alive", waiting.is_alive());
  say("join(50ms)", waiting.join(50ms));
  keep.send(1);
  say("join(30s)", waiting.join(30s));
  say("exitcode", waiting.exitcode().value_or(99));
  say("alive", waiting.is_alive());

  mp::Process failing(throw_in_child);
  failing.start();
  failing.join();  // no timeout: polls until the child has ended
  say("exitcode", failing.exitcode().value_or(99));

  auto [keep1, other1] = mp::Pipe<int>();
  auto [keep2, other2] = mp::Pipe<int>();
  mp::Process terminated(wait_for_word, std::move(other1));
  mp::Process killed(wait_for_word, std::move(other2));
  terminated.start();
  killed.start();
  terminated.terminate();
  killed.kill();
  say("terminated", terminated.join(30s) ? terminated.exitcode().value_or(99) : 99);
  say("killed", killed.join(30s) ? killed.exitcode().value_or(99) : 99);
  out.send(seen);
}

}  // namespace

TEST(Process, RunsTheTargetWithItsArgumentsInAnotherProcess) {
  auto [in, out] = mp::Pipe<int>(false);
  mp::Process process(add_and_send, 2, 3, std::move(out));
  process.start();
  EXPECT_EQ(in.recv(), 5);
  process.join();
  EXPECT_EQ(process.exitcode(), 0);
}

TEST(Process, ChildHasItsOwnPidAndItsName) {
  auto [in, out] = mp::Pipe<std::string>(false);
  mp::Process process({.name = "worker-one"}, report_pid_and_name, std::move(out));
  EXPECT_EQ(process.name(), "worker-one");
  process.start();
  const std::string reply = in.recv();
  process.join();
  EXPECT_EQ(reply, std::to_string(process.pid()) + " worker-one");
  EXPECT_NE(process.pid(), ::getpid());
}

TEST(Process, DefaultNamesAreNumbered) {
  mp::Process process(throw_in_child);
  EXPECT_EQ(process.name().rfind("Process-", 0), 0u) << process.name();
  EXPECT_EQ(mp::current_process().name(), "MainProcess");
  EXPECT_EQ(mp::current_process().pid(), ::getpid());
}

TEST(Process, LambdaWithoutCapturesIsATarget) {
  auto [in, out] = mp::Pipe<int>(false);
  mp::Process process([](int x, mp::Connection<int> c) { c.send(x * 10); }, 7, std::move(out));
  process.start();
  EXPECT_EQ(in.recv(), 70);
  process.join();
}

TEST(Process, FunctionInASharedLibraryIsATarget) {
  auto [in, out] = mp::Pipe<int>(false);
  mp::Process process(spindle_test_library::send_square, 9, std::move(out));
  process.start();
  EXPECT_EQ(in.recv(), 81);
  process.join();
  EXPECT_EQ(process.exitcode(), 0);
}

TEST(Process, ExceptionInTargetGivesExitCodeOne) {
  mp::Process process(throw_in_child);
  process.start();
  process.join();
  EXPECT_EQ(process.exitcode(), 1);
}

TEST(Process, StateBeforeDuringAndAfter) {
  auto [keep, other] = mp::Pipe<int>();
  mp::Process process(wait_for_word, std::move(other));
  EXPECT_FALSE(process.is_alive());
  EXPECT_EQ(process.exitcode(), std::nullopt);
  EXPECT_EQ(process.pid(), 0);
  EXPECT_THROW(process.join(), std::logic_error);
  process.start();
  EXPECT_TRUE(process.is_alive());
  EXPECT_EQ(process.exitcode(), std::nullopt);
  EXPECT_FALSE(process.join(50ms));
  keep.send(1);
  EXPECT_TRUE(process.join(30s));
  EXPECT_FALSE(process.is_alive());
  EXPECT_EQ(process.exitcode(), 0);
  EXPECT_THROW(process.start(), std::logic_error);
}

TEST(Process, TerminateAndKillGiveNegativeSignalNumbers) {
  auto [keep1, other1] = mp::Pipe<int>();
  auto [keep2, other2] = mp::Pipe<int>();
  mp::Process first(wait_for_word, std::move(other1));
  mp::Process second(wait_for_word, std::move(other2));
  first.start();
  second.start();
  first.terminate();
  second.kill();
  first.join();
  second.join();
  EXPECT_EQ(first.exitcode(), -SIGTERM);
  EXPECT_EQ(second.exitcode(), -SIGKILL);
  first.terminate();  // ended: nothing happens
}

// Where the kernel has no pidfds (before 5.3), join polls waitpid and signals go by pid.
TEST(Process, JoinTerminateAndKillWorkWithoutPidfds) {
  auto [in, out] = mp::Pipe<std::string>(false);
  mp::Process process(use_children_without_pidfds, std::move(out));
  process.start();
  out.close();  // a child that dies early is EOFError here, not a hang
  const std::string seen = in.recv();
  EXPECT_TRUE(process.join(60s));
  if (seen.rfind("skip: ", 0) == 0) GTEST_SKIP() << seen.substr(6);
  EXPECT_EQ(seen, "alive=1 join(50ms)=0 join(30s)=1 exitcode=0 alive=0 exitcode=1 terminated=" +
                      std::to_string(-SIGTERM) + " killed=" + std::to_string(-SIGKILL) + " ");
  EXPECT_EQ(process.exitcode(), 0);
}

TEST(Process, ActiveChildrenListsRunningChildren) {
  auto [keep, other] = mp::Pipe<int>();
  mp::Process process(wait_for_word, std::move(other));
  process.start();
  const auto children = mp::active_children();
  EXPECT_NE(std::find(children.begin(), children.end(), &process), children.end());
  keep.send(1);
  process.join();
  const auto after = mp::active_children();
  EXPECT_EQ(std::find(after.begin(), after.end(), &process), after.end());
}

TEST(Process, MovedProcessKeepsItsChild) {
  auto [in, out] = mp::Pipe<int>(false);
  std::vector<mp::Process> processes;
  processes.emplace_back(add_and_send, 1, 1, std::move(out));
  processes.reserve(10);
  processes[0].start();
  EXPECT_EQ(in.recv(), 2);
  processes[0].join();
  EXPECT_EQ(processes[0].exitcode(), 0);
}

TEST(Process, AMovedFromProcessThrowsLogicErrorNotACrash) {
  mp::Process process(throw_in_child);
  mp::Process moved(std::move(process));
  EXPECT_THROW(process.start(), std::logic_error);
  EXPECT_THROW(process.join(), std::logic_error);
  EXPECT_THROW(process.is_alive(), std::logic_error);
  EXPECT_THROW(process.exitcode(), std::logic_error);
  EXPECT_THROW(process.pid(), std::logic_error);
  EXPECT_THROW(process.terminate(), std::logic_error);
  EXPECT_THROW(process.name(), std::logic_error);
  EXPECT_EQ(moved.pid(), 0);
}

TEST(Process, DaemonFlagAndDaemonsMayNotHaveChildren) {
  auto [in, out] = mp::Pipe<std::string>(false);
  mp::Process process({.daemon = true}, try_to_start_grandchild, std::move(out));
  EXPECT_TRUE(process.daemon());
  process.start();
  EXPECT_EQ(in.recv(), "daemonic processes are not allowed to have children");
  process.join();
  EXPECT_THROW(process.set_daemon(false), std::logic_error);
}

TEST(Process, LargeMessagesCrossBothWays) {
  auto [mine, theirs] = mp::Pipe<std::vector<char>>();
  mp::Process process(echo, std::move(theirs));
  process.start();
  std::vector<char> big(3 << 20);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 31);
  mine.send(big);
  EXPECT_EQ(mine.recv(), big);
  mine.close();
  process.join();
  EXPECT_EQ(process.exitcode(), 0);
}

TEST(Process, ChildDiesWhenItsParentIsKilled) {
  auto [in, out] = mp::Pipe<int>(false);
  mp::Process parent(start_blocked_grandchild, std::move(out), false, false);
  parent.start();
  out.close();  // only the child's copies remain: a failure is EOFError, not a hang
  const int grandchild = in.recv();
  parent.kill();
  parent.join();
  EXPECT_TRUE(ended_within(grandchild, 10s)) << "orphan " << grandchild;
}

TEST(Process, PoolWorkerDiesWhenItsParentIsKilled) {
  auto [in, out] = mp::Pipe<int>(false);
  mp::Process parent(start_blocked_pool_worker, std::move(out));
  parent.start();
  out.close();  // only the child's copies remain: a failure is EOFError, not a hang
  const int worker = in.recv();
  parent.kill();
  parent.join();
  EXPECT_TRUE(ended_within(worker, 10s)) << "orphan " << worker;
}

TEST(Process, DaemonChildIsTerminatedWhenItsParentExits) {
  auto [in, out] = mp::Pipe<int>(false);
  mp::Process parent(start_blocked_grandchild, std::move(out), true, true);
  parent.start();
  out.close();  // only the child's copies remain: a failure is EOFError, not a hang
  const int grandchild = in.recv();
  parent.join();
  EXPECT_EQ(parent.exitcode(), 0);
  EXPECT_TRUE(ended_within(grandchild, 10s)) << "orphan " << grandchild;
}

TEST(Process, ForkStartMethodRunsTheTarget) {
  mp::set_start_method("fork", true);
  auto [in, out] = mp::Pipe<int>(false);
  mp::Process process(add_and_send, 20, 22, std::move(out));
  process.start();
  mp::set_start_method("spawn", true);
  EXPECT_EQ(in.recv(), 42);
  process.join();
  EXPECT_EQ(process.exitcode(), 0);
}

// ThreadSanitizer ends a child forked from a multi-threaded process as soon as it starts a
// thread ("not supported"), and a forked child that starts children starts a spawner thread.
constexpr bool kThreadsAfterForkSupported = !SPINDLE_TEST_THREAD_SANITIZER;

TEST(Process, AForkedChildStartsChildrenAndPoolsOfItsOwn) {
  if (!kThreadsAfterForkSupported) GTEST_SKIP() << "ThreadSanitizer: no threads after fork";
  auto [keep, other] = mp::Pipe<int>();
  mp::Process sibling(wait_for_word, std::move(other));  // a child the forked one must not see
  sibling.start();
  forked_sibling = &sibling;
  mp::set_start_method("fork", true);
  auto [in, out] = mp::Pipe<int>(false);
  mp::Process process(use_children_of_its_own, std::move(out));
  process.start();
  out.close();  // a child that dies early is EOFError here, not a hang
  mp::set_start_method("spawn", true);
  EXPECT_EQ(in.recv(), 0);  // the parent's children are not the forked child's
  EXPECT_EQ(in.recv(), 1);  // and it may not join them
  EXPECT_EQ(in.recv(), 42);
  EXPECT_EQ(in.recv(), 49);
  EXPECT_TRUE(process.join(60s));
  EXPECT_EQ(process.exitcode(), 0);
  keep.send(1);
  sibling.join();
}

TEST(Process, APoolWorkersSocketIsNotInheritedByProgramsItsTasksStart) {
  mp::ProcessPoolExecutor pool({.max_workers = 1});
  EXPECT_EQ(pool.submit(inheritable_sockets).result(), 0);
}

TEST(Process, StartMethodNames) {
  EXPECT_THROW(mp::set_start_method("forkserver", true), std::invalid_argument);
  mp::set_start_method("spawn", true);
  EXPECT_EQ(mp::get_start_method(), "spawn");
  EXPECT_THROW(mp::set_start_method("fork"), std::logic_error);
  EXPECT_GE(mp::cpu_count(), 1u);
}
