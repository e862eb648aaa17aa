// The process-shared synchronization primitives: futex words in shared memory. See
// docs/design/shared-memory.md.
#include <link.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <system_error>

#include "../core/futex.hpp"
#include "spindle/detail/multiprocessing_shared.hpp"

namespace spindle::multiprocessing {
namespace detail {

namespace {

constexpr int kSpins = 100;

// The kernel thread id, cached per thread (and per process, for forked children).
int current_tid() {
  thread_local int tid = 0;
  thread_local int for_pid = 0;
  const int pid = current_pid();
  if (for_pid != pid) {
    tid = static_cast<int>(::syscall(SYS_gettid));
    for_pid = pid;
  }
  return tid;
}

template <class State>
Place create_state(Kind kind, std::size_t size = sizeof(State)) {
  Place place = create_place(size);
  new (place.as<State>()) State{};
  place.as<State>()->kind = kind;
  return place;
}

}  // namespace

Acquired lock_word_acquire(std::atomic<std::uint32_t>& word, const Clock::time_point* deadline) {
  const auto me = static_cast<std::uint32_t>(current_pid());
  std::uint32_t current = 0;
  if (word.compare_exchange_strong(current, me, std::memory_order_acquire,
                                   std::memory_order_relaxed)) {
    return Acquired::yes;
  }
  if (deadline != nullptr && Clock::now() >= *deadline) return Acquired::no;
  for (int spin = 0; spin < kSpins; ++spin) {
    current = word.load(std::memory_order_relaxed);
    if (current == 0 && word.compare_exchange_weak(current, me, std::memory_order_acquire,
                                                   std::memory_order_relaxed)) {
      return Acquired::yes;
    }
    spindle::detail::cpu_relax();
  }
  // Sleep with the waiters mark set, in slices of kOwnerProbeInterval: after each the holder's
  // pid is checked, and a dead holder's lock is taken over.
  auto next_probe = Clock::now() + kOwnerProbeInterval;
  for (;;) {
    current = word.load(std::memory_order_relaxed);
    if (current == 0) {
      if (word.compare_exchange_weak(current, me | kLockWaiters, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
        return Acquired::yes;
      }
      continue;
    }
    if ((current & kLockWaiters) == 0) {
      if (!word.compare_exchange_weak(current, current | kLockWaiters, std::memory_order_relaxed)) {
        continue;
      }
      current |= kLockWaiters;
    }
    const auto now = Clock::now();
    if (deadline != nullptr && now >= *deadline) return Acquired::no;
    if (now >= next_probe) {
      next_probe = now + kOwnerProbeInterval;
      const auto holder = static_cast<int>(current & ~kLockWaiters);
      if (holder != static_cast<int>(me) && process_gone(holder) &&
          word.compare_exchange_strong(current, me | kLockWaiters, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return Acquired::owner_died;
      }
      continue;
    }
    const auto wake_at = deadline != nullptr ? std::min(*deadline, next_probe) : next_probe;
    spindle::detail::futex_wait(word, current, &wake_at, true);
  }
}

void lock_word_release(std::atomic<std::uint32_t>& word) {
  const std::uint32_t previous = word.exchange(0, std::memory_order_release);
  if (previous == 0) throw std::logic_error("release unlocked lock");
  if ((previous & kLockWaiters) != 0) spindle::detail::futex_wake(word, 1, true);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Lock, RLock
// ---------------------------------------------------------------------------------------

Lock::Lock() : PlaceHandle(detail::create_state<detail::LockState>(detail::Kind::lock)) {}

bool Lock::acquire_until(const detail::Clock::time_point* deadline) {
  return detail::lock_word_acquire(state().word, deadline) != detail::Acquired::no;
}

void Lock::release() {
  detail::lock_word_release(state().word);
}

bool Lock::locked() const {
  return state().word.load(std::memory_order_relaxed) != 0;
}

RLock::RLock() : PlaceHandle(detail::create_state<detail::RLockState>(detail::Kind::rlock)) {}

bool RLock::owned_by_caller() const {
  const auto& s = state();
  return s.owner.load(std::memory_order_relaxed) == detail::current_tid() &&
         (s.word.load(std::memory_order_relaxed) & ~detail::kLockWaiters) ==
             static_cast<std::uint32_t>(detail::current_pid());
}

bool RLock::acquire_until(const detail::Clock::time_point* deadline) {
  auto& s = state();
  if (owned_by_caller()) {
    ++s.count;
    return true;
  }
  if (detail::lock_word_acquire(s.word, deadline) == detail::Acquired::no) return false;
  s.owner.store(detail::current_tid(), std::memory_order_relaxed);
  s.count = 1;
  return true;
}

void RLock::release() {
  if (!owned_by_caller()) throw std::logic_error("cannot release un-acquired lock");
  auto& s = state();
  if (--s.count == 0) {
    s.owner.store(0, std::memory_order_relaxed);
    detail::lock_word_release(s.word);
  }
}

bool RLock::locked() const {
  return state().word.load(std::memory_order_relaxed) != 0;
}

std::uint32_t RLock::release_all() {
  auto& s = state();
  const std::uint32_t levels = s.count;
  s.count = 0;
  s.owner.store(0, std::memory_order_relaxed);
  detail::lock_word_release(s.word);
  return levels;
}

void RLock::acquire_levels(std::uint32_t levels) {
  auto& s = state();
  detail::lock_word_acquire(s.word, nullptr);
  s.owner.store(detail::current_tid(), std::memory_order_relaxed);
  s.count = levels;
}

// ---------------------------------------------------------------------------------------
// Condition
// ---------------------------------------------------------------------------------------

namespace {

constexpr std::size_t round_up(std::size_t size, std::size_t to) {
  return (size + to - 1) / to * to;
}

detail::Place create_condition_state(std::size_t extra) {
  constexpr std::size_t size = round_up(sizeof(detail::ConditionState), 64);
  detail::Place place = detail::create_place(size + extra);
  auto* state = new (place.as<detail::ConditionState>()) detail::ConditionState{};
  state->kind = detail::Kind::condition;
  state->first = state->last = state->free_list = -1;
  state->never_used = 0;
  return place;
}

void unlink_slot(detail::ConditionState& state, std::int32_t index) {
  auto& slot = state.slots[index];
  (slot.previous >= 0 ? state.slots[slot.previous].next : state.first) = slot.next;
  (slot.next >= 0 ? state.slots[slot.next].previous : state.last) = slot.previous;
}

void free_slot(detail::ConditionState& state, std::int32_t index) {
  state.slots[index].next = state.free_list;
  state.free_list = index;
}

}  // namespace

Condition::Condition()
    : place_(create_condition_state(sizeof(detail::RLockState))), lock_(RLock(detail::Place{})) {
  const std::size_t lock_offset = round_up(sizeof(detail::ConditionState), 64);
  detail::Place lock_place{place_.segment, lock_offset};
  new (lock_place.as<detail::RLockState>()) detail::RLockState{};
  lock_place.as<detail::RLockState>()->kind = detail::Kind::rlock;
  lock_ = RLock(std::move(lock_place));
}

Condition::Condition(Lock lock) : place_(create_condition_state(0)), lock_(std::move(lock)) {}
Condition::Condition(RLock lock) : place_(create_condition_state(0)), lock_(std::move(lock)) {}

void Condition::acquire() {
  std::visit([](auto& lock) { lock.acquire(); }, lock_);
}

void Condition::release() {
  std::visit([](auto& lock) { lock.release(); }, lock_);
}

void Condition::check_owned(const char* operation) const {
  const bool owned = std::visit(
      [](const auto& lock) {
        if constexpr (std::is_same_v<std::decay_t<decltype(lock)>, RLock>) {
          return lock.owned_by_caller();
        } else {
          return lock.locked();  // a Lock has no owner: held by someone counts, as CPython
        }
      },
      lock_);
  if (!owned) throw std::logic_error(std::string("cannot ") + operation + " on un-acquired lock");
}

bool Condition::wait_until(const detail::Clock::time_point* deadline) {
  check_owned("wait");
  auto& s = state();
  std::int32_t index;
  if (s.free_list >= 0) {
    index = s.free_list;
    s.free_list = s.slots[index].next;
  } else if (s.never_used < detail::kConditionSlots) {
    index = s.never_used++;
  } else {
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                            "Condition: more than " + std::to_string(detail::kConditionSlots) +
                                " threads waiting at once");
  }
  auto& slot = s.slots[index];
  slot.notified.store(0, std::memory_order_relaxed);
  slot.pid = detail::current_pid();
  slot.next = -1;
  slot.previous = s.last;
  (s.last >= 0 ? s.slots[s.last].next : s.first) = index;
  s.last = index;

  std::uint32_t levels = 0;
  if (auto* rlock = std::get_if<RLock>(&lock_)) {
    levels = rlock->release_all();
  } else {
    std::get<Lock>(lock_).release();
  }
  while (slot.notified.load(std::memory_order_acquire) == 0) {
    if (deadline != nullptr && detail::Clock::now() >= *deadline) break;
    spindle::detail::futex_wait(slot.notified, 0, deadline, true);
  }
  if (auto* rlock = std::get_if<RLock>(&lock_)) {
    rlock->acquire_levels(levels);
  } else {
    std::get<Lock>(lock_).acquire();
  }
  // With the lock held again `notified` is settled: a notifier took this slot off the list and
  // set it, or did not, and then the waiter (which timed out) takes itself off.
  const bool notified = slot.notified.load(std::memory_order_relaxed) != 0;
  if (!notified) unlink_slot(s, index);
  free_slot(s, index);
  return notified;
}

void Condition::notify(std::size_t n) {
  check_owned("notify");
  auto& s = state();
  const int me = detail::current_pid();
  while (n > 0 && s.first >= 0) {
    const std::int32_t index = s.first;
    auto& slot = s.slots[index];
    unlink_slot(s, index);
    if (slot.pid != me && detail::process_gone(slot.pid)) {
      free_slot(s, index);  // its process died waiting: the notification goes to the next
      continue;
    }
    slot.notified.store(1, std::memory_order_release);
    spindle::detail::futex_wake(slot.notified, 1, true);
    --n;
  }
}

// ---------------------------------------------------------------------------------------
// Semaphore, Event
// ---------------------------------------------------------------------------------------

namespace {
detail::Place create_semaphore(std::ptrdiff_t value, bool bounded) {
  if (value < 0 || value > INT32_MAX) {
    throw std::invalid_argument("semaphore initial value must be >= 0 and < 2**31");
  }
  detail::Place place = detail::create_state<detail::SemaphoreState>(detail::Kind::semaphore);
  auto* state = place.as<detail::SemaphoreState>();
  state->value.store(static_cast<std::uint32_t>(value), std::memory_order_relaxed);
  state->bound = bounded ? static_cast<std::uint32_t>(value) : detail::SemaphoreState::kUnbounded;
  return place;
}
}  // namespace

Semaphore::Semaphore(std::ptrdiff_t value) : PlaceHandle(create_semaphore(value, false)) {}
Semaphore::Semaphore(std::ptrdiff_t value, bool bounded)
    : PlaceHandle(create_semaphore(value, bounded)) {}

bool Semaphore::acquire_until(const detail::Clock::time_point* deadline) {
  auto& s = state();
  for (;;) {
    std::uint32_t value = s.value.load(std::memory_order_relaxed);
    while (value > 0) {
      if (s.value.compare_exchange_weak(value, value - 1, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
        return true;
      }
    }
    if (deadline != nullptr && detail::Clock::now() >= *deadline) return false;
    s.waiters.fetch_add(1, std::memory_order_seq_cst);
    if (s.value.load(std::memory_order_seq_cst) == 0)
      spindle::detail::futex_wait(s.value, 0, deadline, true);
    s.waiters.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Semaphore::release(std::ptrdiff_t n) {
  if (n < 1) throw std::invalid_argument("n must be one or more");
  auto& s = state();
  std::uint32_t value = s.value.load(std::memory_order_relaxed);
  std::uint32_t next;
  do {
    const std::int64_t sum = static_cast<std::int64_t>(value) + n;
    if (s.bound != detail::SemaphoreState::kUnbounded && sum > s.bound) {
      throw std::invalid_argument("Semaphore released too many times");
    }
    if (sum > INT32_MAX) throw std::invalid_argument("Semaphore value would exceed 2**31 - 1");
    next = static_cast<std::uint32_t>(sum);
  } while (!s.value.compare_exchange_weak(value, next, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
  if (s.waiters.load(std::memory_order_seq_cst) > 0) {
    spindle::detail::futex_wake(s.value, static_cast<int>(std::min<std::ptrdiff_t>(n, INT_MAX)),
                                true);
  }
}

std::ptrdiff_t Semaphore::get_value() const {
  return state().value.load(std::memory_order_relaxed);
}

namespace {
// Event's word: bit 0 the flag, bit 1 "someone sleeps", the rest a generation that every set()
// advances, so a waiter woken by set() knows it even if clear() came first.
constexpr std::uint32_t kEventSet = 1;
constexpr std::uint32_t kEventWaiters = 2;
constexpr std::uint32_t kEventGeneration = 4;
}  // namespace

Event::Event() : PlaceHandle(detail::create_state<detail::EventState>(detail::Kind::event)) {}

bool Event::is_set() const {
  return (state().word.load(std::memory_order_acquire) & kEventSet) != 0;
}

void Event::set() {
  auto& word = state().word;
  std::uint32_t current = word.load(std::memory_order_relaxed);
  std::uint32_t next;
  do {
    if ((current & kEventSet) != 0) return;
    next = ((current & ~kEventWaiters) + kEventGeneration) | kEventSet;
  } while (!word.compare_exchange_weak(current, next, std::memory_order_release,
                                       std::memory_order_relaxed));
  if ((current & kEventWaiters) != 0) spindle::detail::futex_wake(word, INT_MAX, true);
}

void Event::clear() {
  state().word.fetch_and(~kEventSet, std::memory_order_release);
}

bool Event::wait_until(const detail::Clock::time_point* deadline) {
  auto& word = state().word;
  std::uint32_t current = word.load(std::memory_order_acquire);
  const std::uint32_t generation = current & ~(kEventSet | kEventWaiters);
  for (;;) {
    if ((current & kEventSet) != 0 || (current & ~(kEventSet | kEventWaiters)) != generation) {
      return true;
    }
    if (deadline != nullptr && detail::Clock::now() >= *deadline) return false;
    if ((current & kEventWaiters) == 0) {
      if (!word.compare_exchange_weak(current, current | kEventWaiters,
                                      std::memory_order_acquire)) {
        continue;
      }
      current |= kEventWaiters;
    }
    spindle::detail::futex_wait(word, current, deadline, true);
    current = word.load(std::memory_order_acquire);
  }
}

// ---------------------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------------------

// CPython's algorithm, as threading::Barrier (src/threading/barrier.cpp has the transition
// table), on a state in shared memory guarded by a process-shared RLock.
struct Barrier::State {
  enum Phase : std::uint32_t { filling, draining, resetting, broken };
  detail::Kind kind;
  std::uint32_t parties;
  Phase phase;
  std::uint32_t padding;
  std::uint64_t count;
  std::int64_t timeout_ns;  // wait()'s default; -1: none
  detail::RLockState lock;
  detail::ConditionState changed;
};

detail::Place Barrier::create(std::size_t parties, const BarrierOptions& options) {
  if (parties == 0) throw std::invalid_argument("parties must be >= 1");
  if (parties > detail::kConditionSlots) {
    // Every party but the last waits on the barrier's Condition, which has this many slots;
    // more would break a wait midway and leave the others waiting forever.
    throw std::invalid_argument("parties must be <= " + std::to_string(detail::kConditionSlots));
  }
  // Checked and clamped (kTimeoutMax), so wait()'s now() + timeout cannot overflow.
  std::int64_t timeout_ns = -1;
  if (options.timeout) timeout_ns = spindle::detail::to_timeout(*options.timeout).count();
  detail::Place place = detail::create_place(sizeof(Barrier::State));
  auto* state = new (place.as<Barrier::State>()) Barrier::State{};
  state->kind = detail::Kind::barrier;
  state->parties = static_cast<std::uint32_t>(parties);
  state->timeout_ns = timeout_ns;
  state->lock.kind = detail::Kind::rlock;
  state->changed.kind = detail::Kind::condition;
  state->changed.first = state->changed.last = state->changed.free_list = -1;
  return place;
}

Barrier::Barrier(std::size_t parties, BarrierOptions options)
    : Barrier(create(parties, options), options.action) {}

Barrier::Barrier(detail::Place place, void (*action)())
    : place_(std::move(place)),
      action_(action),
      lock_(detail::Place{place_.segment, place_.offset + offsetof(State, lock)}),
      changed_(detail::Place{place_.segment, place_.offset + offsetof(State, changed)}, lock_) {}

Barrier::State& Barrier::state() const {
  return *place_.as<State>();
}

std::size_t Barrier::wait() {
  const std::int64_t timeout = state().timeout_ns;
  if (timeout >= 0) {
    return wait_until(detail::Clock::now() + std::chrono::nanoseconds(timeout));
  }
  return wait_until(std::nullopt);
}

std::size_t Barrier::wait_until(std::optional<detail::Clock::time_point> deadline) {
  std::unique_lock guard(lock_);
  enter();
  auto& s = state();
  const std::size_t index = s.count++;
  struct Leave {
    Barrier* barrier;
    ~Leave() { barrier->leave(); }
  } leave_on_exit{this};
  if (index + 1 == s.parties) {
    release_round();
  } else {
    wait_round(deadline);
  }
  return index;
}

void Barrier::enter() {
  while (state().phase == State::draining || state().phase == State::resetting)
    changed_.wait();
  if (state().phase == State::broken) throw threading::BrokenBarrierError();
}

void Barrier::release_round() {
  try {
    if (action_ != nullptr) action_();
    state().phase = State::draining;
    changed_.notify_all();
  } catch (...) {
    break_barrier();
    throw;
  }
}

void Barrier::wait_round(std::optional<detail::Clock::time_point> deadline) {
  const auto released = [&] { return state().phase != State::filling; };
  bool done;
  if (deadline) {
    done = changed_.wait_for(
        released, std::max(*deadline - detail::Clock::now(), detail::Clock::duration::zero()));
  } else {
    done = changed_.wait_for(released);
  }
  if (!done) {
    break_barrier();
    throw threading::BrokenBarrierError();
  }
  if (state().phase == State::broken || state().phase == State::resetting) {
    throw threading::BrokenBarrierError();
  }
}

void Barrier::leave() {
  auto& s = state();
  --s.count;
  if (s.count == 0 && (s.phase == State::draining || s.phase == State::resetting)) {
    s.phase = State::filling;
    changed_.notify_all();
  }
}

void Barrier::reset() {
  std::lock_guard guard(lock_);
  auto& s = state();
  if (s.count > 0) {
    if (s.phase == State::filling || s.phase == State::broken) s.phase = State::resetting;
  } else {
    s.phase = State::filling;
  }
  changed_.notify_all();
}

void Barrier::abort() {
  std::lock_guard guard(lock_);
  break_barrier();
}

void Barrier::break_barrier() {
  state().phase = State::broken;
  changed_.notify_all();
}

std::size_t Barrier::parties() const {
  return state().parties;
}

std::size_t Barrier::n_waiting() const {
  std::lock_guard guard(const_cast<RLock&>(lock_));
  return state().phase == State::filling ? state().count : 0;
}

bool Barrier::broken() const {
  std::lock_guard guard(const_cast<RLock&>(lock_));
  return state().phase == State::broken;
}

// The action crosses as (module, offset from the module's load address): the same function in
// a process where ASLR placed the executable or library elsewhere. Module "" is no action;
// otherwise it is "+" followed by the loader's name for the object ("" for the executable).
void Barrier::describe_action(std::string& module, std::uint64_t& offset) const {
  module.clear();
  offset = 0;
  if (action_ == nullptr) return;
  struct Search {
    std::uintptr_t address;
    std::string module;
    std::uint64_t offset;
    bool found;
  } search{reinterpret_cast<std::uintptr_t>(action_), {}, 0, false};
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) -> int {
        auto* search = static_cast<Search*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& header = info->dlpi_phdr[i];
          if (header.p_type != PT_LOAD) continue;
          const std::uintptr_t begin = info->dlpi_addr + header.p_vaddr;
          if (search->address >= begin && search->address < begin + header.p_memsz) {
            search->module = info->dlpi_name != nullptr ? info->dlpi_name : "";
            search->offset = search->address - info->dlpi_addr;
            search->found = true;
            return 1;
          }
        }
        return 0;
      },
      &search);
  if (!search.found) {
    throw std::invalid_argument("the Barrier's action lies in no loaded executable or library");
  }
  module = "+" + search.module;
  offset = search.offset;
}

void (*Barrier::resolve_action(const std::string& module, std::uint64_t offset))() {
  if (module.empty()) return nullptr;
  struct Search {
    const char* module;
    std::uintptr_t base;
    bool found;
  } search{module.c_str() + 1, 0, false};
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) -> int {
        auto* search = static_cast<Search*>(data);
        const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
        if (std::strcmp(name, search->module) != 0) return 0;
        search->base = info->dlpi_addr;
        search->found = true;
        return 1;
      },
      &search);
  if (!search.found) {
    throw std::invalid_argument("the Barrier's action lives in '" + module.substr(1) +
                                "', which this process has not loaded");
  }
  return reinterpret_cast<void (*)()>(search.base + offset);
}

}  // namespace spindle::multiprocessing
