// Helpers for the cross-process tests: run a body in a forked child and read how it ended.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <sstream>
#include <string>

#include "spindle/detail/multiprocessing_shared.hpp"

namespace spindle_test {

// Forks; the child runs body() and leaves with _exit: status 0 when body returns true, 1 when
// it returns false, 2 when it throws (what() goes to stderr). Returns the child's pid.
template <class Body>
pid_t fork_child(Body body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int status = 2;
    try {
      status = body() ? 0 : 1;
    } catch (const std::exception& error) {
      std::fprintf(stderr, "child %d: %s\n", static_cast<int>(::getpid()), error.what());
    } catch (...) {
    }
    ::_exit(status);
  }
  return pid;
}

// Waits for the child: its exit status, or 128 + the signal that killed it.
inline int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

// A handle's cereal bytes, and a handle loaded from them.
template <class T>
std::string save_handle(const T& handle) {
  std::ostringstream out;
  {
    cereal::BinaryOutputArchive archive(out);
    archive(handle);
  }
  return out.str();
}
template <class T>
void load_handle(const std::string& bytes, T& handle) {
  std::istringstream in(bytes);
  cereal::BinaryInputArchive archive(in);
  archive(handle);
}

// The /dev/shm name a spindle handle's segment has (its first serialized field).
template <class T>
std::string segment_name(const T& handle) {
  std::istringstream in(save_handle(handle));
  cereal::BinaryInputArchive archive(in);
  std::string name;
  archive(name);
  return name;
}

inline bool shm_exists(const std::string& posix_name) {
  return ::access(("/dev/shm" + posix_name).c_str(), F_OK) == 0;
}

}  // namespace spindle_test
