// spindle::multiprocessing, the shared-memory half: shared_memory::SharedMemory, Value, Array,
// the process-shared Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier,
// and the cross-process Queue, JoinableQueue and SimpleQueue. Included by
// <spindle/multiprocessing.hpp>; see docs/design/shared-memory.md.
//
// Every object lives in POSIX shared memory (/dev/shm). A C++ object here is a handle: copies
// share the same shared object, and each type has a cereal save/load that writes the segment's
// name and offset, so a handle serialized in one process and loaded in another (a Process or
// pool argument) names the same lock, queue or memory there. Loading into a handle makes it
// name the loaded object (what it named before is released); constructing one always makes a
// new object. Handles may be used from any thread; copying or assigning one handle object
// from two threads at once is not synchronized (as for std::shared_ptr).
//
// Lifetime: the segments spindle names itself (everything except SharedMemory) are unlinked by
// the process that created them when its last handle goes; other processes attach while it
// lives and keep their mappings after that. Segments of processes that died without cleaning
// up are unlinked by the next spindle process that creates one. SharedMemory follows Python:
// close() unmaps, unlink() removes the name, nothing happens by itself.
#pragma once

#include <atomic>
#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <streambuf>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "spindle/detail/serialization.hpp"
#include "spindle/detail/timeout.hpp"
#include "spindle/errors.hpp"
#include "spindle/queue.hpp"
#include "spindle/threading.hpp"

namespace spindle::multiprocessing {

namespace detail {

using spindle::detail::Clock;

// What a segment offset holds; written first in every shared state so that a handle loaded in
// another process can check that it names the kind of object it expects.
enum class Kind : std::uint32_t {
  lock = 0x5350'0001,
  rlock,
  semaphore,
  event,
  condition,
  barrier,
  array,
  queue,
};

// One mapping of a POSIX shared-memory object in this process. Handles of one object in one
// process share one mapping (found by device and inode), so ThreadSanitizer and the CPU see
// one address per shared word.
class Segment {
 public:
  // A new object with a spindle-made name ("spindle.<pid>.<start time>.<n>"), zero-filled. It is
  // unlinked when the creating process releases its last handle, or, if that process dies
  // first, by sweep_orphaned_segments() in any later process.
  static std::shared_ptr<Segment> create_owned(std::size_t size);
  // A new object with the caller's name ("/name"); std::system_error(EEXIST) naming it when it
  // exists. Never unlinked by spindle.
  static std::shared_ptr<Segment> create_named(const std::string& posix_name, std::size_t size);
  // Maps an existing object; std::system_error (ENOENT...) naming it when it cannot.
  static std::shared_ptr<Segment> attach(const std::string& posix_name);

  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  // Unmaps; unlinks an owned segment in its creating process.
  ~Segment();

  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  // The POSIX name, with its leading '/'.
  const std::string& name() const { return name_; }

  struct Key {
    std::uint64_t device;
    std::uint64_t inode;
    bool operator==(const Key&) const = default;
  };

