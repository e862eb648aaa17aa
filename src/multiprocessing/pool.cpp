#include "process_internal.hpp"
#include "spindle/multiprocessing.hpp"

namespace spindle::multiprocessing {
namespace {

internal::WorkerPoolOptions pool_options(PoolOptions options) {
  if (detail::current_is_daemon()) {
    // A Pool inside a Pool's worker (or any daemon process), as Python forbids.
    throw std::logic_error("daemonic processes are not allowed to have children");
  }
  if (options.processes &&
      (*options.processes == 0 || internal::wrapped_negative(*options.processes))) {
    throw std::invalid_argument("Number of processes must be at least 1");
  }
  if (options.maxtasksperchild &&
      (*options.maxtasksperchild == 0 || internal::wrapped_negative(*options.maxtasksperchild))) {
    throw std::invalid_argument("maxtasksperchild must be a positive number");
  }
  internal::WorkerPoolOptions pool;
  pool.workers = options.processes.value_or(cpu_count());
  pool.initializer = options.initializer.call();
  pool.max_tasks_per_child = options.maxtasksperchild.value_or(0);
  pool.on_worker_crash = options.on_worker_crash;
  pool.worker_name_prefix =
      detail::start_method() == detail::StartMethod::spawn ? "SpawnPoolWorker" : "ForkPoolWorker";
  pool.kind = "Pool";
  return pool;
}

}  // namespace

Pool::Pool(PoolOptions options) : pool_(pool_options(std::move(options))) {}

// Then pool_'s destructor, which waits for the collector unless it runs on it.
Pool::~Pool() {
  terminate();
}

void Pool::check_running() const {
  std::lock_guard lock(mutex_);
  if (state_ != State::running) throw std::invalid_argument("Pool not running");
}

// The worker pool refuses calls after shutdown with std::logic_error; a close() or
// terminate() between check_running() and the submit is reported as check_running() would
// have (the pool is only shut down by them, after they changed state_).
void Pool::submit(std::unique_ptr<internal::PendingCall> call) {
  check_running();
  try {
    pool_.submit(std::move(call));
  } catch (const std::logic_error&) {
    check_running();
    throw;
  }
}

void Pool::submit(std::vector<std::unique_ptr<internal::PendingCall>>& calls) {
  check_running();
  try {
    pool_.submit(calls);
  } catch (const std::logic_error&) {
    check_running();
    throw;
  }
}

void Pool::close() {
  std::lock_guard lock(mutex_);
  if (state_ == State::running) {
    state_ = State::closed;
    pool_.shutdown(false, false);
  }
}

void Pool::terminate() {
  {
    std::lock_guard lock(mutex_);
    state_ = State::terminated;
  }
  pool_.terminate();
}

void Pool::join() {
  {
    std::lock_guard lock(mutex_);
    if (state_ == State::running) throw std::invalid_argument("Pool is still running");
  }
  pool_.shutdown(true, false);
}

}  // namespace spindle::multiprocessing
