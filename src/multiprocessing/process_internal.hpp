// Private to src/multiprocessing: starting children and what a child knows about itself.
#pragma once

#include <cstdint>
#include <string>

#include "spindle/detail/serialization.hpp"

namespace spindle::multiprocessing::detail {

enum class StartMethod { spawn, fork };
StartMethod start_method();

// What a child is started as; the first frame a child reads says which.
enum class ChildKind : std::uint8_t { process = 1, pool_worker = 2 };

// A started child: its pid and the parent's end of the socket to it.
struct Child {
  int pid = -1;
  int fd = -1;
};

// Starts a child with the current start method, from a thread that lives as long as the
// program (the child's parent-death signal is tied to the thread that started it). The
// child waits for its first frame on the socket. std::system_error on failure.
Child start_child();
// Closes the parent's end of a child's socket (and forgets it: forked children close the
// ends of their siblings).
void close_parent_end(int fd) noexcept;

// In a forked child: forgets the parent's children (copied by fork), which are not this
// process's own.
void forget_parent_children();
// At exit, as Python: daemon children are terminated, then every child is joined. Blocks.
void join_children_at_exit();

// Sets what current_process() reports in a child.
void set_current_identity(std::string name, bool daemon);
// Whether this process is a daemon child (which may not start children).
bool current_is_daemon();

// The body of a pool worker, after the first frame (in src/multiprocessing/worker.cpp).
// Every result message a pool worker sends ends with call_time_size bytes: how long the call
// ran, in nanoseconds (std::uint64_t). The pool sizes each worker's queue by it.
[[noreturn]] void run_pool_worker(int fd, Decoder& boot, bool forked);
inline constexpr std::size_t call_time_size = sizeof(std::uint64_t);
// Ends a child: flushes stdio; std::exit for a spawned child, _exit for a forked one.
[[noreturn]] void finish_child(int code, bool forked);

}  // namespace spindle::multiprocessing::detail