 private:
  Segment(std::string name, std::byte* data, std::size_t size, Key key, int owner_pid);
  static std::shared_ptr<Segment> map(int fd, std::string name, int owner_pid);
  // map() for a segment just created: unlinks it again when it cannot be mapped.
  static std::shared_ptr<Segment> map_created(int fd, std::string posix_name, int owner_pid);
  std::string name_;
  std::byte* data_;
  std::size_t size_;
  Key key_;
  int owner_pid_;  // 0: never unlinked by spindle
};

// Unlinks every spindle-named segment whose creating process no longer exists; returns how many
// it removed. Runs by itself once per process, before its first owned segment is made.
std::size_t sweep_orphaned_segments();
// This process's id, cached (and refreshed in a forked child).
int current_pid();
// True when process `pid` no longer runs (gone, or a zombie nobody has reaped yet).
bool process_gone(int pid);

// The robust lock word shared by Lock, RLock and the queues: 0 unlocked, otherwise the
// holder's pid, with kLockWaiters set when someone may sleep on it.
inline constexpr std::uint32_t kLockWaiters = 0x8000'0000u;
// How often a blocked acquirer checks whether the holding process still exists.
inline constexpr std::chrono::milliseconds kOwnerProbeInterval{100};
enum class Acquired { no, yes, owner_died };
// Blocks until the word is taken (deadline null: no limit), taking it over from a holder that
// has died (owner_died).
Acquired lock_word_acquire(std::atomic<std::uint32_t>& word, const Clock::time_point* deadline);
// std::logic_error when it is not locked.
void lock_word_release(std::atomic<std::uint32_t>& word);

// std::logic_error: a handle that names no shared object (moved from, or a blank one that
// was never loaded) was used.
[[noreturn]] void throw_no_shared_object();

// Where a handle's shared state lives: a segment and an offset into it.
struct Place {
  std::shared_ptr<Segment> segment;
  std::size_t offset = 0;
  // The state; std::logic_error when this place names nothing.
  template <class State>
  State* as() const {
    return reinterpret_cast<State*>(checked_segment().data() + offset);
  }
  Segment& checked_segment() const {
    if (!segment) throw_no_shared_object();
    return *segment;
  }
};

// A fresh owned segment of `size` bytes, with a place at offset 0.
Place create_place(std::size_t size);
// The place a serialized handle names, attached in this process; std::invalid_argument when
// the offset lies outside the segment or holds another kind of object.
Place attach_place(const std::string& name, std::uint64_t offset, Kind kind);

template <class Archive>
void save_place(Archive& archive, const Place& place) {
  archive(place.checked_segment().name(), static_cast<std::uint64_t>(place.offset));
}
template <class Archive>
Place load_place(Archive& archive, Kind kind) {
  std::string name;
  std::uint64_t offset = 0;
  archive(name, offset);
  return attach_place(name, offset, kind);
}

// The futex words of the shared objects. Every field is either atomic or guarded by one of
// the object's locks; the layouts are the same in every process that maps them.
struct LockState {
  Kind kind;
  // 0: unlocked; otherwise the holder's pid, with kLockWaiters when someone may sleep.
  std::atomic<std::uint32_t> word;
};
struct RLockState {
  Kind kind;
  std::atomic<std::uint32_t> word;  // as LockState::word
  std::atomic<std::int32_t> owner;  // kernel thread id of the holder, 0 when free
  std::uint32_t count;              // written only by the holder
};
struct SemaphoreState {
  Kind kind;
  std::atomic<std::uint32_t> value;
  std::atomic<std::uint32_t> waiters;
  std::uint32_t bound;  // kUnbounded, or a BoundedSemaphore's initial value
  static constexpr std::uint32_t kUnbounded = 0xFFFF'FFFFu;
};
struct EventState {
  Kind kind;
  std::atomic<std::uint32_t> word;  // bit 0 set, bit 1 sleepers, the rest a generation
};
// A condition's waiters: a FIFO list of slots, each with its own futex word, linked by index
// and guarded by the condition's lock.
struct ConditionSlot {
  std::atomic<std::uint32_t> notified;
  std::int32_t previous;
  std::int32_t next;
  std::int32_t pid;
};
inline constexpr std::int32_t kConditionSlots = 1024;
struct ConditionState {
  Kind kind;
  std::int32_t first;
  std::int32_t last;
  std::int32_t free_list;
  std::int32_t never_used;  // slots [never_used, kConditionSlots) were never handed out
  ConditionSlot slots[kConditionSlots];
};
struct ArrayHeader {
  Kind kind;
  std::uint32_t element_size;
  std::uint64_t length;
  RLockState lock;
};
// Where an array's elements start, after the header.
template <class T>
constexpr std::size_t array_data_offset() {
  constexpr std::size_t alignment = alignof(T) > 64 ? alignof(T) : 64;
  return (sizeof(ArrayHeader) + alignment - 1) / alignment * alignment;
}
// Makes an owned segment holding an ArrayHeader and `length` zeroed elements.
Place create_array(std::size_t element_size, std::size_t data_offset, std::size_t length);
// Loads an array handle and checks its element size.
Place attach_array(const std::string& name, std::uint64_t offset, std::size_t element_size);

// How a queue item crosses: trivially copyable types and contiguous containers of them as
// their bytes (one memcpy), everything else through a cereal binary archive.
template <class T>
struct IsRawVector : std::false_type {};
template <class U, class A>
struct IsRawVector<std::vector<U, A>>
    : std::bool_constant<std::is_trivially_copyable_v<U> && !std::is_same_v<U, bool>> {};
// The bytes of `item`: a view of the item itself when it is copied as bytes, else its cereal
// encoding in `scratch`.
template <class T>
std::span<const std::byte> encode(const T& item, std::string& scratch) {
  if constexpr (std::is_trivially_copyable_v<T>) {
    return {reinterpret_cast<const std::byte*>(&item), sizeof(T)};
  } else if constexpr (IsRawVector<T>::value || std::is_same_v<T, std::string>) {
    return {reinterpret_cast<const std::byte*>(item.data()),
            item.size() * sizeof(typename T::value_type)};
  } else {
    scratch.clear();
    StringSink sink(scratch);
    std::ostream stream(&sink);
    {
      cereal::BinaryOutputArchive archive(stream);
      archive(item);
    }
    return {reinterpret_cast<const std::byte*>(scratch.data()), scratch.size()};
  }
}

[[noreturn]] void throw_corrupt_message(std::size_t size, std::size_t expected);

template <class T>
T decode(const std::byte* data, std::size_t size) {
  if constexpr (std::is_trivially_copyable_v<T>) {
    if (size != sizeof(T)) throw_corrupt_message(size, sizeof(T));
    T item;
    std::memcpy(static_cast<void*>(&item), data, sizeof(T));
    return item;
  } else if constexpr (IsRawVector<T>::value || std::is_same_v<T, std::string>) {
    using Element = typename T::value_type;
    if (size % sizeof(Element) != 0) throw_corrupt_message(size, sizeof(Element));
    T item(size / sizeof(Element), Element{});
    if (size != 0) std::memcpy(static_cast<void*>(item.data()), data, size);
    return item;
  } else {
    SpanSource source(reinterpret_cast<const char*>(data), size);
    std::istream stream(&source);
    cereal::BinaryInputArchive archive(stream);
    T item;
    archive(item);
    return item;
  }
}

struct QueueState;

// The untyped cross-process queue: a byte ring in shared memory. Messages go in whole; one
// larger than the ring goes in chunks while a reader takes it out. Puts are serialized by one
// process-shared lock and gets by another, so the ring itself is single-producer,
// single-consumer. Thread-safe and process-safe.
class QueueCore {
 public:
  QueueCore(std::size_t maxsize, std::size_t buffer_bytes, bool joinable);
  // Names no queue: only to be loaded into.
  explicit QueueCore(ForLoading /*tag*/) {}
  // Blocks until `message` is in (deadline null: no limit). queue::Full when the deadline
  // passes first; queue::ShutDown after shutdown().
  void put(std::span<const std::byte> message, const Clock::time_point* deadline);
  // Blocks until a message arrives and calls consume(context, bytes, size) on it (the bytes
  // may be the ring itself: consume must not keep them). queue::Empty when the deadline
  // passes first; queue::ShutDown once shut down and drained.
  void get(void (*consume)(void* context, const std::byte* data, std::size_t size), void* context,
           const Clock::time_point* deadline);
  std::size_t qsize() const;
  std::size_t maxsize() const;
  std::size_t buffer_bytes() const;
  void task_done();
  void join();
  void shutdown(bool immediate);
  bool is_shutdown() const;
  // This handle only: later calls through it throw std::invalid_argument.
  void close() { place_.segment.reset(); }

