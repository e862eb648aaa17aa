// Helpers for the cross-process tests: run a body in a forked child and read how it ended.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "spindle/detail/multiprocessing_shared.hpp"

extern char** environ;

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

// True while process `pid` sleeps (state S in /proc/PID/stat): blocked, not merely preempted.
inline bool asleep(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto end_of_name = line.rfind(')');
  return end_of_name != std::string::npos && end_of_name + 2 < line.size() &&
         line[end_of_name + 2] == 'S';
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

// Bytes as hex digits (for an environment variable) and back.
inline std::string to_hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex.push_back(digits[c >> 4]);
    hex.push_back(digits[c & 15]);
  }
  return hex;
}
inline std::string from_hex(const char* hex) {
  std::string bytes;
  for (; hex[0] != 0 && hex[1] != 0; hex += 2)
    bytes.push_back(static_cast<char>(std::stoi(std::string(hex, 2), nullptr, 16)));
  return bytes;
}

// Starts a fresh image of this test binary (no inherited mapping, its own ASLR layout) that
// runs the one (disabled) test `test`, with `variable`=`value` in its environment and its
// stdout (its own gtest report) discarded. Returns the pid, or -1.
inline pid_t spawn_self_test(const std::string& test, const std::string& variable,
                             const std::string& value) {
  const std::string assignment = variable + "=" + value;
  std::vector<char*> envp;
  for (char** entry = environ; *entry != nullptr; ++entry)
    envp.push_back(*entry);
  envp.push_back(const_cast<char*>(assignment.c_str()));
  envp.push_back(nullptr);
  std::string self = "/proc/self/exe";
  std::string filter = "--gtest_filter=" + test;
  std::string also = "--gtest_also_run_disabled_tests";
  char* argv[] = {self.data(), filter.data(), also.data(), nullptr};
  posix_spawn_file_actions_t quiet;
  ::posix_spawn_file_actions_init(&quiet);
  ::posix_spawn_file_actions_addopen(&quiet, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t child = -1;
  const int error = ::posix_spawn(&child, self.c_str(), &quiet, nullptr, argv, envp.data());
  ::posix_spawn_file_actions_destroy(&quiet);
  return error == 0 ? child : -1;
}

}  // namespace spindle_test
