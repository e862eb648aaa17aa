// ThreadPoolExecutor. The design — per-worker inboxes swapped whole, one word counting the
// queued tasks and carrying the shutdown and broken flags, how idle workers sleep without
// lost wake-ups, and how a blocked worker helps — is in docs/design/thread-pool.md.
#include <sched.h>

#include <thread>

#include "spindle/detail/exception_info.hpp"
#include "spindle/futures.hpp"
#include "spindle/print.hpp"
#include "spindle/threading.hpp"
#include "spindle/trace.hpp"

namespace spindle::futures {
namespace internal {

using spindle::detail::FutureCore;
using spindle::detail::Waiter;

namespace {

// state_: the number of tasks reserved by enqueue and not yet taken by a worker, plus flags.
constexpr std::uint64_t kShutdown = std::uint64_t{1} << 62;
constexpr std::uint64_t kBroken = std::uint64_t{1} << 61;
constexpr std::uint64_t kCountMask = kBroken - 1;

// What run() does with a task, read once per task.
enum Mode : std::uint8_t { run_tasks, cancel_tasks, fail_tasks };

// How long an idle worker spins before it sleeps (a cross-core wake-up costs 20-50 µs on a VM;
// a submitter that sends tasks one after another finds the worker still awake). Measured in
// time: the cost of a pause instruction varies tenfold between processors.
constexpr auto kIdleSpin = std::chrono::microseconds(100);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::size_t process_cpu_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<std::size_t>(CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::atomic<std::size_t> pool_counter{0};

// A lock for critical sections of a few instructions (a push_back, a vector swap), taken
// once per submit. Unlike threading::Lock, releasing it is a plain store, not an atomic
// exchange: a submit pays one locked instruction for it instead of two. A waiter spins, and
// yields now and then in case the holder was preempted.
class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spin = 1; locked_.exchange(true, std::memory_order_acquire); ++spin) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spin % 64 == 0) {
          std::this_thread::yield();
        } else {
          cpu_relax();
        }
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// Slot::sleeping.
enum Sleep : std::uint8_t { awake, idle_sleep, waiting_sleep };

}  // namespace

// One worker's queues and marks, in three cache lines by who writes them: the submitters (the
// inbox), the owner per task (the batch), and rarely anybody (the marks, read by submitters
// on every submit, so they must not share a line with what changes per task).
struct alignas(64) Slot {
  SpinLock inbox_lock;
  std::vector<FutureCore*> inbox;  // guarded by inbox_lock
  // The tasks the worker took from its inbox in one swap. Its owner takes them in order with
  // one fetch_add on `next`; a thief takes one under batch_lock. Only the owner replaces the
  // batch, holding batch_lock. Tasks batch[next...end) have not started.
  alignas(64) threading::Lock batch_lock;
  std::vector<FutureCore*> batch;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> end{0};
  alignas(64) std::shared_ptr<Waiter> waiter = std::make_shared<Waiter>();
  // Why the worker sleeps, if it does: a submit may wake an idle worker for any queued task,
  // but a worker waiting on a future only for a task in its own queues (WorkerHelper).
  std::atomic<std::uint8_t> sleeping{awake};
  // Owner-written marks. running: looking for or running tasks (a submit that sees 0 knows
  // this worker will still look); executing: tasks running now, nested ones included (a
  // waiting worker helps only when every worker executes something).
  std::atomic<int> running{0};
  std::atomic<int> executing{0};
  std::unique_ptr<threading::Thread> thread;
};

// Counts a task the calling worker executes (only the owner writes the count).
struct Running {
  std::atomic<int>& count;
  explicit Running(Slot& worker) : count(worker.executing) {
    count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  }
  ~Running() { count.store(count.load(std::memory_order_relaxed) - 1, std::memory_order_seq_cst); }
};

class ThreadPool final : public std::enable_shared_from_this<ThreadPool> {
 public:
  explicit ThreadPool(ThreadPoolOptions options);
  ~ThreadPool();

  void enqueue(FutureCore* task);
  void shutdown(bool wait, bool cancel_futures);
  std::size_t max_workers() const { return max_workers_; }

 private:
  class WorkerHelper;

