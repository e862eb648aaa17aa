// Shared-memory segments: naming, mapping (one mapping per object per process), the creator's
// unlink, the sweep of segments whose creator died, and SharedMemory. See
// docs/design/shared-memory.md.
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <system_error>

#include "spindle/detail/multiprocessing_shared.hpp"

namespace spindle::multiprocessing {
namespace detail {
namespace {

constexpr std::string_view kOwnedPrefix = "spindle.";

std::atomic<int> cached_pid{0};
std::mutex registry_mutex;
// Every mapping alive in this process, by the shared object's device and inode.
std::map<std::pair<std::uint64_t, std::uint64_t>, std::weak_ptr<Segment>>& registry() {
  static auto* segments =
      new std::map<std::pair<std::uint64_t, std::uint64_t>, std::weak_ptr<Segment>>();
  return *segments;  // never destroyed: handles may outlive static destruction
}

// Runs once: caches the pid and keeps the cache and the registry's mutex right across fork().
void install_fork_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    cached_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);
    ::pthread_atfork([] { registry_mutex.lock(); }, [] { registry_mutex.unlock(); },
                     [] {
                       cached_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);
                       registry_mutex.unlock();
                     });
  });
}

std::system_error os_error(int error, const std::string& what) {
  return std::system_error(error, std::generic_category(), what);
}

// The start time of process `pid` (clock ticks after boot, /proc/PID/stat field 22), with
// its state letter; nullopt when there is no such process.
struct ProcessStat {
  char state;
  std::uint64_t start_time;
};
std::optional<ProcessStat> read_process_stat(int pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!file || !std::getline(file, line)) return std::nullopt;
  const auto paren = line.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(paren + 1));
  ProcessStat stat{};
  std::string skipped;
  fields >> stat.state;
  for (int field = 4; field < 22; ++field)
    fields >> skipped;
  fields >> stat.start_time;
  if (!fields) return std::nullopt;
  return stat;
}

// This process's start time, cached per pid: a forked child must not name its segments with
// its parent's (a sweep would take them for a dead process's).
std::uint64_t own_start_time() {
  static std::atomic<int> cached_for{0};
  static std::atomic<std::uint64_t> cached_start{0};
  const int pid = current_pid();
  if (cached_for.load(std::memory_order_acquire) != pid) {
    const auto stat = read_process_stat(pid);
    cached_start.store(stat ? stat->start_time : 0, std::memory_order_relaxed);
    cached_for.store(pid, std::memory_order_release);
  }
  return cached_start.load(std::memory_order_relaxed);
}

// "spindle.<pid>.<start>.<n>" -> pid and start; false for other names.
bool parse_owned_name(std::string_view name, int& pid, std::uint64_t& start) {
  if (name.substr(0, kOwnedPrefix.size()) != kOwnedPrefix) return false;
  name.remove_prefix(kOwnedPrefix.size());
  const char* end = name.data() + name.size();
  auto [after_pid, pid_error] = std::from_chars(name.data(), end, pid);
  if (pid_error != std::errc() || after_pid == end || *after_pid != '.') return false;
  auto [after_start, start_error] = std::from_chars(after_pid + 1, end, start);
  return start_error == std::errc() && after_start != end && *after_start == '.';
}

}  // namespace

int current_pid() {
  const int pid = cached_pid.load(std::memory_order_relaxed);
  if (pid != 0) return pid;
  install_fork_handlers();
  return cached_pid.load(std::memory_order_relaxed);
}

bool process_gone(int pid) {
  if (::kill(pid, 0) == -1 && errno == ESRCH) return true;
  const auto stat = read_process_stat(pid);
  // Unreadable (another user's process behind hidepid): assume it lives.
  return stat && (stat->state == 'Z' || stat->state == 'X');
}

std::size_t sweep_orphaned_segments() {
  std::size_t removed = 0;
  DIR* directory = ::opendir("/dev/shm");
  if (directory == nullptr) return 0;
  while (const dirent* entry = ::readdir(directory)) {
    int pid = 0;
    std::uint64_t start = 0;
    if (!parse_owned_name(entry->d_name, pid, start)) continue;
    const auto stat = read_process_stat(pid);
    const bool creator_alive =
        stat && stat->start_time == start && stat->state != 'Z' && stat->state != 'X';
    if (creator_alive) continue;
    if (::shm_unlink((std::string("/") + entry->d_name).c_str()) == 0) ++removed;
  }
  ::closedir(directory);
  return removed;
}

