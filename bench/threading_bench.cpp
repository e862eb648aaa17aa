// Microbenchmarks of spindle::threading and spindle::queue, each next to the standard-library
// primitive it is measured against. See docs/benchmarks.md for the figures and the goals.
//
//   build/release/bench/threading_bench
//   build/release/bench/threading_bench --benchmark_filter=Lock --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <semaphore>
#include <thread>

#include "spindle/queue.hpp"
#include "spindle/threading.hpp"

namespace {

namespace threading = spindle::threading;
namespace queue = spindle::queue;

// glibc takes a shortcut in pthread_mutex_lock (hence std::mutex) while a process has never
// started a second thread: no atomic instruction at all. A threading library is only used in
// processes that do start threads, so every figure here is taken after one has run.
const bool kProcessIsMultiThreaded = [] {
  std::thread([] {}).join();
  return true;
}();

// ---- locks, uncontended: one thread, acquire then release --------------------------------

// Goal: <= 20 ns per acquire+release pair.
void BM_Lock_AcquireRelease(benchmark::State& state) {
  threading::Lock lock;
  for (auto _ : state) {
    lock.acquire();
    lock.release();
  }
  benchmark::DoNotOptimize(lock.locked());
}
BENCHMARK(BM_Lock_AcquireRelease);

// The same pair through the Lockable interface, as std::scoped_lock uses it.
void BM_Lock_ScopedLock(benchmark::State& state) {
  threading::Lock lock;
  for (auto _ : state) {
    std::scoped_lock guard(lock);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Lock_ScopedLock);

// Reference: std::mutex (glibc pthread_mutex_t).
void BM_StdMutex_LockUnlock(benchmark::State& state) {
  std::mutex mutex;
  for (auto _ : state) {
    mutex.lock();
    mutex.unlock();
  }
  benchmark::DoNotOptimize(mutex.try_lock());
}
BENCHMARK(BM_StdMutex_LockUnlock);

void BM_RLock_AcquireRelease(benchmark::State& state) {
  threading::RLock lock;
  for (auto _ : state) {
    lock.acquire();
    lock.release();
  }
  benchmark::DoNotOptimize(lock.locked());
}
BENCHMARK(BM_RLock_AcquireRelease);

// A second, re-entrant level on an RLock the thread already owns.
void BM_RLock_Reentrant(benchmark::State& state) {
  threading::RLock lock;
  lock.acquire();
  for (auto _ : state) {
    lock.acquire();
    lock.release();
  }
  lock.release();
}
BENCHMARK(BM_RLock_Reentrant);

// Reference: std::recursive_mutex.
void BM_StdRecursiveMutex_LockUnlock(benchmark::State& state) {
  std::recursive_mutex mutex;
  for (auto _ : state) {
    mutex.lock();
    mutex.unlock();
  }
}
BENCHMARK(BM_StdRecursiveMutex_LockUnlock);

// ---- locks, contended: every thread hammers one lock (wall time per pair, per thread) ----

threading::Lock contended_lock;
std::mutex contended_mutex;

void BM_Lock_Contended(benchmark::State& state) {
  for (auto _ : state) {
    contended_lock.acquire();
    contended_lock.release();
  }
}
BENCHMARK(BM_Lock_Contended)->Threads(2)->UseRealTime();

void BM_StdMutex_Contended(benchmark::State& state) {
  for (auto _ : state) {
    contended_mutex.lock();
    contended_mutex.unlock();
  }
}
BENCHMARK(BM_StdMutex_Contended)->Threads(2)->UseRealTime();

// ---- Event -----------------------------------------------------------------------------

void BM_Event_IsSet(benchmark::State& state) {
  threading::Event event;
  for (auto _ : state)
    benchmark::DoNotOptimize(event.is_set());
}
BENCHMARK(BM_Event_IsSet);

// set() on an event that is already set, nobody waiting.
void BM_Event_Set(benchmark::State& state) {
  threading::Event event;
  for (auto _ : state)
    event.set();
  benchmark::DoNotOptimize(event.is_set());
}
BENCHMARK(BM_Event_Set);

// clear() on an event that is already clear.
void BM_Event_Clear(benchmark::State& state) {
  threading::Event event;
  for (auto _ : state)
    event.clear();
  benchmark::DoNotOptimize(event.is_set());
}
BENCHMARK(BM_Event_Clear);

// set() then clear(), nobody waiting.
void BM_Event_SetClear(benchmark::State& state) {
  threading::Event event;
  for (auto _ : state) {
    event.set();
    event.clear();
  }
  benchmark::DoNotOptimize(event.is_set());
}
BENCHMARK(BM_Event_SetClear);

// One round trip between two threads: this thread sets `ping` and waits for `pong`; the
// partner waits for `ping`, clears it and sets `pong`. Each waiter clears its event before it
// answers, so no set() is lost. Wall time per round trip (two hand-offs).
void BM_Event_PingPong(benchmark::State& state) {
  threading::Event ping;
  threading::Event pong;
  std::atomic<bool> stop{false};
  std::thread partner([&] {
    for (;;) {
      ping.wait();
      ping.clear();
      if (stop.load(std::memory_order_relaxed)) return;
      pong.set();
    }
  });
  for (auto _ : state) {
    ping.set();
    pong.wait();
    pong.clear();
  }
  stop.store(true, std::memory_order_relaxed);
  ping.set();
  partner.join();
}
BENCHMARK(BM_Event_PingPong)->UseRealTime();

// Reference for the ping-pong: a flag under std::mutex + std::condition_variable per side.
struct CvFlag {
  std::mutex mutex;
  std::condition_variable changed;
  bool flag = false;
  void set() {
    {
      std::lock_guard guard(mutex);
      flag = true;
    }
    changed.notify_all();
  }
  void wait_and_clear() {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return flag; });
    flag = false;
  }
};