  void start_worker();
  void worker_main(std::size_t index);
  FutureCore* take(Slot& self);
  FutureCore* take_own(Slot& self);
  FutureCore* take_local(Slot& self);
  bool has_own_work(Slot& self);
  FutureCore* take_from_batch(Slot& self);
  void share_rest(bool more_in_batch);
  bool refill_batch(Slot& self, Slot& source);
  static bool has_unstarted_batch(const Slot& slot);
  bool any_unstarted_batch();
  bool has_queued_work();
  bool has_idle_or_room();
  void run(FutureCore* task);
  bool spin_for_work();
  bool prepare_sleep(Slot& slot, bool idle);
  void finish_sleep(Slot& slot);
  bool wake_one(Slot* preferred);
  void find_taker(Slot* preferred);
  void break_pool(std::exception_ptr error);
  void fail(FutureCore* task);
  Slot& slot(std::size_t index) { return slots_[index]; }

  const std::size_t max_workers_;
  const std::string prefix_;
  const std::function<void()> initializer_;
  std::unique_ptr<Slot[]> slots_;
  std::atomic<std::size_t> started_{0};
  // Written by every submit: a line of its own, away from what submits only read.
  alignas(64) std::atomic<std::uint64_t> state_{0};
  alignas(64) std::atomic<int> sleepers_{0};
  // Idle workers spinning for work. At most one spins (the others sleep at once): on a small
  // machine spinners take the core from the thread that submits. While one spins, a submit
  // wakes nobody.
  std::atomic<int> spinners_{0};
  std::atomic<std::uint8_t> mode_{run_tasks};
  std::mutex start_mutex_;
  std::string broken_reason_;  // written once, before kBroken is set
};

namespace {
thread_local ThreadPool* current_pool = nullptr;
thread_local Slot* current_slot = nullptr;

// Pools alive at program exit are shut down with wait = true, as Python does.
struct LivePools {
  std::mutex mutex;
  std::vector<std::weak_ptr<ThreadPool>> pools;
};
LivePools& live_pools() {
  static auto* pools = new LivePools();  // immortal: used by the exit hook
  return *pools;
}
void shut_down_live_pools() {
  std::vector<std::shared_ptr<ThreadPool>> alive;
  {
    LivePools& live = live_pools();
    std::lock_guard guard(live.mutex);
    for (auto& weak : live.pools) {
      if (auto pool = weak.lock()) alive.push_back(std::move(pool));
    }
  }
  for (auto& pool : alive)
    pool->shutdown(true, false);
}
std::once_flag exit_hook_once;
}  // namespace

// Lets a worker that blocks on a future run its pool's queued tasks meanwhile.
class ThreadPool::WorkerHelper final : public spindle::detail::Helper {
 public:
  WorkerHelper(ThreadPool& pool, Slot& slot) : pool_(pool), slot_(slot) {}
  bool run_one_queued() override {
    // Each task run here nests on this worker's stack, over the one that waits.
    if (depth_ >= kMaxHelpDepth || !pool_.has_queued_work()) return false;
    // Run it here only when the pool is saturated (the case where not helping deadlocks):
    // nested, it could wait for the very frame below it, which cannot finish until it
    // returns. An idle worker, or one the pool may still start, takes it instead.
    if (pool_.has_idle_or_room()) {
      pool_.find_taker(nullptr);
      return false;
    }
    // Only a task from this worker's own queues: one taken from another worker could wait for
    // a frame buried in that worker's stack while that worker's top frame waits for one
    // buried here, and neither could ever return (docs/design/thread-pool.md).
    FutureCore* task = pool_.take_own(slot_);
    if (task == nullptr) return false;
    const Running running(slot_);
    ++depth_;
    pool_.run(task);
    --depth_;
    return true;
  }
  bool set_waiting(bool waiting) override {
    if (waiting) return pool_.prepare_sleep(slot_, false);
    pool_.finish_sleep(slot_);
    return true;
  }