  template <class Archive>
  void save(Archive& archive) const {
    save_place(archive, checked());
  }
  template <class Archive>
  void load(Archive& archive) {
    place_ = load_place(archive, Kind::queue);
  }

 private:
  const Place& checked() const;
  QueueState& state() const { return *checked().as<QueueState>(); }
  Place place_;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------
// shared_memory::SharedMemory
// ---------------------------------------------------------------------------------------

namespace shared_memory {

// A named block of shared memory, as Python's multiprocessing.shared_memory.SharedMemory.
// create = true makes a new block of `size` bytes (an empty name gets a fresh random one);
// an existing name is std::system_error(EEXIST) naming it; size 0 is std::invalid_argument.
// create = false attaches to an existing block (size is ignored); a missing name is
// std::system_error(ENOENT) naming it. Python's naming: "name" without the leading '/'.
// Copies share the mapping. close() unmaps this handle; unlink() removes the name, once, from
// any process; neither happens by itself (Python's track=False): a block not unlinked stays
// in /dev/shm. Safe from any thread; the bytes themselves are not synchronized.
class SharedMemory {
 public:
  explicit SharedMemory(std::string name = {}, bool create = false, std::size_t size = 0);
  // Names no block: only to be loaded into (see detail::ForLoading).
  explicit SharedMemory(detail::ForLoading /*tag*/) {}
  // The mapped bytes. std::logic_error after close().
  std::span<std::byte> buf() const;
  // The name other processes attach by (without the leading '/'). Non-blocking.
  std::string name() const { return name_; }
  // The size in bytes: the requested one, or the block's own when attached. Non-blocking.
  std::size_t size() const { return size_; }
  // Unmaps (once every copy of this handle has closed). Idempotent.
  void close() { segment_.reset(); }
  // Removes the name; processes that have the block mapped keep it. std::system_error
  // (ENOENT) when it is already gone.
  void unlink();

  template <class Archive>
  void save(Archive& archive) const {
    archive(name_);
  }
  template <class Archive>
  void load(Archive& archive) {
    std::string name;
    archive(name);
    *this = SharedMemory(std::move(name), false, 0);
  }

 private:
  std::string name_;
  std::size_t size_ = 0;
  std::shared_ptr<detail::Segment> segment_;
};

}  // namespace shared_memory

// ---------------------------------------------------------------------------------------
// Lock, RLock
// ---------------------------------------------------------------------------------------

class Condition;
class Barrier;

namespace detail {

// The cereal save/load of a handle whose whole state is one place holding a `kind` state.
template <Kind kind>
class PlaceHandle {
 public:
  template <class Archive>
  void save(Archive& archive) const {
    save_place(archive, place_);
  }
  template <class Archive>
  void load(Archive& archive) {
    place_ = load_place(archive, kind);
  }

