#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "process_internal.hpp"
#include "spindle/multiprocessing.hpp"

namespace spindle::multiprocessing {

namespace internal {

struct ProcessState {
  ~ProcessState() { detail::close_fd(pidfd); }

  mutable std::mutex mutex;
  std::string name;
  bool daemon = false;
  detail::Message call;  // sent at start()
  bool started = false;
  bool self = false;  // the Process object of this very process
  int pid = 0;
  int parent_pid = 0;  // who started it: a forked child's copy of this state is not its child
  int pidfd = -1;      // open until the state is destroyed, so waiting threads never race a close
  std::optional<int> exitcode;
  Process* owner = nullptr;
};

}  // namespace internal

namespace detail {
namespace {

std::atomic<int> method{static_cast<int>(StartMethod::spawn)};
std::atomic<bool> method_set{false};
std::atomic<int> process_counter{0};

struct Registry {
  std::mutex mutex;
  std::vector<std::shared_ptr<internal::ProcessState>> children;
};
Registry*& registry_slot() {
  static auto* instance = new Registry();
  return instance;
}
Registry& registry() {
  return *registry_slot();
}

// Reaps the child if it has ended (or waits for it when `block`). Caller holds the mutex.
void reap(internal::ProcessState& state, bool block) {
  if (!state.started || state.self || state.exitcode) return;
  int status = 0;
  pid_t got;
  do {
    got = ::waitpid(state.pid, &status, block ? 0 : WNOHANG);
  } while (got < 0 && errno == EINTR);
  if (got == state.pid) {
    state.exitcode = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
  } else if (got < 0 && errno == ECHILD) {
    state.exitcode = 255;  // reaped by someone else (a SIGCHLD handler): status unknown
  }
}

// As Python: only the process that started a child may wait for it or signal it (a forked
// child holds copies of its parent's Process objects). Caller holds the state's mutex.
void check_own_child(const internal::ProcessState& state, const char* operation) {
  if (state.started && !state.self && state.parent_pid != ::getpid()) {
    throw std::logic_error(std::string("can only ") + operation + " a child process");
  }
}

void send_signal(internal::ProcessState& state, int signal) {
  std::lock_guard lock(state.mutex);
  if (!state.started || state.self) return;
  check_own_child(state, "signal");
  reap(state, false);
  if (state.exitcode) return;
  if (state.pidfd >= 0) {
    ::syscall(SYS_pidfd_send_signal, state.pidfd, signal, nullptr, 0);
  } else {
    ::kill(state.pid, signal);  // not reaped (we hold the lock), so the pid is still the child
  }
}

// The state of a Process that has one; std::logic_error naming `operation` on a moved-from one.
internal::ProcessState& checked(const std::shared_ptr<internal::ProcessState>& state,
                                const char* operation) {
  if (!state) throw std::logic_error(std::string(operation) + " on a moved-from Process");
  return *state;
}

// join without a pidfd: looks every few milliseconds, so that is_alive() and the other
// methods stay usable from other threads meanwhile (a blocking waitpid would hold the lock).
bool join_by_polling(internal::ProcessState& state,
                     const spindle::detail::Clock::time_point* deadline) {
  auto pause = std::chrono::microseconds(100);
  for (;;) {
    {
      std::lock_guard lock(state.mutex);
      reap(state, false);
      if (state.exitcode) return true;
    }
    if (deadline != nullptr && spindle::detail::Clock::now() >= *deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
}

std::atomic<Process*> current{nullptr};
std::atomic<bool> current_daemon{false};

}  // namespace

void join_children_at_exit() {
  std::vector<std::shared_ptr<internal::ProcessState>> children;
  {
    std::lock_guard lock(registry().mutex);
    children.swap(registry().children);
  }
  for (auto& child : children) {
    if (child->daemon) send_signal(*child, SIGTERM);
  }
  for (auto& child : children) {
    std::lock_guard lock(child->mutex);
    reap(*child, true);
  }
}

void forget_parent_children() {
  // The parent's registry may be locked by one of its threads, which do not exist here.
  registry_slot() = new Registry();
}

StartMethod start_method() {
  return static_cast<StartMethod>(method.load());
}

void set_current_identity(std::string name, bool daemon) {
  auto state = std::make_shared<internal::ProcessState>();
  state->name = std::move(name);
  state->daemon = daemon;
  state->self = true;
  state->started = true;
  state->pid = static_cast<int>(::getpid());
  current_daemon = daemon;
  // The parent's object (copied by fork) is left behind: this process is not it.
  current.store(new Process(std::move(state)));
}

bool current_is_daemon() {
  return current_daemon.load();
}

}  // namespace detail

std::size_t cpu_count() {
  const long count = ::sysconf(_SC_NPROCESSORS_ONLN);
  return count > 0 ? static_cast<std::size_t>(count) : 1;
}

void set_start_method(std::string_view name, bool force) {
  detail::StartMethod chosen;
  if (name == "spawn") {
    chosen = detail::StartMethod::spawn;
  } else if (name == "fork") {
    chosen = detail::StartMethod::fork;
  } else {
    throw std::invalid_argument("unknown start method '" + std::string(name) +
                                "': use \"spawn\" or \"fork\"");
  }
  if (detail::method_set.exchange(true) && !force) {
    throw std::logic_error("the start method has already been set (pass force = true)");
  }
  detail::method = static_cast<int>(chosen);
}

std::string get_start_method() {
  return detail::start_method() == detail::StartMethod::spawn ? "spawn" : "fork";
}

std::vector<std::string> get_all_start_methods() {
  return {"spawn", "fork"};
}

// ---- Process ----

Process::Process(ProcessOptions options, detail::Message call)
    : state_(std::make_shared<internal::ProcessState>()) {
  state_->name = options.name.empty() ? "Process-" + std::to_string(++detail::process_counter)
                                      : std::move(options.name);
  state_->daemon = options.daemon.value_or(detail::current_is_daemon());
  state_->call = std::move(call);
  state_->owner = this;
}

Process::Process(std::shared_ptr<internal::ProcessState> state) : state_(std::move(state)) {
  state_->owner = this;
}

Process::Process(Process&& other) noexcept : state_(std::move(other.state_)) {
  if (state_) {
    std::lock_guard lock(state_->mutex);
    state_->owner = this;
  }
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (state_) {
      std::lock_guard lock(state_->mutex);
      state_->owner = nullptr;
    }
    state_ = std::move(other.state_);
    if (state_) {
      std::lock_guard lock(state_->mutex);
      state_->owner = this;
    }
  }
  return *this;
}

Process::~Process() {
  if (state_) {
    std::lock_guard lock(state_->mutex);
    state_->owner = nullptr;
  }
}

void Process::start() {
  std::unique_lock lock(detail::checked(state_, "start").mutex);
  if (state_->self) throw std::logic_error("cannot start the current process");
  if (state_->started) throw std::logic_error("cannot start a process twice");
  if (detail::current_is_daemon()) {
    throw std::logic_error("daemonic processes are not allowed to have children");
  }
  const detail::Child child = detail::start_child();
  state_->pid = child.pid;
  state_->parent_pid = static_cast<int>(::getpid());
  // Without a pidfd (old kernel, no descriptors left) join polls and signals go by pid.
  state_->pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child.pid, 0));
  state_->started = true;
  try {
    detail::Message boot;
    {
      detail::Encoder out(boot);
      detail::write(out, static_cast<std::uint8_t>(detail::ChildKind::process));
      detail::write(out, state_->daemon);
      detail::write(out, state_->name);
    }
    detail::send_frame(child.fd, boot);
    detail::send_frame(child.fd, state_->call);
  } catch (const std::system_error&) {
    // The child died before reading its call; its exit status tells.
  } catch (...) {
    // The call could not be sent (no memory, too many descriptors): the child would wait for
    // it forever. End it, and leave this Process as it was before start().
    ::kill(child.pid, SIGKILL);
    while (::waitpid(child.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    detail::close_parent_end(child.fd);
    if (state_->pidfd >= 0) ::close(state_->pidfd);
    state_->pidfd = -1;
    state_->pid = 0;
    state_->started = false;
    throw;
  }
  detail::close_parent_end(child.fd);
  state_->call = detail::Message();
  lock.unlock();
  static std::once_flag at_exit;
  std::call_once(at_exit, [] { std::atexit(&detail::join_children_at_exit); });
  std::lock_guard registry_lock(detail::registry().mutex);
  auto& children = detail::registry().children;
  // Forget the children that ended, so a long-running program does not accumulate them.
  std::erase_if(children, [](const std::shared_ptr<internal::ProcessState>& state) {
    std::unique_lock child_lock(state->mutex, std::try_to_lock);
    if (!child_lock.owns_lock()) return false;
    detail::reap(*state, false);
    return state->exitcode.has_value();
  });
  children.push_back(state_);
}

void Process::join() {
  join_until(nullptr);
}

bool Process::join_until(const spindle::detail::Clock::time_point* deadline) {
  int pidfd;
  {
    std::lock_guard lock(detail::checked(state_, "join").mutex);
    if (state_->self) throw std::logic_error("a process cannot join itself");
    if (!state_->started) throw std::logic_error("can only join a started process");
    detail::check_own_child(*state_, "join");
    if (state_->exitcode) return true;
    pidfd = state_->pidfd;
  }
  if (pidfd < 0) return detail::join_by_polling(*state_, deadline);
  if (!detail::wait_readable(pidfd, deadline)) return false;
  std::lock_guard lock(state_->mutex);
  detail::reap(*state_, true);
  return true;
}

bool Process::is_alive() const {
  std::lock_guard lock(detail::checked(state_, "is_alive").mutex);
  if (state_->self) return true;
  if (!state_->started) return false;
  detail::check_own_child(*state_, "test");
  detail::reap(*state_, false);
  return !state_->exitcode;
}

std::optional<int> Process::exitcode() const {
  std::lock_guard lock(detail::checked(state_, "exitcode").mutex);
  detail::reap(*state_, false);
  return state_->exitcode;
}

int Process::pid() const {
  std::lock_guard lock(detail::checked(state_, "pid").mutex);
  return state_->pid;
}

void Process::terminate() {
  detail::send_signal(detail::checked(state_, "terminate"), SIGTERM);
}
void Process::kill() {
  detail::send_signal(detail::checked(state_, "kill"), SIGKILL);
}

std::string Process::name() const {
  std::lock_guard lock(detail::checked(state_, "name").mutex);
  return state_->name;
}

void Process::set_name(std::string name) {
  std::lock_guard lock(detail::checked(state_, "set_name").mutex);
  state_->name = std::move(name);
}

bool Process::daemon() const {
  std::lock_guard lock(detail::checked(state_, "daemon").mutex);
  return state_->daemon;
}

void Process::set_daemon(bool daemon) {
  std::lock_guard lock(detail::checked(state_, "set_daemon").mutex);
  if (state_->started) throw std::logic_error("cannot set daemon of a started process");
  state_->daemon = daemon;
}

Process& current_process() {
  Process* process = detail::current.load();
  if (process != nullptr) return *process;
  auto state = std::make_shared<internal::ProcessState>();
  state->name = "MainProcess";
  state->self = true;
  state->started = true;
  state->pid = static_cast<int>(::getpid());
  auto* created = new Process(std::move(state));
  if (detail::current.compare_exchange_strong(process, created)) return *created;
  delete created;
  return *process;
}

std::vector<Process*> active_children() {
  std::vector<Process*> alive;
  std::lock_guard lock(detail::registry().mutex);
  auto& children = detail::registry().children;
  std::erase_if(children, [&](const std::shared_ptr<internal::ProcessState>& state) {
    std::lock_guard child_lock(state->mutex);
    detail::reap(*state, false);
    if (state->exitcode) return true;
    if (state->owner != nullptr) alive.push_back(state->owner);
    return false;
  });
  return alive;
}

}  // namespace spindle::multiprocessing