 private:
  // Deep enough for any recursion a pool runs (fibonacci(25) nests about 25); a worker
  // waiting on many outside futures must not overflow its stack.
  static constexpr int kMaxHelpDepth = 64;
  ThreadPool& pool_;
  Slot& slot_;
  int depth_ = 0;
};

ThreadPool::ThreadPool(ThreadPoolOptions options)
    : max_workers_(
          options.max_workers.value_or(std::min<std::size_t>(32, process_cpu_count() + 4))),
      prefix_(options.thread_name_prefix.empty()
                  ? "ThreadPoolExecutor-" + std::to_string(pool_counter.fetch_add(1))
                  : std::move(options.thread_name_prefix)),
      initializer_(std::move(options.initializer)) {
  if (max_workers_ == 0) throw std::invalid_argument("max_workers must be greater than 0");
  slots_ = std::make_unique<Slot[]>(max_workers_);
}

ThreadPool::~ThreadPool() {
  // Tasks still queued here were reserved by an enqueue racing with a shutdown(wait=false)
  // that no worker lived to see: cancel them rather than leak them.
  for (std::size_t i = 0; i < max_workers_; ++i) {
    for (FutureCore* task : slots_[i].inbox) {
      task->cancel();
      task->release();
    }
  }
}

void ThreadPool::enqueue(FutureCore* task) {
  // Reserving first (one seq_cst read-modify-write) orders this submit against a worker going
  // to sleep and against shutdown: a reservation made before the shutdown flag is run.
  const std::uint64_t previous = state_.fetch_add(1, std::memory_order_seq_cst);
  if ((previous & (kShutdown | kBroken)) != 0) {
    state_.fetch_sub(1, std::memory_order_seq_cst);
    if ((previous & kBroken) != 0) throw BrokenThreadPool(broken_reason_);
    throw std::logic_error("cannot schedule new futures after shutdown");
  }
  Slot* target;
  bool first_worker = false;
  if (current_pool == this) {
    target = current_slot;  // a task submitting more work: keep it local
  } else {
    std::size_t started = started_.load(std::memory_order_acquire);
    if (started == 0) {
      start_worker();  // the first worker is this task's taker: one thread, as Python starts
      started = started_.load(std::memory_order_acquire);
      first_worker = true;
    }
    thread_local std::size_t round_robin = 0;
    target = &slot(round_robin++ % started);
  }
  {
    std::scoped_lock guard(target->inbox_lock);
    std::vector<FutureCore*>& inbox = target->inbox;
    inbox.push_back(task);
    // The buffer was a worker's batch: fetch the line the next pushes write ahead of them.
    if (inbox.size() + 8 < inbox.capacity()) __builtin_prefetch(inbox.data() + inbox.size() + 8, 1);
  }
  if (!first_worker) find_taker(target);
}

// Makes sure some worker will take queued work: a spinning worker will find it; otherwise wake
// a sleeping one; with no idle worker at all, start another, as Python does.
void ThreadPool::find_taker(Slot* preferred) {
  if (spinners_.load(std::memory_order_seq_cst) > 0) return;
  // Sleepers that wait on futures may take only their own tasks: if none could be woken, go
  // on as if nobody slept.
  if (sleepers_.load(std::memory_order_seq_cst) > 0 && wake_one(preferred)) return;
  // A worker between tasks (running none, not yet spinning or asleep) re-reads the count
  // before it sleeps, so it will take the work: no need for another thread.
  const std::size_t started = started_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < started; ++i) {
    if (&slot(i) != current_slot && slot(i).running.load(std::memory_order_seq_cst) == 0) return;
  }
  if (started < max_workers_) start_worker();
}

void ThreadPool::start_worker() {
  std::lock_guard guard(start_mutex_);
  const std::size_t index = started_.load(std::memory_order_relaxed);
  if (index >= max_workers_) return;
  if ((state_.load(std::memory_order_acquire) & (kShutdown | kBroken)) != 0 && index > 0) return;
  Slot& worker = slot(index);
  worker.thread = std::make_unique<threading::Thread>(
      threading::ThreadOptions{.name = prefix_ + "_" + std::to_string(index), .daemon = true},
      [self = shared_from_this(), index] { self->worker_main(index); });
  worker.thread->start();
  started_.store(index + 1, std::memory_order_release);
}

void ThreadPool::worker_main(std::size_t index) {
  Slot& self = slot(index);
  current_pool = this;
  current_slot = &self;
  spindle::detail::current_waiter_slot() = self.waiter;
  WorkerHelper helper(*this, self);
  spindle::detail::current_helper() = &helper;

  if (initializer_) {
    try {
      initializer_();
    } catch (...) {
      break_pool(std::current_exception());
    }
  }
  for (;;) {
    // Busy before looking: a submit that sees this worker idle (running nothing) leaves the
    // task to it, so the look for remaining work must come after the mark (Dekker again).
    // The marks change only between idle and busy, not per task: a worker that keeps
    // finding tasks stays busy (and takes the next task itself).
    // executing is set once a task is in hand: a worker only looking for work is idle to a
    // waiting worker deciding whether to run a queued task itself (WorkerHelper).
    self.running.store(1, std::memory_order_seq_cst);
    if (FutureCore* task = take(self)) {
      self.executing.store(1, std::memory_order_seq_cst);
      do {
        run(task);
      } while ((task = take(self)) != nullptr);
      self.executing.store(0, std::memory_order_seq_cst);
    }
    self.running.store(0, std::memory_order_seq_cst);
    if (spin_for_work()) continue;
    const std::uint64_t state = state_.load(std::memory_order_acquire);
    if ((state & (kShutdown | kBroken)) != 0 && (state & kCountMask) == 0) break;
    if (!prepare_sleep(self, true)) continue;
    self.waiter->wait(nullptr);
    finish_sleep(self);
  }
  spindle::detail::current_helper() = nullptr;
  current_pool = nullptr;
  current_slot = nullptr;
}