 protected:
  PlaceHandle() = default;
  explicit PlaceHandle(Place place) : place_(std::move(place)) {}
  Place place_;
};

// acquire() / acquire(timeout) and the standard Lockable names, for a lock type that has
// acquire_until(const Clock::time_point*) and release().
template <class Derived>
class LockableMethods {
 public:
  // Blocks until acquired.
  void acquire() { self().acquire_until(nullptr); }
  // Blocks up to `timeout` (zero: never blocks); true when acquired.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    return self().acquire_until(&deadline);
  }
  void lock() { acquire(); }
  void unlock() { self().release(); }
  bool try_lock() { return acquire(std::chrono::nanoseconds::zero()); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return acquire(timeout);
  }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

}  // namespace detail

// A Lock that works across processes: Python's multiprocessing.Lock. Like threading::Lock it
// has no owner (any thread of any process may release it) and is not re-entrant. Unlike it,
// it is robust: if the process holding it dies, a waiter notices within 100 ms and takes it
// over, as if the dead process had released it (whatever the lock protected may be half
// updated). Copies are handles to the same lock. Thread-safe and process-safe.
class Lock : public detail::PlaceHandle<detail::Kind::lock>, public detail::LockableMethods<Lock> {
 public:
  // A new, unlocked lock in a new shared-memory segment.
  Lock();
  // Names no lock: only to be loaded into (see detail::ForLoading).
  explicit Lock(detail::ForLoading /*tag*/) {}
  // std::logic_error when it is not locked. Non-blocking.
  void release();
  // True while held, by anyone. Non-blocking.
  bool locked() const;

 private:
  friend class Condition;
  friend class detail::LockableMethods<Lock>;
  explicit Lock(detail::Place place) : PlaceHandle(std::move(place)) {}
  bool acquire_until(const detail::Clock::time_point* deadline);
  detail::LockState& state() const { return *place_.as<detail::LockState>(); }
};

// A re-entrant Lock across processes: Python's multiprocessing.RLock. The owner is a thread of
// a process; its acquires nest; a release by any other thread is std::logic_error. Robust like
// Lock: a waiter takes it over (with a count of one) when the owning process has died.
// Thread-safe and process-safe.
class RLock : public detail::PlaceHandle<detail::Kind::rlock>,
              public detail::LockableMethods<RLock> {
 public:
  // A new, unlocked re-entrant lock in a new shared-memory segment.
  RLock();
  // Names no lock: only to be loaded into (see detail::ForLoading).
  explicit RLock(detail::ForLoading /*tag*/) {}
  // Releases one level. std::logic_error when the calling thread does not own it.
  // Non-blocking.
  void release();
  // True while held, by any thread of any process. Non-blocking.
  bool locked() const;

 private:
  friend class Condition;
  friend class Barrier;
  friend class detail::LockableMethods<RLock>;
  template <class T>
  friend class Array;
  explicit RLock(detail::Place place) : PlaceHandle(std::move(place)) {}
  bool acquire_until(const detail::Clock::time_point* deadline);
  bool owned_by_caller() const;
  // Releases every level (Condition::wait) and returns how many there were.
  std::uint32_t release_all();
  void acquire_levels(std::uint32_t levels);
  detail::RLockState& state() const { return *place_.as<detail::RLockState>(); }
};

// ---------------------------------------------------------------------------------------
// Condition
// ---------------------------------------------------------------------------------------

// A condition variable across processes: Python's multiprocessing.Condition. Bound to a Lock
// or RLock (by default a new RLock of its own). wait() and notify() need the lock held
// (std::logic_error otherwise); wait() releases every level while asleep; notify(n) wakes the
// n longest waiting, first come first served; no spurious wake-ups. At most 1024 threads wait
// at once (more: std::system_error(EAGAIN)); a process that dies while waiting keeps its slot.
// Thread-safe and process-safe.
class Condition {
 public:
  Condition();
  // Names no condition: only to be loaded into (see detail::ForLoading).
  explicit Condition(detail::ForLoading tag) : lock_(std::in_place_type<RLock>, tag) {}
  // Bound to `lock`, shared with whoever else holds a handle to it.
  explicit Condition(Lock lock);
  explicit Condition(RLock lock);
  // Acquire and release the underlying lock: blocks as the lock does; the Lockable names too.
  void acquire();
  // Blocks up to `timeout` (zero: never blocks); true when acquired.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return std::visit([&](auto& lock) { return lock.acquire(timeout); }, lock_);
  }
  void release();
  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return acquire(std::chrono::nanoseconds::zero()); }
  // Blocks until notified.
  void wait() { wait_until(nullptr); }
  // Blocks until notified or `timeout` passes; false on timeout.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    return wait_until(&deadline);
  }
  // Blocks until predicate() is true; returns it.
  template <class Predicate>
  bool wait_for(Predicate predicate) {
    while (!predicate())
      wait();
    return true;
  }
  // Blocks until predicate() is true or `timeout` passes; returns the last predicate().
  template <class Predicate, class Rep, class Period>
  bool wait_for(Predicate predicate, std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    bool result = static_cast<bool>(predicate());
    while (!result && detail::Clock::now() < deadline) {
      wait_until(&deadline);
      result = static_cast<bool>(predicate());
    }
    return result;
  }
  // Wakes up to `n` waiters, oldest first. Non-blocking.
  void notify(std::size_t n = 1);
  void notify_all() { notify(static_cast<std::size_t>(-1)); }

