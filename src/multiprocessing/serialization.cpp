#include "spindle/detail/serialization.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <functional>
#include <ios>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <system_error>
#include <typeinfo>
#include <unordered_map>
#include <variant>

#include "spindle/detail/exception_info.hpp"
#include "spindle/futures.hpp"
#include "spindle/multiprocessing.hpp"
#include "spindle/queue.hpp"
#include "spindle/threading.hpp"

namespace spindle::multiprocessing::detail {
namespace {

thread_local Encoder* current_encoder = nullptr;
thread_local Decoder* current_decoder = nullptr;

template <class E>
std::exception_ptr make(const ExceptionRecord& record) {
  if constexpr (std::is_constructible_v<E, std::string>) {
    return std::make_exception_ptr(E(record.message));
  } else {
    return std::make_exception_ptr(E());
  }
}

using Factory = std::exception_ptr (*)(const ExceptionRecord&);

const std::unordered_map<std::string, Factory>& factories() {
  static const std::unordered_map<std::string, Factory> table = {
      {"std::exception", &make<std::exception>},
      {"std::logic_error", &make<std::logic_error>},
      {"std::invalid_argument", &make<std::invalid_argument>},
      {"std::domain_error", &make<std::domain_error>},
      {"std::length_error", &make<std::length_error>},
      {"std::out_of_range", &make<std::out_of_range>},
      {"std::runtime_error", &make<std::runtime_error>},
      {"std::range_error", &make<std::range_error>},
      {"std::overflow_error", &make<std::overflow_error>},
      {"std::underflow_error", &make<std::underflow_error>},
      {"std::bad_alloc", &make<std::bad_alloc>},
      {"std::bad_array_new_length", &make<std::bad_array_new_length>},
      {"std::bad_cast", &make<std::bad_cast>},
      {"std::bad_typeid", &make<std::bad_typeid>},
      {"std::bad_exception", &make<std::bad_exception>},
      {"std::bad_function_call", &make<std::bad_function_call>},
      {"std::bad_weak_ptr", &make<std::bad_weak_ptr>},
      {"std::bad_optional_access", &make<std::bad_optional_access>},
      {"std::bad_variant_access", &make<std::bad_variant_access>},
      {"std::ios_base::failure", &make<std::ios_base::failure>},
      {"std::ios_base::failure[abi:cxx11]", &make<std::ios_base::failure>},
      {"spindle::Error", &make<spindle::Error>},
      {"spindle::TimeoutError", &make<spindle::TimeoutError>},
      {"spindle::EOFError", &make<spindle::EOFError>},
      {"spindle::futures::CancelledError", &make<spindle::futures::CancelledError>},
      {"spindle::futures::InvalidStateError", &make<spindle::futures::InvalidStateError>},
      {"spindle::futures::BrokenExecutor", &make<spindle::futures::BrokenExecutor>},
      {"spindle::futures::BrokenThreadPool", &make<spindle::futures::BrokenThreadPool>},
      {"spindle::futures::BrokenProcessPool", &make<spindle::futures::BrokenProcessPool>},
      {"spindle::queue::Empty", &make<spindle::queue::Empty>},
      {"spindle::queue::Full", &make<spindle::queue::Full>},
      {"spindle::queue::ShutDown", &make<spindle::queue::ShutDown>},
      {"spindle::threading::BrokenBarrierError", &make<spindle::threading::BrokenBarrierError>},
      {"spindle::multiprocessing::detail::CorruptMessage", &make<CorruptMessage>},
  };
  return table;
}

}  // namespace

namespace {
// Buffers from 16 KiB to 4 MiB, at most 32 of them: enough for the chunks in flight between
// a pool and its workers, little enough to hold no more than a few megabytes.
constexpr std::size_t kept_buffer_max = 4 * 1024 * 1024;
constexpr std::size_t kept_buffers = 32;

struct KeptBuffers {
  std::mutex mutex;
  std::vector<std::string> buffers;
};
KeptBuffers& kept() {
  static auto* buffers = new KeptBuffers();  // immortal: used from exit paths
  return *buffers;
}
}  // namespace

std::string recycled_buffer(std::size_t capacity) {
  if (capacity >= recycled_buffer_min && capacity <= kept_buffer_max) {
    KeptBuffers& pool = kept();
    std::lock_guard lock(pool.mutex);
    for (auto it = pool.buffers.rbegin(); it != pool.buffers.rend(); ++it) {
      if (it->capacity() >= capacity) {
        std::string buffer = std::move(*it);
        pool.buffers.erase(std::next(it).base());
        return buffer;
      }
    }
  }
  std::string buffer;
  buffer.reserve(capacity);
  return buffer;
}

void recycle_buffer(std::string buffer) noexcept {
  if (buffer.capacity() < recycled_buffer_min || buffer.capacity() > kept_buffer_max) return;
  buffer.clear();
  KeptBuffers& pool = kept();
  std::lock_guard lock(pool.mutex);
  if (pool.buffers.size() >= kept_buffers) return;
  try {
    pool.buffers.push_back(std::move(buffer));
  } catch (const std::bad_alloc&) {  // not kept, then
  }
}

void advise_huge_pages(void* data, std::size_t size) noexcept {
  constexpr std::uintptr_t huge_page = std::uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t first = (begin + huge_page - 1) & ~(huge_page - 1);
  const std::uintptr_t last = (begin + size) & ~(huge_page - 1);
  if (last <= first) return;
  // Only a hint: when huge pages are off or none is free, the pages are small as before.
  ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

void Message::close_fds() noexcept {
  for (int fd : fds)
    ::close(fd);
  fds.clear();
}

Encoder::Encoder(Message& message)
    : message_(message),
      sink_(message.bytes),
      stream_(&sink_),
      archive_(stream_),
      outer_(std::exchange(current_encoder, this)) {}

Encoder::~Encoder() {
  current_encoder = outer_;
}

Decoder::Decoder(std::string_view bytes, std::vector<int> fds)
    : source_(bytes.data(), bytes.size()),
      stream_(&source_),
      archive_(stream_),
      fds_(std::move(fds)),
      outer_(std::exchange(current_decoder, this)) {}

Decoder::~Decoder() {
  current_decoder = outer_;
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

void Decoder::raw(void* data, std::size_t size) {
  if (size > source_.remaining()) {
    throw CorruptMessage("corrupt message: " + std::to_string(size) + " bytes expected, " +
                         std::to_string(source_.remaining()) + " left");
  }
  source_.sgetn(static_cast<char*>(data), static_cast<std::streamsize>(size));
}

const char* Decoder::view(std::size_t size) {
  if (size > source_.remaining()) {
    throw CorruptMessage("corrupt message: " + std::to_string(size) + " bytes expected, " +
                         std::to_string(source_.remaining()) + " left");
  }
  return source_.take(size);
}

std::size_t Decoder::size(std::size_t min_bytes_each) {
  std::uint64_t value = 0;
  raw(&value, sizeof value);
  if (min_bytes_each > 0 && value > source_.remaining() / min_bytes_each) {
    throw CorruptMessage("corrupt message: a size of " + std::to_string(value) +
                         " does not fit in the " + std::to_string(source_.remaining()) +
                         " bytes left");
  }
  return static_cast<std::size_t>(value);
}

int Decoder::take_fd(std::uint32_t index) {
  if (index >= fds_.size() || fds_[index] < 0) {
    throw CorruptMessage("corrupt message: file descriptor " + std::to_string(index) +
                         " is missing");
  }
  return std::exchange(fds_[index], -1);
}

std::uint32_t attach_fd(int fd) {
  if (current_encoder == nullptr) {
    throw std::logic_error(
        "a handle that owns a file descriptor can only be saved for another "
        "process (spindle::multiprocessing)");
  }
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw std::system_error(errno, std::generic_category(), "dup");
  auto& fds = current_encoder->message().fds;
  fds.push_back(copy);
  return static_cast<std::uint32_t>(fds.size() - 1);
}

int take_fd(std::uint32_t index) {
  if (current_decoder == nullptr) {
    throw std::logic_error(
        "a handle that owns a file descriptor can only be loaded from "
        "another process (spindle::multiprocessing)");
  }
  return current_decoder->take_fd(index);
}

ExceptionRecord record_exception(std::exception_ptr error) noexcept {
  ExceptionRecord record;
  try {
    const spindle::detail::ExceptionInfo info = spindle::detail::describe_exception(error);
    record.type_name = info.type_name;
    record.message = info.message;
    try {
      std::rethrow_exception(error);
    } catch (const spindle::RemoteError& remote) {
      record.type_name = remote.type_name();  // keep the original type through relays
    } catch (const std::system_error& system) {
      record.code = system.code().value();
      record.category = system.code().category() == std::system_category() ? "system" : "generic";
    } catch (...) {
    }
  } catch (...) {
  }
  return record;
}

std::exception_ptr rebuild_exception(const ExceptionRecord& record) {
  if (record.type_name == "std::system_error") {
    const std::error_category& category =
        record.category == "system" ? std::system_category() : std::generic_category();
    // what() was "PREFIX: DESCRIPTION"; the rebuilt error appends the description again.
    std::string prefix = record.message;
    const std::string suffix = ": " + category.message(record.code);
    if (prefix.size() >= suffix.size() &&
        prefix.compare(prefix.size() - suffix.size(), suffix.size(), suffix) == 0) {
      prefix.resize(prefix.size() - suffix.size());
    }
    return std::make_exception_ptr(std::system_error(record.code, category, prefix));
  }
  const auto& table = factories();
  const auto found = table.find(record.type_name);
  if (found != table.end()) return found->second(record);
  return std::make_exception_ptr(spindle::RemoteError(record.type_name, record.message));
}

void write_exception(Encoder& out, const ExceptionRecord& record) {
  write(out, record.type_name);
  write(out, record.message);
  write(out, record.code);
  write(out, record.category);
}

ExceptionRecord read_exception(Decoder& in) {
  ExceptionRecord record;
  read(in, record.type_name);
  read(in, record.message);
  read(in, record.code);
  read(in, record.category);
  return record;
}

}  // namespace spindle::multiprocessing::detail