bool ThreadPool::has_queued_work() {
  return (state_.load(std::memory_order_seq_cst) & kCountMask) != 0 || any_unstarted_batch();
}

// Is there a worker not running any task, or room to start one?
bool ThreadPool::has_idle_or_room() {
  const std::size_t started = started_.load(std::memory_order_acquire);
  if (started < max_workers_) return true;
  for (std::size_t i = 0; i < started; ++i) {
    if (slot(i).executing.load(std::memory_order_seq_cst) == 0) return true;
  }
  return false;
}

bool ThreadPool::any_unstarted_batch() {
  const std::size_t started = started_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < started; ++i) {
    if (has_unstarted_batch(slot(i))) return true;
  }
  return false;
}

// A worker waiting on a future takes its own newest task first: the work it just submitted,
// most likely what it waits for (depth-first, so the stack stays shallow); then its batch.
// Never another worker's (WorkerHelper::run_one_queued says why).
FutureCore* ThreadPool::take_own(Slot& self) {
  {
    std::scoped_lock guard(self.inbox_lock);
    if (!self.inbox.empty()) {
      FutureCore* task = self.inbox.back();
      self.inbox.pop_back();
      state_.fetch_sub(1, std::memory_order_relaxed);
      return task;
    }
  }
  return take_local(self);
}

// The next task of this worker's batch, refilled from its own inbox when exhausted.
FutureCore* ThreadPool::take_local(Slot& self) {
  if (FutureCore* task = take_from_batch(self)) return task;
  if (refill_batch(self, self)) return take_from_batch(self);
  return nullptr;
}

bool ThreadPool::has_own_work(Slot& self) {
  {
    std::scoped_lock guard(self.inbox_lock);
    if (!self.inbox.empty()) return true;
  }
  return has_unstarted_batch(self);
}

FutureCore* ThreadPool::take(Slot& self) {
  if (FutureCore* task = take_local(self)) return task;
  // Steal: another worker's whole inbox, or else one task of its batch.
  const std::size_t started = started_.load(std::memory_order_acquire);
  const std::size_t own = static_cast<std::size_t>(&self - slots_.get());
  for (std::size_t k = 1; k < started; ++k) {
    if (refill_batch(self, slot((own + k) % started))) return take_from_batch(self);
  }
  for (std::size_t k = 1; k < started; ++k) {
    Slot& victim = slot((own + k) % started);
    if (!has_unstarted_batch(victim) || !victim.batch_lock.try_lock()) continue;
    FutureCore* task = nullptr;
    const std::size_t index = victim.next.fetch_add(1, std::memory_order_acq_rel);
    const std::size_t end = victim.end.load(std::memory_order_acquire);
    if (index < end) task = victim.batch[index];
    victim.batch_lock.unlock();
    if (task != nullptr) {
      share_rest(index + 1 < end);
      return task;
    }
  }
  return nullptr;
}

FutureCore* ThreadPool::take_from_batch(Slot& self) {
  const std::size_t end = self.end.load(std::memory_order_relaxed);
  if (self.next.load(std::memory_order_relaxed) >= end) return nullptr;
  const std::size_t index = self.next.fetch_add(1, std::memory_order_acq_rel);
  if (index >= end) return nullptr;
  // The next task was written by the thread that submitted it: start fetching it now.
  if (index + 1 < end) __builtin_prefetch(self.batch[index + 1]);
  share_rest(index + 1 < end);
  return self.batch[index];
}