  template <class Archive>
  void save(Archive& archive) const {
    detail::save_place(archive, place_);
    const std::uint8_t recursive = std::holds_alternative<RLock>(lock_) ? 1 : 0;
    archive(recursive);
    std::visit([&](const auto& lock) { archive(lock); }, lock_);
  }
  template <class Archive>
  void load(Archive& archive) {
    place_ = detail::load_place(archive, detail::Kind::condition);
    std::uint8_t recursive = 0;
    archive(recursive);
    if (recursive != 0) {
      RLock lock{detail::Place{}};
      archive(lock);
      lock_ = std::move(lock);
    } else {
      Lock lock{detail::Place{}};
      archive(lock);
      lock_ = std::move(lock);
    }
  }

 private:
  friend class Barrier;
  Condition(detail::Place place, RLock lock) : place_(std::move(place)), lock_(std::move(lock)) {}
  bool wait_until(const detail::Clock::time_point* deadline);
  void check_owned(const char* operation) const;
  detail::ConditionState& state() const { return *place_.as<detail::ConditionState>(); }
  detail::Place place_;
  std::variant<Lock, RLock> lock_;
};

// ---------------------------------------------------------------------------------------
// Semaphore, BoundedSemaphore, Event
// ---------------------------------------------------------------------------------------

// A counter across processes: Python's multiprocessing.Semaphore. acquire() decrements it,
// blocking while it is zero; release() increments it. The value must be 0 to 2^31 - 1
// (otherwise std::invalid_argument). Counts held by a process that dies are not returned.
// Thread-safe and process-safe.
class Semaphore : public detail::PlaceHandle<detail::Kind::semaphore>,
                  public detail::LockableMethods<Semaphore> {
 public:
  // A new counter starting at `value`, in a new shared-memory segment. acquire() blocks
  // while the counter is zero, then decrements it; acquire(timeout) gives up after `timeout`
  // (zero: never blocks) and says whether it decremented.
  explicit Semaphore(std::ptrdiff_t value = 1);
  // Names no semaphore: only to be loaded into (see detail::ForLoading).
  explicit Semaphore(detail::ForLoading /*tag*/) {}
  // Adds `n` (n < 1: std::invalid_argument) and wakes up to n waiters. Above the bound of a
  // BoundedSemaphore: std::invalid_argument, and nothing is added. Non-blocking.
  void release(std::ptrdiff_t n = 1);
  // The current counter (Python's get_value()). Non-blocking.
  std::ptrdiff_t get_value() const;

 protected:
  Semaphore(std::ptrdiff_t value, bool bounded);

 private:
  friend class detail::LockableMethods<Semaphore>;
  bool acquire_until(const detail::Clock::time_point* deadline);
  detail::SemaphoreState& state() const { return *place_.as<detail::SemaphoreState>(); }
};

// A Semaphore whose release() above the initial value is std::invalid_argument. The bound
// lives in the shared state, so every process's handle enforces it.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::ptrdiff_t value = 1) : Semaphore(value, true) {}
  explicit BoundedSemaphore(detail::ForLoading tag) : Semaphore(tag) {}
};

// A flag across processes: Python's multiprocessing.Event. set() wakes every waiter of every
// process; clear() resets it. Thread-safe and process-safe.
class Event : public detail::PlaceHandle<detail::Kind::event> {
 public:
  // A new, clear event in a new shared-memory segment.
  Event();
  // Names no event: only to be loaded into (see detail::ForLoading).
  explicit Event(detail::ForLoading /*tag*/) {}
  // Non-blocking.
  bool is_set() const;
  // Sets the flag and wakes every waiter. Non-blocking.
  void set();
  // Resets the flag. Non-blocking.
  void clear();
  // Blocks until the flag is set.
  void wait() { wait_until(nullptr); }
  // Blocks until the flag is set or `timeout` passes; true when it was set.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    return wait_until(&deadline);
  }

 private:
  bool wait_until(const detail::Clock::time_point* deadline);
  detail::EventState& state() const { return *place_.as<detail::EventState>(); }
};

