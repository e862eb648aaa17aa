// The cross-process queue: a byte ring in shared memory. See docs/design/shared-memory.md.
//
// A message is an 8-byte length and its bytes. Puts hold write_lock for a whole message and
// gets hold read_lock, so only one process writes the ring (advancing tail) and one reads it
// (advancing head) at a time; the ring needs no other lock. A waiter announces itself in a
// waiter count before sleeping on a sequence word; the other side bumps the word and wakes it
// only when that count is not zero (every access seq_cst, so one side always sees the other).
#include <climits>
#include <system_error>

#include "../core/futex.hpp"
#include "spindle/detail/multiprocessing_shared.hpp"

namespace spindle::multiprocessing::detail {

namespace {
constexpr std::uint32_t kShutdown = 1;
constexpr std::uint32_t kImmediate = 2;
constexpr std::uint32_t kBroken = 4;
constexpr std::uint64_t kHeaderBytes = sizeof(std::uint64_t);
constexpr int kSpins = 200;
}  // namespace

// Each side's words sit on a cache line of their own, so a put and a get move only the lines
// they must: the writer reads `head`, the reader reads `tail`.
struct QueueState {
  // Read-mostly.
  Kind kind;
  std::uint32_t joinable;
  std::uint64_t capacity;
  std::uint64_t maxsize;
  std::atomic<std::uint32_t> flags;
  std::atomic<std::int32_t> broken_by;  // the pid that died mid-message
  // The writer's.
  alignas(64) LockState write_lock;
  std::atomic<std::uint32_t> writing;    // a put is between its first and last byte
  std::atomic<std::uint64_t> tail;       // bytes published
  std::atomic<std::uint64_t> puts;       // messages admitted (counted before their bytes go in)
  std::atomic<std::uint64_t> head_seen;  // `head` as last read: the writer's cached view
  // The reader's.
  alignas(64) LockState read_lock;
  std::atomic<std::uint32_t> reading;    // a get is between its first and last byte
  std::atomic<std::uint64_t> head;       // bytes consumed
  std::atomic<std::uint64_t> gets;       // messages taken out
  std::atomic<std::uint64_t> tail_seen;  // `tail` as last read: the reader's cached view
  // Sleepers: a getter waiting for data, a putter waiting for room, join().
  alignas(64) std::atomic<std::uint32_t> data_seq;
  std::atomic<std::uint32_t> data_waiters;
  alignas(64) std::atomic<std::uint32_t> space_seq;
  std::atomic<std::uint32_t> space_waiters;
  alignas(64) std::atomic<std::uint64_t> unfinished;  // JoinableQueue: put, not yet task_done
  std::atomic<std::uint32_t> join_seq;
  std::atomic<std::uint32_t> join_waiters;
};

namespace {

constexpr std::size_t kRingOffset = (sizeof(QueueState) + 63) / 64 * 64;

std::byte* ring(QueueState& s) {
  return reinterpret_cast<std::byte*>(&s) + kRingOffset;
}

// Free bytes in the ring, from the writer's cached `head` while that shows `wanted` of them,
// else from `head` itself (a cache line the reader writes).
std::uint64_t free_space(QueueState& s, std::uint64_t wanted) {
  const std::uint64_t tail = s.tail.load(std::memory_order_relaxed);
  const std::uint64_t free = s.capacity - (tail - s.head_seen.load(std::memory_order_relaxed));
  if (free >= wanted) return free;
  const std::uint64_t head = s.head.load(std::memory_order_seq_cst);
  s.head_seen.store(head, std::memory_order_relaxed);
  return s.capacity - (tail - head);
}

// Bytes published after `position`, likewise from the reader's cached `tail` first.
std::uint64_t published_after(QueueState& s, std::uint64_t position, std::uint64_t wanted) {
  const std::uint64_t seen = s.tail_seen.load(std::memory_order_relaxed) - position;
  if (seen >= wanted) return seen;
  const std::uint64_t tail = s.tail.load(std::memory_order_seq_cst);
  s.tail_seen.store(tail, std::memory_order_relaxed);
  return tail - position;
}

// Messages admitted and not yet taken out (`gets` first: it never passes `puts`).
std::uint64_t items(const QueueState& s) {
  const std::uint64_t gets = s.gets.load(std::memory_order_seq_cst);
  return s.puts.load(std::memory_order_seq_cst) - gets;
}

void copy_in(QueueState& s, std::uint64_t position, const std::byte* from, std::uint64_t n) {
  const std::uint64_t offset = position % s.capacity;
  const std::uint64_t first = std::min(n, s.capacity - offset);
  std::memcpy(ring(s) + offset, from, first);
  std::memcpy(ring(s), from + first, n - first);
}

void copy_out(QueueState& s, std::uint64_t position, std::byte* to, std::uint64_t n) {
  const std::uint64_t offset = position % s.capacity;
  const std::uint64_t first = std::min(n, s.capacity - offset);
  std::memcpy(to, ring(s) + offset, first);
  std::memcpy(to + first, ring(s), n - first);
}

void signal(std::atomic<std::uint32_t>& seq, std::atomic<std::uint32_t>& waiters) {
  if (waiters.load(std::memory_order_seq_cst) != 0) {
    seq.fetch_add(1, std::memory_order_seq_cst);
    spindle::detail::futex_wake(seq, INT_MAX, true);
  }
}

void wake_everyone(QueueState& s) {
  for (auto* seq : {&s.data_seq, &s.space_seq, &s.join_seq}) {
    seq->fetch_add(1, std::memory_order_seq_cst);
    spindle::detail::futex_wake(*seq, INT_MAX, true);
  }
}

[[noreturn]] void throw_broken(const QueueState& s) {
  const int pid = s.broken_by.load(std::memory_order_relaxed);
  throw spindle::Error("the queue is broken: " +
                       (pid != 0 ? "process " + std::to_string(pid) : std::string("a process")) +
                       " died in the middle of a message");
}

void mark_broken(QueueState& s, int pid) {
  s.broken_by.store(pid, std::memory_order_relaxed);
  s.flags.fetch_or(kBroken, std::memory_order_seq_cst);
  wake_everyone(s);
  throw_broken(s);
}

void check_broken(const QueueState& s) {
  if ((s.flags.load(std::memory_order_seq_cst) & kBroken) != 0) throw_broken(s);
}

// Waits on `seq` until ready() (true) or the deadline (false). `peer`: while waiting in the
// middle of a message, the lock the other side holds; if its holder dies the queue breaks.
template <class Ready>
bool wait_until_ready(QueueState& s, std::atomic<std::uint32_t>& seq,
                      std::atomic<std::uint32_t>& waiters, Ready ready,
                      const Clock::time_point* deadline, const LockState* peer) {
  // The other side is usually a few hundred nanoseconds away: spin briefly before sleeping,
  // which saves both sides a futex call per item in a steady stream.
  for (int spin = 0; spin < kSpins; ++spin) {
    if (ready()) return true;
    if (deadline != nullptr && spin == 0 && Clock::now() >= *deadline) break;
    spindle::detail::cpu_relax();
  }
  for (;;) {
    if (ready()) return true;
    waiters.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t seen = seq.load(std::memory_order_seq_cst);
    bool now_ready;
    try {
      now_ready = ready();
    } catch (...) {
      waiters.fetch_sub(1, std::memory_order_relaxed);
      throw;
    }
    if (now_ready) {
      waiters.fetch_sub(1, std::memory_order_relaxed);
      return true;
    }
    const auto now = Clock::now();
    if (deadline != nullptr && now >= *deadline) {
      waiters.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    if (peer == nullptr) {
      spindle::detail::futex_wait(seq, seen, deadline, true);
    } else {
      const auto probe_at = now + kOwnerProbeInterval;
      spindle::detail::futex_wait(seq, seen, &probe_at, true);
    }
    waiters.fetch_sub(1, std::memory_order_relaxed);
    if (peer != nullptr && Clock::now() >= now + kOwnerProbeInterval) {
      const auto holder =
          static_cast<int>(peer->word.load(std::memory_order_relaxed) & ~kLockWaiters);
      if (holder != 0 && holder != current_pid() && process_gone(holder)) {
        mark_broken(s, holder);
      }
    }
  }
}

// Releases a queue lock word when the operation ends, however it ends.
struct LockWordGuard {
  std::atomic<std::uint32_t>& word;
  ~LockWordGuard() { lock_word_release(word); }
};

// With read_lock held and a whole header published at `s.head`: reads the message (waiting for
// the rest of it if need be), hands it to consume, and consumes it from the ring.
void take_message(QueueState& s,
                  void (*consume)(void* context, const std::byte* data, std::size_t size),
                  void* context) {
  const std::uint64_t start = s.head.load(std::memory_order_relaxed);
  std::uint64_t length = 0;
  copy_out(s, start, reinterpret_cast<std::byte*>(&length), kHeaderBytes);
  const std::uint64_t total = kHeaderBytes + length;
  s.reading.store(1, std::memory_order_relaxed);
  struct Finish {
    QueueState& s;
    std::uint64_t end;
    ~Finish() {
      s.head.store(end, std::memory_order_seq_cst);
      s.gets.fetch_add(1, std::memory_order_seq_cst);
      s.reading.store(0, std::memory_order_relaxed);
      signal(s.space_seq, s.space_waiters);
    }
  };
  const auto check = [&s] { check_broken(s); };
  if (total <= s.capacity) {
    wait_until_ready(
        s, s.data_seq, s.data_waiters,
        [&] {
          check();
          return published_after(s, start, total) >= total;
        },
        nullptr, &s.write_lock);
    Finish finish{s, start + total};
    const std::uint64_t offset = (start + kHeaderBytes) % s.capacity;
    if (offset + length <= s.capacity) {
      consume(context, ring(s) + offset, length);  // straight from the ring
    } else {
      thread_local std::vector<std::byte> scratch;
      scratch.resize(length);
      copy_out(s, start + kHeaderBytes, scratch.data(), length);
      consume(context, scratch.data(), length);
    }
    return;
  }
  // Larger than the ring: take it in chunks as the writer puts them in.
  std::vector<std::byte> message(length);
  std::uint64_t position = start + kHeaderBytes;
  std::uint64_t copied = 0;
  s.head.store(position, std::memory_order_seq_cst);
  signal(s.space_seq, s.space_waiters);
  while (copied < length) {
    wait_until_ready(
        s, s.data_seq, s.data_waiters,
        [&] {
          check();
          return published_after(s, position, 1) > 0;
        },
        nullptr, &s.write_lock);
    const std::uint64_t n = std::min(published_after(s, position, 1), length - copied);
    copy_out(s, position, message.data() + copied, n);
    copied += n;
    position += n;
    if (copied < length) {
      s.head.store(position, std::memory_order_seq_cst);
      signal(s.space_seq, s.space_waiters);
    }
  }
  Finish finish{s, position};
  consume(context, message.data(), length);
}

}  // namespace

QueueCore::QueueCore(std::size_t maxsize, std::size_t buffer_bytes, bool joinable) {
  if (buffer_bytes < 64) {
    throw std::invalid_argument("'buffer_bytes' must be at least 64, not " +
                                std::to_string(buffer_bytes));
  }
  place_ = create_place(kRingOffset + buffer_bytes);
  auto* s = new (place_.as<QueueState>()) QueueState{};
  s->kind = Kind::queue;
  s->joinable = joinable ? 1 : 0;
  s->capacity = buffer_bytes;
  s->maxsize = maxsize;
}

const Place& QueueCore::checked() const {
  if (!place_.segment) throw std::invalid_argument("the queue is closed");
  return place_;
}

void QueueCore::put(std::span<const std::byte> message, const Clock::time_point* deadline) {
  QueueState& s = state();
  check_broken(s);
  if ((s.flags.load(std::memory_order_seq_cst) & kShutdown) != 0) throw queue::ShutDown();
  const Acquired acquired = lock_word_acquire(s.write_lock.word, deadline);
  if (acquired == Acquired::no) throw queue::Full();
  LockWordGuard guard{s.write_lock.word};
  if (acquired == Acquired::owner_died && s.writing.load(std::memory_order_relaxed) != 0) {
    mark_broken(s, 0);
  }
  const auto shut_down = [&s] {
    const std::uint32_t flags = s.flags.load(std::memory_order_seq_cst);
    if ((flags & kBroken) != 0) throw_broken(s);
    if ((flags & kShutdown) != 0) throw queue::ShutDown();
  };
  const std::uint64_t length = message.size();
  const std::uint64_t total = kHeaderBytes + length;
  const std::uint64_t head_room = std::min(total, s.capacity);
  const bool admitted = wait_until_ready(
      s, s.space_seq, s.space_waiters,
      [&] {
        shut_down();
        return (s.maxsize == 0 || items(s) < s.maxsize) && free_space(s, head_room) >= head_room;
      },
      deadline, nullptr);
  if (!admitted) throw queue::Full();
  s.puts.fetch_add(1, std::memory_order_seq_cst);
  if (s.joinable != 0) s.unfinished.fetch_add(1, std::memory_order_seq_cst);
  if ((s.flags.load(std::memory_order_seq_cst) & kShutdown) != 0) {
    // shutdown() came in between: it may be draining and waiting for this item; take it back.
    s.puts.fetch_sub(1, std::memory_order_seq_cst);
    if (s.joinable != 0 && s.unfinished.fetch_sub(1, std::memory_order_seq_cst) == 1) {
      signal(s.join_seq, s.join_waiters);
    }
    signal(s.data_seq, s.data_waiters);
    throw queue::ShutDown();
  }

  std::uint64_t position = s.tail.load(std::memory_order_relaxed);
  if (total <= s.capacity) {
    copy_in(s, position, reinterpret_cast<const std::byte*>(&length), kHeaderBytes);
    copy_in(s, position + kHeaderBytes, message.data(), length);
    s.tail.store(position + total, std::memory_order_seq_cst);
    signal(s.data_seq, s.data_waiters);
    return;
  }
  // Larger than the ring (which was empty when it began): chunks, as the reader makes room.
  s.writing.store(1, std::memory_order_relaxed);
  copy_in(s, position, reinterpret_cast<const std::byte*>(&length), kHeaderBytes);
  position += kHeaderBytes;
  s.tail.store(position, std::memory_order_seq_cst);
  signal(s.data_seq, s.data_waiters);
  std::uint64_t written = 0;
  while (written < length) {
    wait_until_ready(
        s, s.space_seq, s.space_waiters,
        [&] {
          check_broken(s);
          return free_space(s, 1) > 0;
        },
        nullptr, &s.read_lock);
    const std::uint64_t n = std::min(free_space(s, 1), length - written);
    copy_in(s, position, message.data() + written, n);
    written += n;
    position += n;
    s.tail.store(position, std::memory_order_seq_cst);
    signal(s.data_seq, s.data_waiters);
  }
  s.writing.store(0, std::memory_order_relaxed);
}

void QueueCore::get(void (*consume)(void* context, const std::byte* data, std::size_t size),
                    void* context, const Clock::time_point* deadline) {
  QueueState& s = state();
  check_broken(s);
  const Acquired acquired = lock_word_acquire(s.read_lock.word, deadline);
  if (acquired == Acquired::no) throw queue::Empty();
  LockWordGuard guard{s.read_lock.word};
  if (acquired == Acquired::owner_died && s.reading.load(std::memory_order_relaxed) != 0) {
    mark_broken(s, 0);
  }
  const bool arrived = wait_until_ready(
      s, s.data_seq, s.data_waiters,
      [&s] {
        const std::uint32_t flags = s.flags.load(std::memory_order_seq_cst);
        if ((flags & kBroken) != 0) throw_broken(s);
        if ((flags & kImmediate) != 0) throw queue::ShutDown();
        if (published_after(s, s.head.load(std::memory_order_relaxed), kHeaderBytes) >=
            kHeaderBytes) {
          return true;
        }
        if ((flags & kShutdown) != 0 && items(s) == 0) {
          throw queue::ShutDown();
        }
        return false;
      },
      deadline, nullptr);
  if (!arrived) throw queue::Empty();
  take_message(s, consume, context);
}

std::size_t QueueCore::qsize() const {
  return static_cast<std::size_t>(items(state()));
}

std::size_t QueueCore::maxsize() const {
  return static_cast<std::size_t>(state().maxsize);
}

std::size_t QueueCore::buffer_bytes() const {
  return static_cast<std::size_t>(state().capacity);
}

void QueueCore::task_done() {
  QueueState& s = state();
  std::uint64_t unfinished = s.unfinished.load(std::memory_order_relaxed);
  do {
    if (unfinished == 0) throw std::invalid_argument("task_done() called too many times");
  } while (!s.unfinished.compare_exchange_weak(
      unfinished, unfinished - 1, std::memory_order_seq_cst, std::memory_order_relaxed));
  if (unfinished == 1) signal(s.join_seq, s.join_waiters);
}

void QueueCore::join() {
  QueueState& s = state();
  wait_until_ready(
      s, s.join_seq, s.join_waiters,
      [&s] { return s.unfinished.load(std::memory_order_seq_cst) == 0; }, nullptr, nullptr);
}

void QueueCore::shutdown(bool immediate) {
  QueueState& s = state();
  s.flags.fetch_or(kShutdown | (immediate ? kImmediate : 0), std::memory_order_seq_cst);
  wake_everyone(s);
  if (!immediate) return;
  // Drop what is queued, counting each dropped item done, as Python's shutdown(immediate=True).
  lock_word_acquire(s.read_lock.word, nullptr);
  LockWordGuard guard{s.read_lock.word};
  while (items(s) != 0) {
    const bool arrived = wait_until_ready(
        s, s.data_seq, s.data_waiters,
        [&s] {
          check_broken(s);
          return items(s) == 0 || published_after(s, s.head.load(std::memory_order_relaxed),
                                                  kHeaderBytes) >= kHeaderBytes;
        },
        nullptr, nullptr);
    if (!arrived || items(s) == 0) break;
    take_message(
        s, [](void*, const std::byte*, std::size_t) {}, nullptr);
    if (s.joinable != 0) {
      std::uint64_t unfinished = s.unfinished.load(std::memory_order_relaxed);
      while (unfinished != 0 && !s.unfinished.compare_exchange_weak(unfinished, unfinished - 1,
                                                                    std::memory_order_seq_cst)) {
      }
      if (unfinished == 1) signal(s.join_seq, s.join_waiters);
    }
  }
}

bool QueueCore::is_shutdown() const {
  return (state().flags.load(std::memory_order_relaxed) & kShutdown) != 0;
}

}  // namespace spindle::multiprocessing::detail