// Called with a task just taken. A submit wakes nobody while a worker spins, and the task may
// wait for one queued behind it: make sure an idle worker (or a new one) will take the rest.
// While the batch lasts this reads only lines that change when a worker goes idle or busy;
// the queue count and the other batches, which change all the time, only at its last task.
void ThreadPool::share_rest(bool more_in_batch) {
  if (more_in_batch || (state_.load(std::memory_order_seq_cst) & kCountMask) != 0 ||
      any_unstarted_batch()) {
    find_taker(nullptr);
  }
}

bool ThreadPool::has_unstarted_batch(const Slot& slot) {
  return slot.next.load(std::memory_order_seq_cst) < slot.end.load(std::memory_order_seq_cst);
}

// Replaces `self`'s (exhausted) batch with the whole inbox of `source` (its own, or a victim's,
// taken only if its lock is free). The finished batch's buffer becomes the inbox, so buffers
// go round and a submit never allocates. The batch is published before the count drops, so a
// worker deciding to sleep sees the tasks in one place or the other (prepare_sleep).
bool ThreadPool::refill_batch(Slot& self, Slot& source) {
  std::size_t count;
  {
    std::scoped_lock batch_guard(self.batch_lock);  // thieves only try_lock it
    if (&source == &self) {
      source.inbox_lock.lock();
    } else if (!source.inbox_lock.try_lock()) {
      return false;
    }
    count = source.inbox.size();
    if (count != 0) {
      self.batch.clear();  // exhausted: every task in it was taken
      self.batch.swap(source.inbox);
    }
    source.inbox_lock.unlock();
    if (count == 0) return false;
    self.next.store(0, std::memory_order_seq_cst);
    self.end.store(count, std::memory_order_seq_cst);
  }
  state_.fetch_sub(count, std::memory_order_seq_cst);
  return true;
}

void ThreadPool::run(FutureCore* task) {
  switch (mode_.load(std::memory_order_acquire)) {
    case run_tasks: {
      const trace::ScopedSpan span("ThreadPoolExecutor", [] { return std::string("task"); });
      task->execute();
      break;
    }
    case cancel_tasks:
      task->cancel();
      task->execute();  // runs it if it had already been marked running by someone else
      break;
    case fail_tasks:
      fail(task);
      return;
  }
  task->release();
}

// idle: the worker's own loop, which must also wake for shutdown; otherwise a worker waiting
// on a future, which sleeps through shutdown until its future completes.
// Spins briefly for new work, if no other worker is spinning; true if work appeared. A
// submit that sees a spinner wakes nobody, so the spinner re-checks for work when it stops
// (prepare_sleep) before it sleeps.
bool ThreadPool::spin_for_work() {
  int expected = 0;
  if (!spinners_.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) return false;
  bool work_appeared = false;
  const auto until = spindle::detail::Clock::now() + kIdleSpin;
  // On one CPU the submitter runs only when this thread gives the CPU up: yield every time.
  const unsigned yield_every = spindle::detail::single_cpu_process() ? 1 : 64;
  for (unsigned spin = 1; !work_appeared; ++spin) {
    if (spin % yield_every == 0) {
      if (spindle::detail::Clock::now() >= until) break;
      std::this_thread::yield();  // let a submitter on this core run
    } else {
      cpu_relax();
    }
    work_appeared = (state_.load(std::memory_order_relaxed) & kCountMask) != 0;
  }
  spinners_.store(0, std::memory_order_seq_cst);
  return work_appeared;
}

bool ThreadPool::prepare_sleep(Slot& worker, bool idle) {
  worker.sleeping.store(idle ? idle_sleep : waiting_sleep, std::memory_order_seq_cst);
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  // Dekker with enqueue: it bumps state_ then reads sleepers_; we bumped sleepers_ and now
  // read state_ (or our inbox, which it fills before it reads sleepers_). One of the two
  // sees the other.
  bool work;
  if (idle) {
    const std::uint64_t state = state_.load(std::memory_order_seq_cst);
    // Tasks another worker took into its batch and has not started can be stolen too.
    work =
        (state & kCountMask) != 0 || (state & (kShutdown | kBroken)) != 0 || any_unstarted_batch();
  } else {
    work = has_own_work(worker);  // all a waiting worker may run
  }
  if (work) {
    finish_sleep(worker);
    return false;
  }
  return true;
}