// ---------------------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------------------

// Keyword arguments of Barrier. `action` runs in the process whose thread arrives last, before
// any is released; it must be a plain function (a lambda without captures converts), because
// another process finds it by its place in the same executable or shared library.
// `timeout` is wait()'s default.
struct BarrierOptions {
  void (*action)() = nullptr;
  std::optional<std::chrono::nanoseconds> timeout{};
};

// A barrier across processes: Python's multiprocessing.Barrier, with threading::Barrier's
// semantics and exception (threading::BrokenBarrierError). parties must be 1 to 1024 (the
// waiters of one process-shared Condition), otherwise std::invalid_argument. Thread-safe and
// process-safe.
class Barrier {
 public:
  explicit Barrier(std::size_t parties, BarrierOptions options = {});
  // Names no barrier: only to be loaded into (see detail::ForLoading).
  explicit Barrier(detail::ForLoading tag) : lock_(tag), changed_(tag) {}
  // Blocks until `parties` threads (of any processes) have called wait(); returns this
  // thread's arrival index. BrokenBarrierError as threading::Barrier.
  std::size_t wait();
  // As wait(), but breaks the barrier (BrokenBarrierError) when `timeout` passes first.
  template <class Rep, class Period>
  std::size_t wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(spindle::detail::deadline_after(timeout));
  }
  // Back to the empty state; waiters get BrokenBarrierError.
  void reset();
  // Breaks the barrier; waiters get BrokenBarrierError. Non-blocking.
  void abort();
  // The number of threads needed to pass. Non-blocking.
  std::size_t parties() const;
  // How many threads, of every process, wait now. Non-blocking; approximate under concurrency.
  std::size_t n_waiting() const;
  // True once aborted or a wait timed out, until reset(). Non-blocking.
  bool broken() const;

  template <class Archive>
  void save(Archive& archive) const {
    detail::save_place(archive, place_);
    std::string module;
    std::uint64_t offset = 0;
    describe_action(module, offset);
    archive(module, offset);
  }
  template <class Archive>
  void load(Archive& archive) {
    detail::Place place = detail::load_place(archive, detail::Kind::barrier);
    std::string module;
    std::uint64_t offset = 0;
    archive(module, offset);
    *this = Barrier(std::move(place), resolve_action(module, offset));
  }

 private:
  Barrier(detail::Place place, void (*action)());
  static detail::Place create(std::size_t parties, const BarrierOptions& options);
  std::size_t wait_until(std::optional<detail::Clock::time_point> deadline);
  void describe_action(std::string& module, std::uint64_t& offset) const;
  static void (*resolve_action(const std::string& module, std::uint64_t offset))();
  struct State;
  State& state() const;
  void enter();
  void release_round();
  void wait_round(std::optional<detail::Clock::time_point> deadline);
  void leave();
  void break_barrier();
  detail::Place place_;
  void (*action_)() = nullptr;
  RLock lock_{detail::ForLoading{}};
  Condition changed_{detail::ForLoading{}};
};

// ---------------------------------------------------------------------------------------
// Value, Array
// ---------------------------------------------------------------------------------------

// An array of trivially copyable T in shared memory with an RLock, as Python's
// multiprocessing.Array: Array(n) holds n value-initialized elements, Array(values) a copy of
// them. The elements are plain memory: guard read-modify-write with get_lock() (the array is
// also Lockable: std::scoped_lock guard(array)). Copies are handles to the same memory.
template <class T>
class Array {
  static_assert(std::is_trivially_copyable_v<T>,
                "multiprocessing::Array<T> needs a trivially copyable T: it lives in shared "
                "memory, as raw bytes, in every process");
  static_assert(!std::is_pointer_v<T> && !std::is_member_pointer_v<T> &&
                    !detail::PointsIntoThisProcess<T>::value,
                "multiprocessing::Array<T> cannot hold an address: it means nothing in another "
                "process. Share the data itself (an Array of the elements, or a Queue)");

 public:
  // A new array in a new shared-memory segment: `length` value-initialized elements, or a
  // copy of `values`. A length above PTRDIFF_MAX (a negative one converted) is
  // std::invalid_argument.
  explicit Array(std::size_t length) : Array(length, nullptr) {}
  explicit Array(std::span<const T> values) : Array(values.size(), values.data()) {}
  Array(std::initializer_list<T> values) : Array(values.size(), values.begin()) {}
  explicit Array(const std::vector<T>& values) : Array(values.size(), values.data()) {}
  // Names no array: only to be loaded into (see detail::ForLoading).
  explicit Array(detail::ForLoading /*tag*/) {}