Segment::Segment(std::string name, std::byte* data, std::size_t size, Key key, int owner_pid)
    : name_(std::move(name)), data_(data), size_(size), key_(key), owner_pid_(owner_pid) {}

Segment::~Segment() {
  ::munmap(data_, size_);
  {
    std::lock_guard guard(registry_mutex);
    auto& segments = registry();
    const auto it = segments.find({key_.device, key_.inode});
    if (it != segments.end() && it->second.expired()) segments.erase(it);
  }
  if (owner_pid_ != 0 && owner_pid_ == current_pid()) ::shm_unlink(name_.c_str());
}

std::shared_ptr<Segment> Segment::map(int fd, std::string name, int owner_pid) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    throw os_error(error, "cannot stat shared memory '" + name + "'");
  }
  const Key key{static_cast<std::uint64_t>(info.st_dev), static_cast<std::uint64_t>(info.st_ino)};
  std::lock_guard guard(registry_mutex);
  auto& slot = registry()[{key.device, key.inode}];
  if (auto existing = slot.lock()) {
    ::close(fd);
    return existing;
  }
  const auto size = static_cast<std::size_t>(info.st_size);
  void* data =
      size == 0 ? MAP_FAILED : ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int error = size == 0 ? EINVAL : errno;
  ::close(fd);
  if (data == MAP_FAILED) throw os_error(error, "cannot map shared memory '" + name + "'");
  std::shared_ptr<Segment> segment(
      new Segment(std::move(name), static_cast<std::byte*>(data), size, key, owner_pid));
  slot = segment;
  return segment;
}

namespace {
// The first bytes of a segment spindle makes for itself hold the object's control state (a
// lock word, a queue's indexes): they get real pages at once, so a full /dev/shm is an error
// at construction, not a SIGBUS at the first touch. The rest (a queue's ring) is paged in as
// it is reached.
constexpr std::size_t kReservedControlBytes = 64 * 1024;

// Creates "/name" exclusively with `size` bytes, `reserve` of them backed by real pages;
// returns the descriptor or -1 with errno.
int create_exclusive(const std::string& posix_name, std::size_t size, std::size_t reserve = 0) {
  const int fd = ::shm_open(posix_name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  int fallocate_error = 0;
  if (reserve != 0) {
    fallocate_error = ::posix_fallocate(fd, 0, static_cast<off_t>(std::min(reserve, size)));
  }
  if (fallocate_error != 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int error = fallocate_error != 0 ? fallocate_error : errno;
    ::close(fd);
    ::shm_unlink(posix_name.c_str());
    errno = error;
    return -1;
  }
  return fd;
}

// Why "/name" could not be created: the system's error, naming the block, and for ENOSPC
// where the space ran out (tmpfs pages come from /dev/shm's size limit).
std::system_error create_error(int error, const std::string& posix_name) {
  return os_error(error, "cannot create shared memory '" + posix_name.substr(1) + "'" +
                             (error == ENOSPC ? " (/dev/shm is full)" : ""));
}
}  // namespace

std::shared_ptr<Segment> Segment::create_owned(std::size_t size) {
  static std::once_flag swept;
  std::call_once(swept, [] { sweep_orphaned_segments(); });
  static std::atomic<std::uint64_t> counter{0};
  for (;;) {
    std::string name("/");
    name.append(kOwnedPrefix);
    name.append(std::to_string(current_pid())).append(".");
    name.append(std::to_string(own_start_time())).append(".");
    name.append(std::to_string(counter.fetch_add(1, std::memory_order_relaxed)));
    const int fd = create_exclusive(name, size, kReservedControlBytes);
    if (fd >= 0) return map_created(fd, std::move(name), current_pid());
    if (errno != EEXIST) throw create_error(errno, name);
  }
}

std::shared_ptr<Segment> Segment::create_named(const std::string& posix_name, std::size_t size) {
  const int fd = create_exclusive(posix_name, size);
  if (fd < 0) throw create_error(errno, posix_name);
  return map_created(fd, posix_name, 0);
}

std::shared_ptr<Segment> Segment::map_created(int fd, std::string posix_name, int owner_pid) {
  const std::string name = posix_name;
  try {
    return map(fd, std::move(posix_name), owner_pid);
  } catch (...) {
    ::shm_unlink(name.c_str());  // as Python: a block that could not be mapped is not left behind
    throw;
  }
}

std::shared_ptr<Segment> Segment::attach(const std::string& posix_name) {
  const int fd = ::shm_open(posix_name.c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw os_error(errno, "cannot open shared memory '" + posix_name.substr(1) + "'");
  }
  return map(fd, posix_name, 0);
}

Place create_place(std::size_t size) {
  return Place{Segment::create_owned(size), 0};
}

Place attach_place(const std::string& name, std::uint64_t offset, Kind kind) {
  Place place{Segment::attach(name), static_cast<std::size_t>(offset)};
  if (offset % alignof(std::uint64_t) != 0 || offset + sizeof(Kind) > place.segment->size() ||
      *place.as<Kind>() != kind) {
    throw std::invalid_argument("the handle's shared memory '" + name.substr(1) + "' at offset " +
                                std::to_string(offset) +
                                " does not hold the kind of object it names");
  }
  return place;
}

Place create_array(std::size_t element_size, std::size_t data_offset, std::size_t length) {
  if (length > (std::numeric_limits<std::ptrdiff_t>::max() - data_offset) / element_size) {
    throw std::invalid_argument("Array length " + std::to_string(length) +
                                " is too large (a negative length converted to size_t?)");
  }
  Place place = create_place(data_offset + std::max<std::size_t>(length * element_size, 1));
  auto* header = new (place.as<ArrayHeader>()) ArrayHeader{};
  header->kind = Kind::array;
  header->element_size = static_cast<std::uint32_t>(element_size);
  header->length = length;
  header->lock.kind = Kind::rlock;
  return place;
}

Place attach_array(const std::string& name, std::uint64_t offset, std::size_t element_size) {
  Place place = attach_place(name, offset, Kind::array);
  const auto& header = *place.as<ArrayHeader>();
  if (header.element_size != element_size) {
    throw std::invalid_argument("the handle's shared memory '" + name.substr(1) + "' holds " +
                                std::to_string(header.element_size) + "-byte elements, not " +
                                std::to_string(element_size) + "-byte ones");
  }
  return place;
}

void throw_no_shared_object() {
  throw std::logic_error("this handle names no shared object: it was moved from, or never loaded");
}

void throw_corrupt_message(std::size_t size, std::size_t expected) {
  throw spindle::Error(
      "corrupt queue message: " + std::to_string(size) + " bytes where the item type needs " +
      (size < expected ? std::to_string(expected) : "a multiple of " + std::to_string(expected)));
}

}  // namespace detail

