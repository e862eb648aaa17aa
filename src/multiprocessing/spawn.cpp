// Starting children ("spawn" and "fork") and the worker mode a spawned child enters before
// main. See docs/design/processes.md.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

#include "process_internal.hpp"
#include "spindle/detail/exception_info.hpp"
#include "spindle/multiprocessing.hpp"

extern char** environ;

namespace spindle::multiprocessing::detail {
namespace {

constexpr const char* worker_variable = "SPINDLE_MP_WORKER";

// The parent's ends of children's sockets, which a forked child must close.
struct ParentEnds {
  std::mutex mutex;
  std::set<int> fds;
};
// A slot, so a forked child can start over with its own (see reset_after_fork).
ParentEnds*& parent_ends_slot() {
  static auto* ends = new ParentEnds();
  return ends;
}
ParentEnds& parent_ends() {
  return *parent_ends_slot();
}

const std::string& program_name() {
  static const std::string name = [] {
    std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
    std::string first;
    std::getline(cmdline, first, '\0');
    return first.empty() ? std::string("spindle-worker") : first;
  }();
  return name;
}

[[noreturn]] void run_process_child(int fd, const std::string& name, bool forked) {
  Message call;
  if (!recv_frame(fd, call)) finish_child(1, forked);
  close_fd(fd);
  int code = 0;
  try {
    Decoder in(call.bytes, std::exchange(call.fds, {}));
    Message ignored;
    Encoder out(ignored);
    run_call(in, out);
  } catch (...) {
    const std::string report = "Process " + name + ":\n" +
                               spindle::detail::format_exception(std::current_exception()) + "\n";
    std::fflush(stdout);
    std::fputs(report.c_str(), stderr);
    code = 1;
  }
  finish_child(code, forked);
}

// The child side, from the first instruction that is ours.
[[noreturn]] void worker_main(int fd, pid_t parent, bool forked) {
  // Die with the parent. The signal is armed after the parent may already have died, so
  // check that it is still our parent.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(70);
  // Spawning cleared close-on-exec so the socket survived the exec; a program the target
  // starts must not inherit it, or the parent would not see this worker's end when it dies.
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  Message boot;
  try {
    if (!recv_frame(fd, boot)) finish_child(0, forked);
    Decoder in(boot.bytes);
    const auto kind = read_value<std::uint8_t>(in);
    const auto daemon = read_value<bool>(in);
    const auto name = read_value<std::string>(in);
    set_current_identity(name, daemon);
    if (kind == static_cast<std::uint8_t>(ChildKind::process)) run_process_child(fd, name, forked);
    if (kind == static_cast<std::uint8_t>(ChildKind::pool_worker)) run_pool_worker(fd, in, forked);
    std::fputs("spindle worker: unknown child kind\n", stderr);
  } catch (...) {
    const std::string report =
        "spindle worker: " + spindle::detail::format_exception(std::current_exception()) + "\n";
    std::fputs(report.c_str(), stderr);
  }
  finish_child(1, forked);
}

// Worker mode: a spawned child finds SPINDLE_MP_WORKER=FD,PARENT_PID in its environment and
// never reaches main. This object is in the same file as start_child(), so every program
// that can start a child links it.
struct WorkerEntry {
  WorkerEntry() {
    const char* value = std::getenv(worker_variable);
    if (value == nullptr) return;
    int fd = -1;
    long parent = -1;
    if (std::sscanf(value, "%d,%ld", &fd, &parent) != 2) return;
    ::unsetenv(worker_variable);
    worker_main(fd, static_cast<pid_t>(parent), false);
  }
} worker_entry;

// ---- the spawner thread ----

struct Request {
  Child child;
  std::exception_ptr error;
  bool done = false;
};

void reset_after_fork();

class Spawner {
 public:
  Child start() {
    Request request;
    std::unique_lock lock(mutex_);
    if (!running_) {
      std::thread([this] { run(); }).detach();
      running_ = true;
    }
    queue_.push_back(&request);
    wake_.notify_all();
    done_.wait(lock, [&] { return request.done; });
    if (request.error) std::rethrow_exception(request.error);
    return request.child;
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return !queue_.empty(); });
      Request* request = queue_.front();
      queue_.pop_front();
      lock.unlock();
      try {
        request->child = start_now();
      } catch (...) {
        request->error = std::current_exception();
      }
      lock.lock();
      request->done = true;
      done_.notify_all();
    }
  }

  static Child start_now() {
    auto [parent_end, child_end] = socket_pair();
    const pid_t parent = ::getpid();
    pid_t pid = -1;
    if (start_method() == StartMethod::spawn) {
      const std::string variable = std::string(worker_variable) + "=" + std::to_string(child_end) +
                                   "," + std::to_string(parent);
      std::vector<char*> environment;
      for (char** entry = environ; *entry != nullptr; ++entry) {
        if (std::strncmp(*entry, "SPINDLE_MP_WORKER=", 18) != 0) environment.push_back(*entry);
      }
      environment.push_back(const_cast<char*>(variable.c_str()));
      environment.push_back(nullptr);
      char* arguments[] = {const_cast<char*>(program_name().c_str()), nullptr};
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      // dup2 onto itself clears close-on-exec in the child only.
      posix_spawn_file_actions_adddup2(&actions, child_end, child_end);
      const int error =
          ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, arguments, environment.data());
      posix_spawn_file_actions_destroy(&actions);
      if (error != 0) {
        close_fd(parent_end);
        close_fd(child_end);
        throw std::system_error(error, std::generic_category(), "posix_spawn /proc/self/exe");
      }
    } else {
      std::vector<int> siblings;
      {
        std::lock_guard lock(parent_ends().mutex);
        siblings.assign(parent_ends().fds.begin(), parent_ends().fds.end());
      }
      pid = ::fork();
      if (pid < 0) {
        const int error = errno;
        close_fd(parent_end);
        close_fd(child_end);
        throw std::system_error(error, std::generic_category(), "fork");
      }
      if (pid == 0) {
        ::close(parent_end);
        for (int fd : siblings)
          ::close(fd);
        reset_after_fork();
        worker_main(child_end, parent, true);
      }
    }
    close_fd(child_end);
    std::lock_guard lock(parent_ends().mutex);
    parent_ends().fds.insert(parent_end);
    return Child{pid, parent_end};
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::deque<Request*> queue_;
  bool running_ = false;
};

// Lives as long as the program, with its thread; a slot, so a forked child can start over.
Spawner*& spawner_slot() {
  static auto* instance = new Spawner();
  return instance;
}
Spawner& spawner() {
  return *spawner_slot();
}

// In a forked child, first thing: the parent's spawner and socket ends, copied by fork, are
// left behind (the spawner's thread does not exist here, and a lock may be held by a thread
// that does not either), so that this child can start children of its own.
void reset_after_fork() {
  spawner_slot() = new Spawner();
  parent_ends_slot() = new ParentEnds();
  forget_parent_children();
}

}  // namespace

Child start_child() {
  (void)&worker_entry;
  // What this process printed so far comes before what the child prints.
  std::cout.flush();
  std::fflush(nullptr);
  return spawner().start();
}

void close_parent_end(int fd) noexcept {
  std::lock_guard lock(parent_ends().mutex);
  parent_ends().fds.erase(fd);
  close_fd(fd);
}

void finish_child(int code, bool forked) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  if (forked) {
    // std::exit would run the parent's atexit handlers and static destructors too; this
    // process's own children are terminated (daemons) and joined as std::exit would.
    join_children_at_exit();
    ::_exit(code);
  }
  std::exit(code);
}

}  // namespace spindle::multiprocessing::detail