  T& operator[](std::size_t i) const { return data()[i]; }
  std::size_t size() const { return header().length; }
  std::span<T> span() const { return {data(), size()}; }
  T* begin() const { return data(); }
  T* end() const { return data() + size(); }
  // The lock that guards the elements (shared by every handle, in every process).
  RLock& get_lock() { return lock_; }
  // get_lock()'s acquire (blocks), release and non-blocking try, as a Lockable.
  void lock() { lock_.acquire(); }
  void unlock() { lock_.release(); }
  bool try_lock() { return lock_.try_lock(); }

  template <class Archive>
  void save(Archive& archive) const {
    detail::save_place(archive, base());
  }
  template <class Archive>
  void load(Archive& archive) {
    std::string name;
    std::uint64_t offset = 0;
    archive(name, offset);
    adopt(detail::attach_array(name, offset, sizeof(T)));
  }

 private:
  Array(std::size_t length, const T* values) {
    adopt(detail::create_array(sizeof(T), detail::array_data_offset<T>(), length));
    if (values != nullptr && length != 0) {
      std::memcpy(static_cast<void*>(data()), values, length * sizeof(T));
    } else {
      T* elements = data();
      for (std::size_t i = 0; i < length; ++i)
        new (elements + i) T{};
    }
  }
  void adopt(detail::Place place) {
    lock_ = RLock(detail::Place{place.segment, place.offset + offsetof(detail::ArrayHeader, lock)});
  }
  detail::Place base() const {
    return {lock_.place_.segment, lock_.place_.offset - offsetof(detail::ArrayHeader, lock)};
  }
  // Both without copying the Place (an atomic reference count each time).
  std::byte* base_address() const {
    return lock_.place_.checked_segment().data() + lock_.place_.offset -
           offsetof(detail::ArrayHeader, lock);
  }
  const detail::ArrayHeader& header() const {
    return *reinterpret_cast<const detail::ArrayHeader*>(base_address());
  }
  T* data() const { return reinterpret_cast<T*>(base_address() + detail::array_data_offset<T>()); }
  RLock lock_{detail::Place{}};
};

// One trivially copyable T in shared memory with an RLock: Python's multiprocessing.Value.
// value() is a reference to the shared T: guard read-modify-write with get_lock()
// (`std::scoped_lock guard(v); ++v.value();`). Copies are handles to the same value.
template <class T>
class Value {
  static_assert(std::is_trivially_copyable_v<T>,
                "multiprocessing::Value<T> needs a trivially copyable T: it lives in shared "
                "memory, as raw bytes, in every process");
  static_assert(!std::is_pointer_v<T> && !std::is_member_pointer_v<T> &&
                    !detail::PointsIntoThisProcess<T>::value,
                "multiprocessing::Value<T> cannot hold an address: it means nothing in another "
                "process. Share the data itself (an Array of the elements, or a Queue)");

 public:
  explicit Value(T init = {}) : array_(std::span<const T>(&init, 1)) {}
  // Names no value: only to be loaded into (see detail::ForLoading).
  explicit Value(detail::ForLoading tag) : array_(tag) {}
  T& value() const { return array_[0]; }
  RLock& get_lock() { return array_.get_lock(); }
  // get_lock()'s acquire (blocks), release and non-blocking try, as a Lockable.
  void lock() { array_.lock(); }
  void unlock() { array_.unlock(); }
  bool try_lock() { return array_.try_lock(); }

  template <class Archive>
  void save(Archive& archive) const {
    archive(array_);
  }
  template <class Archive>
  void load(Archive& archive) {
    archive(array_);
  }

 private:
  Array<T> array_;
};

// ---------------------------------------------------------------------------------------
// Queue, JoinableQueue, SimpleQueue
// ---------------------------------------------------------------------------------------

// Keyword arguments of the cross-process queues beyond Python's.
struct QueueOptions {
  // The ring buffer in shared memory. put() blocks while the ring is full (backpressure where
  // Python's feeder thread buffers without limit); a message larger than the ring still goes
  // through, in chunks, while a reader takes it out. At least 64. Pages are allocated as the
  // ring first reaches them.
  std::size_t buffer_bytes = std::size_t{4} << 20;
};

// A FIFO queue between processes: Python's multiprocessing.Queue. Items are copied in: a
// trivially copyable T, std::string or std::vector of trivially copyable elements as raw
// bytes, anything else through cereal (std containers, user types with serialize()).
// maxsize 0: no limit on items. queue::Empty, queue::Full and queue::ShutDown as
// spindle::queue. Copies (and handles loaded in other processes) share the queue. Thread-safe
// and process-safe.
template <class T>
class Queue {
  static_assert(detail::serializable_v<T>, SPINDLE_MP_UNSERIALIZABLE_MESSAGE);

 public:
  explicit Queue(std::size_t maxsize = 0, QueueOptions options = {})
      : Queue(maxsize, options, false) {}
  // Names no queue: only to be loaded into (see detail::ForLoading).
  explicit Queue(detail::ForLoading tag) : core_(tag) {}