void ThreadPool::finish_sleep(Slot& worker) {
  if (worker.sleeping.exchange(awake, std::memory_order_acq_rel) != awake) {
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

bool ThreadPool::wake_one(Slot* preferred) {
  // The worker whose inbox got the task may take it whatever it waits for; any other only if
  // it is idle (a worker waiting on a future runs only its own tasks).
  const auto try_wake = [this](Slot& worker, bool is_preferred) {
    const std::uint8_t sleep = worker.sleeping.load(std::memory_order_relaxed);
    if (sleep == awake || (sleep == waiting_sleep && !is_preferred)) return false;
    if (worker.sleeping.exchange(awake, std::memory_order_acq_rel) == awake) return false;
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    worker.waiter->signal();
    return true;
  };
  if (preferred != nullptr && try_wake(*preferred, true)) return true;
  const std::size_t started = started_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < started; ++i) {
    if (try_wake(slot(i), false)) return true;
  }
  return false;
}

void ThreadPool::fail(FutureCore* task) {
  if (task->set_running_or_notify_cancel()) {
    task->claim_completion();
    task->publish(std::make_exception_ptr(BrokenThreadPool(broken_reason_)));
  }
  task->release();
}

void ThreadPool::break_pool(std::exception_ptr error) {
  {
    std::lock_guard guard(start_mutex_);
    if ((state_.load(std::memory_order_acquire) & kBroken) == 0) {
      spindle::print(stderr, "Exception in initializer:\n{}",
                     spindle::detail::format_exception(error));
      broken_reason_ = "A thread initializer failed, the thread pool is not usable anymore";
      mode_.store(fail_tasks, std::memory_order_release);
      state_.fetch_or(kBroken, std::memory_order_seq_cst);
    }
  }
  // Fail what is queued, including tasks reserved before the flag and pushed after: wait
  // until every reservation has been taken.
  while ((state_.load(std::memory_order_acquire) & kCountMask) != 0) {
    const std::size_t started = started_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < started; ++i) {
      std::vector<FutureCore*> taken;
      {
        std::scoped_lock guard(slot(i).inbox_lock);
        taken.swap(slot(i).inbox);
      }
      state_.fetch_sub(taken.size(), std::memory_order_relaxed);
      for (FutureCore* task : taken)
        fail(task);
    }
    std::this_thread::yield();
  }
  for (std::size_t i = 0; i < started_.load(std::memory_order_acquire); ++i)
    wake_one(&slot(i));
}

void ThreadPool::shutdown(bool wait, bool cancel_futures) {
  if (cancel_futures) {
    std::uint8_t expected = run_tasks;
    mode_.compare_exchange_strong(expected, cancel_tasks, std::memory_order_acq_rel);
    const std::size_t started = started_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < started; ++i) {
      std::scoped_lock guard(slot(i).inbox_lock);
      for (FutureCore* task : slot(i).inbox)
        task->cancel();
    }
  }
  std::size_t started;
  {
    std::lock_guard guard(start_mutex_);
    state_.fetch_or(kShutdown, std::memory_order_seq_cst);
    started = started_.load(std::memory_order_acquire);
  }
  for (std::size_t i = 0; i < started; ++i) {
    slot(i).waiter->signal();
  }
  if (!wait) return;
  // A submit that reserved its task before the flag may still be starting the first worker:
  // join until every reservation is taken and no new worker appeared.
  std::size_t joined = 0;
  for (;;) {
    for (; joined < started; ++joined) {
      threading::Thread& worker = *slot(joined).thread;
      if (worker.ident() != threading::get_ident()) worker.join();
    }
    started = started_.load(std::memory_order_acquire);
    if (joined == started && (state_.load(std::memory_order_seq_cst) & kCountMask) == 0) break;
    std::this_thread::yield();
  }
}

}  // namespace internal

ThreadPoolExecutor::ThreadPoolExecutor(ThreadPoolOptions options)
    : pool_(std::make_shared<internal::ThreadPool>(std::move(options))) {
  std::call_once(internal::exit_hook_once, [] { std::atexit(internal::shut_down_live_pools); });
  internal::LivePools& live = internal::live_pools();
  std::lock_guard guard(live.mutex);
  std::erase_if(live.pools, [](const auto& weak) { return weak.expired(); });
  live.pools.push_back(pool_);
}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  pool_->shutdown(true, false);
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  pool_->shutdown(wait, cancel_futures);
}

std::size_t ThreadPoolExecutor::max_workers() const {
  return pool_->max_workers();
}

void ThreadPoolExecutor::enqueue(spindle::detail::FutureCore* task) {
  pool_->enqueue(task);
}

}  // namespace spindle::futures