namespace shared_memory {

SharedMemory::SharedMemory(std::string name, bool create, std::size_t size) {
  if (name.find('\0') != std::string::npos) {
    throw std::invalid_argument("SharedMemory name '" + name.substr(0, name.find('\0')) +
                                "\\0...' contains a null character");
  }
  const bool named = !name.empty();
  if (named && name.front() == '/') name.erase(0, 1);
  if (named && (name.empty() || name.find('/') != std::string::npos)) {
    throw std::invalid_argument("SharedMemory name '" + name +
                                "' may not contain '/' (other than a leading one)");
  }
  if (!create) {
    if (name.empty()) throw std::invalid_argument("'name' can only be empty if create=true");
    segment_ = detail::Segment::attach("/" + name);
  } else {
    if (size == 0 || size > static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max())) {
      throw std::invalid_argument("'size' must be a positive number different from zero");
    }
    if (!name.empty()) {
      segment_ = detail::Segment::create_named("/" + name, size);
    } else {
      std::random_device random;
      std::uniform_int_distribution<std::uint32_t> digits;
      while (!segment_) {
        char generated[16];
        std::snprintf(generated, sizeof generated, "psm_%08x", digits(random));
        try {
          segment_ = detail::Segment::create_named(std::string("/") + generated, size);
          name = generated;
        } catch (const std::system_error& error) {
          if (error.code() != std::errc::file_exists) throw;
        }
      }
    }
  }
  name_ = std::move(name);
  size_ = segment_->size();
}

std::span<std::byte> SharedMemory::buf() const {
  if (!segment_) throw std::logic_error("SharedMemory '" + name_ + "' is closed");
  return {segment_->data(), segment_->size()};
}

void SharedMemory::unlink() {
  if (::shm_unlink(("/" + name_).c_str()) != 0) {
    throw detail::os_error(errno, "cannot unlink shared memory '" + name_ + "'");
  }
}

}  // namespace shared_memory
}  // namespace spindle::multiprocessing