void BM_CondVarFlag_PingPong(benchmark::State& state) {
  CvFlag ping;
  CvFlag pong;
  std::atomic<bool> stop{false};
  std::thread partner([&] {
    for (;;) {
      ping.wait_and_clear();
      if (stop.load(std::memory_order_relaxed)) return;
      pong.set();
    }
  });
  for (auto _ : state) {
    ping.set();
    pong.wait_and_clear();
  }
  stop.store(true, std::memory_order_relaxed);
  ping.set();
  partner.join();
}
BENCHMARK(BM_CondVarFlag_PingPong)->UseRealTime();

// ---- Semaphore -------------------------------------------------------------------------

void BM_Semaphore_AcquireRelease(benchmark::State& state) {
  threading::Semaphore semaphore(1);
  for (auto _ : state) {
    semaphore.acquire();
    semaphore.release();
  }
  benchmark::DoNotOptimize(semaphore.value());
}
BENCHMARK(BM_Semaphore_AcquireRelease);

void BM_BoundedSemaphore_AcquireRelease(benchmark::State& state) {
  threading::BoundedSemaphore semaphore(1);
  for (auto _ : state) {
    semaphore.acquire();
    semaphore.release();
  }
  benchmark::DoNotOptimize(semaphore.value());
}
BENCHMARK(BM_BoundedSemaphore_AcquireRelease);

// Reference: std::counting_semaphore (libstdc++: an atomic counter with futex waits).
void BM_StdCountingSemaphore_AcquireRelease(benchmark::State& state) {
  std::counting_semaphore<> semaphore(1);
  for (auto _ : state) {
    semaphore.acquire();
    semaphore.release();
  }
}
BENCHMARK(BM_StdCountingSemaphore_AcquireRelease);

// ---- queues, one thread: put then get --------------------------------------------------

void BM_Queue_PutGet(benchmark::State& state) {
  queue::Queue<int> q;
  int i = 0;
  for (auto _ : state) {
    q.put(i++);
    benchmark::DoNotOptimize(q.get());
  }
}
BENCHMARK(BM_Queue_PutGet);

// Bounded (maxsize 64): the same pair, with the room check.
void BM_Queue_Bounded_PutGet(benchmark::State& state) {
  queue::Queue<int> q(64);
  int i = 0;
  for (auto _ : state) {
    q.put(i++);
    benchmark::DoNotOptimize(q.get());
  }
}
BENCHMARK(BM_Queue_Bounded_PutGet);

void BM_Queue_PutGetNowait(benchmark::State& state) {
  queue::Queue<int> q;
  int i = 0;
  for (auto _ : state) {
    q.put_nowait(i++);
    benchmark::DoNotOptimize(q.get_nowait());
  }
}
BENCHMARK(BM_Queue_PutGetNowait);

// put, get and task_done: the full bookkeeping of a joinable work queue.
void BM_Queue_PutGetTaskDone(benchmark::State& state) {
  queue::Queue<int> q;
  int i = 0;
  for (auto _ : state) {
    q.put(i++);
    benchmark::DoNotOptimize(q.get());
    q.task_done();
  }
}
BENCHMARK(BM_Queue_PutGetTaskDone);

// A batch of 64 puts then 64 gets, so the deque grows and shrinks across blocks.
void BM_Queue_Batch64(benchmark::State& state) {
  queue::Queue<int> q;
  for (auto _ : state) {
    for (int i = 0; i < 64; ++i)
      q.put(i);
    for (int i = 0; i < 64; ++i)
      benchmark::DoNotOptimize(q.get());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_Queue_Batch64);

void BM_SimpleQueue_PutGet(benchmark::State& state) {
  queue::SimpleQueue<int> q;
  int i = 0;
  for (auto _ : state) {
    q.put(i++);
    benchmark::DoNotOptimize(q.get());
  }
}
BENCHMARK(BM_SimpleQueue_PutGet);

// Reference: std::deque under std::mutex, with a std::condition_variable notified on every
// put (the baseline queue of queue_side_by_side).
void BM_MutexDeque_PutGet(benchmark::State& state) {
  std::mutex mutex;
  std::condition_variable not_empty;
  std::deque<int> items;
  int i = 0;
  for (auto _ : state) {
    {
      std::lock_guard guard(mutex);
      items.push_back(i++);
    }
    not_empty.notify_one();
    std::unique_lock lock(mutex);
    not_empty.wait(lock, [&] { return !items.empty(); });
    benchmark::DoNotOptimize(items.front());
    items.pop_front();
  }
}
BENCHMARK(BM_MutexDeque_PutGet);

}  // namespace