  // Blocks while the queue is full (maxsize items, or no room in the ring).
  void put(const T& item) { put_until(item, nullptr); }
  // Blocks up to `timeout`, then queue::Full. A message larger than the whole ring, once
  // begun, goes on until a reader has taken it in.
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    put_until(item, &deadline);
  }
  // Never blocks: queue::Full at once when there is no room.
  void put_nowait(const T& item) { put(item, std::chrono::nanoseconds::zero()); }
  // Blocks until an item arrives.
  T get() { return get_until(nullptr); }
  // Blocks up to `timeout`, then queue::Empty.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = spindle::detail::deadline_after(timeout);
    return get_until(&deadline);
  }
  // Never blocks: queue::Empty at once when there is no item.
  T get_nowait() { return get(std::chrono::nanoseconds::zero()); }
  // Items in the queue, counting one being put. Non-blocking; approximate under concurrency.
  std::size_t qsize() const { return core_.qsize(); }
  // qsize() == 0 and qsize() >= maxsize(), with the same caveat. Non-blocking.
  bool empty() const { return qsize() == 0; }
  bool full() const { return core_.maxsize() != 0 && qsize() >= core_.maxsize(); }
  // The item limit given at construction (0: none). Non-blocking.
  std::size_t maxsize() const { return core_.maxsize(); }
  // The ring's size in bytes (QueueOptions::buffer_bytes).
  std::size_t buffer_bytes() const { return core_.buffer_bytes(); }
  // Python 3.13's queue.Queue.shutdown, across processes: put throws queue::ShutDown; get
  // drains, then throws it. immediate: get throws at once and the queued items are dropped
  // (and counted as done for join()).
  void shutdown(bool immediate = false) { core_.shutdown(immediate); }
  // True once any process has called shutdown(). Non-blocking.
  bool is_shutdown() const { return core_.is_shutdown(); }
  // This handle is done: later calls through it are std::invalid_argument. Other handles
  // and processes are unaffected.
  void close() { core_.close(); }
  // Python's feeder thread does not exist here: put() has already written the item when it
  // returns. Kept as no-ops for ported code.
  void join_thread() {}
  void cancel_join_thread() {}

  template <class Archive>
  void save(Archive& archive) const {
    core_.save(archive);
  }
  template <class Archive>
  void load(Archive& archive) {
    core_.load(archive);
  }

 protected:
  Queue(std::size_t maxsize, QueueOptions options, bool joinable)
      : core_(maxsize, options.buffer_bytes, joinable) {}
  detail::QueueCore core_;

 private:
  void put_until(const T& item, const detail::Clock::time_point* deadline) {
    thread_local std::string scratch;
    core_.put(detail::encode(item, scratch), deadline);
  }
  T get_until(const detail::Clock::time_point* deadline) {
    std::optional<T> item;
    core_.get(
        [](void* context, const std::byte* data, std::size_t size) {
          static_cast<std::optional<T>*>(context)->emplace(detail::decode<T>(data, size));
        },
        &item, deadline);
    return std::move(*item);
  }
};

// A Queue with task_done() and join(): Python's multiprocessing.JoinableQueue.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  explicit JoinableQueue(std::size_t maxsize = 0, QueueOptions options = {})
      : Queue<T>(maxsize, options, true) {}
  // Names no queue: only to be loaded into (see detail::ForLoading).
  explicit JoinableQueue(detail::ForLoading tag) : Queue<T>(tag) {}
  // Marks one gotten item done; more calls than items put: std::invalid_argument.
  // Non-blocking.
  void task_done() { this->core_.task_done(); }
  // Blocks until every item put (by any process) has had its task_done().
  void join() { this->core_.join(); }
};

// An unbounded queue with put, get, empty and close: Python's multiprocessing.SimpleQueue.
template <class T>
class SimpleQueue {
 public:
  explicit SimpleQueue(QueueOptions options = {}) : queue_(0, options) {}
  // Names no queue: only to be loaded into (see detail::ForLoading).
  explicit SimpleQueue(detail::ForLoading tag) : queue_(tag) {}
  // Blocks only while the ring is full.
  void put(const T& item) { queue_.put(item); }
  // Blocks until an item arrives.
  T get() { return queue_.get(); }
  // True when no item is queued now. Non-blocking; approximate under concurrency.
  bool empty() const { return queue_.empty(); }
  // This handle is done: later calls through it are std::invalid_argument.
  void close() { queue_.close(); }

  template <class Archive>
  void save(Archive& archive) const {
    archive(queue_);
  }
  template <class Archive>
  void load(Archive& archive) {
    archive(queue_);
  }

 private:
  Queue<T> queue_;
};

}  // namespace spindle::multiprocessing
