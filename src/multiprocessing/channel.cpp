#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

#include "spindle/detail/process_channel.hpp"

namespace spindle::multiprocessing::detail {
namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string make_header(std::size_t length, std::size_t fds) {
  if (fds > max_frame_fds) {
    throw std::invalid_argument("a message can carry at most " + std::to_string(max_frame_fds) +
                                " file descriptors");
  }
  std::string header(frame_header_size, '\0');
  const std::uint32_t magic = frame_magic;
  const auto count = static_cast<std::uint32_t>(fds);
  const auto size = static_cast<std::uint64_t>(length);
  std::memcpy(header.data(), &magic, 4);
  std::memcpy(header.data() + 4, &count, 4);
  std::memcpy(header.data() + 8, &size, 8);
  return header;
}

struct Header {
  std::uint32_t fds;
  std::uint64_t length;
};

Header parse_header(const char* bytes) {
  std::uint32_t magic = 0;
  Header header{};
  std::memcpy(&magic, bytes, 4);
  std::memcpy(&header.fds, bytes + 4, 4);
  std::memcpy(&header.length, bytes + 8, 8);
  if (magic != frame_magic) {
    char text[16];
    std::snprintf(text, sizeof text, "%08x", magic);
    throw CorruptMessage(std::string("corrupt frame: bad magic number 0x") + text +
                         " (the peer is not speaking spindle's protocol, or the stream is out of "
                         "step)");
  }
  if (header.length > max_payload_length()) {
    throw CorruptMessage("corrupt frame: impossible length " + std::to_string(header.length) +
                         " (no frame here can be longer than " +
                         std::to_string(max_payload_length()) +
                         " bytes, this machine's memory and swap)");
  }
  if (header.fds > max_frame_fds) {
    throw CorruptMessage("corrupt frame: impossible descriptor count " +
                         std::to_string(header.fds));
  }
  return header;
}

// A payload's memory is committed this much at a time, as its bytes arrive (the whole of it
// is only reserved, which costs address space, not memory): a corrupt length then costs no
// more than the bytes that did come. More than a socket buffer holds, so that one read is
// never cut short by it.
constexpr std::size_t payload_step = 4 << 20;

// How far to commit `payload` next, when `have` bytes of its `length` are in.
std::size_t next_payload_size(std::size_t have, std::uint64_t length) {
  return have + static_cast<std::size_t>(std::min<std::uint64_t>(length - have, payload_step));
}

// sendmsg of `iov`, with `fds` attached when not empty. Returns bytes written or -1.
ssize_t send_with_fds(int fd, iovec* iov, std::size_t iov_count, const int* fds,
                      std::size_t fd_count, int flags) {
  msghdr message{};
  message.msg_iov = iov;
  message.msg_iovlen = iov_count;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_frame_fds)];
  if (fd_count > 0) {
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fd_count);
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
    std::memcpy(CMSG_DATA(header), fds, sizeof(int) * fd_count);
  }
  ssize_t written;
  do {
    written = ::sendmsg(fd, &message, flags | MSG_NOSIGNAL);
  } while (written < 0 && errno == EINTR);
  return written;
}

// recvmsg into [data, data+size), appending received descriptors to `fds`.
ssize_t receive_with_fds(int fd, char* data, std::size_t size, std::deque<int>& fds, int flags) {
  iovec iov{data, size};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_frame_fds)];
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  ssize_t got;
  do {
    got = ::recvmsg(fd, &message, flags | MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  if (got >= 0) {
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
         header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS) {
        const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int received;
          std::memcpy(&received, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
          fds.push_back(received);
        }
      }
    }
  }
  return got;
}

bool wait_for(int fd, short events) {
  pollfd entry{fd, events, 0};
  while (::poll(&entry, 1, -1) < 0) {
    if (errno != EINTR) throw_errno("poll");
  }
  return true;
}

void take_fds(std::deque<int>& from, std::size_t count, std::vector<int>& to) {
  if (from.size() < count) {
    throw CorruptMessage("corrupt frame: it announces " + std::to_string(count) +
                         " file descriptors but " + std::to_string(from.size()) + " arrived");
  }
  for (std::size_t i = 0; i < count; ++i) {
    to.push_back(from.front());
    from.pop_front();
  }
}

}  // namespace

std::uint64_t max_payload_length() noexcept {
  static const std::uint64_t limit = [] {
    struct sysinfo info {};
    if (::sysinfo(&info) != 0) return max_frame_length;
    const std::uint64_t memory =
        (std::uint64_t{info.totalram} + std::uint64_t{info.totalswap}) * info.mem_unit;
    return std::min(memory, max_frame_length);
  }();
  return limit;
}

std::pair<int, int> socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw_errno("socketpair");
  // A larger send buffer (the kernel caps it at net.core.wmem_max) lets a big message cross
  // in fewer hand-offs between writer and reader. Memory is only used while data is queued.
  const int buffer = 1 << 20;
  for (int fd : fds) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  }
  return {fds[0], fds[1]};
}

void close_fd(int fd) noexcept {
  if (fd >= 0) ::close(fd);
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) throw_errno("fcntl");
}

void send_frame(int fd, const Message& message) {
  std::string header = make_header(message.size(), message.fds.size());
  constexpr std::size_t parts = 3;
  iovec iov[parts] = {{header.data(), header.size()},
                      {const_cast<char*>(message.bytes.data()), message.bytes.size()},
                      {const_cast<char*>(message.borrowed.data()), message.borrowed.size()}};
  std::size_t first = 0;
  bool fds_sent = message.fds.empty();
  while (first < parts) {
    const ssize_t written =
        send_with_fds(fd, iov + first, parts - first, fds_sent ? nullptr : message.fds.data(),
                      fds_sent ? 0 : message.fds.size(), 0);
    if (written < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_for(fd, POLLOUT);
        continue;
      }
      throw_errno("send");
    }
    fds_sent = true;
    auto left = static_cast<std::size_t>(written);
    while (first < parts && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (first < parts) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
}

namespace {

// Blocking: reads up to `size` bytes into `data`, stopping early only at end of stream;
// descriptors that arrive go to `fds`. Returns how many bytes were read.
std::size_t read_fully(int fd, char* data, std::size_t size, std::deque<int>& fds) {
  std::size_t have = 0;
  while (have < size) {
    const ssize_t n = receive_with_fds(fd, data + have, size - have, fds, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_for(fd, POLLIN);
        continue;
      }
      throw_errno("recv");
    }
    if (n == 0) break;
    have += static_cast<std::size_t>(n);
  }
  return have;
}

void close_all(const std::deque<int>& fds) noexcept {
  for (int received : fds)
    close_fd(received);
}

// The next frame's header; empty at a clean end of stream before it. CorruptMessage for a
// stream that ends inside it or a bad header.
std::optional<Header> read_header(int fd, std::deque<int>& fds) {
  char bytes[frame_header_size];
  const std::size_t got = read_fully(fd, bytes, frame_header_size, fds);
  if (got == 0) return std::nullopt;
  if (got < frame_header_size) {
    throw CorruptMessage("corrupt frame: the stream ended inside a frame header");
  }
  return parse_header(bytes);
}

CorruptMessage ended_inside_payload(std::uint64_t length) {
  return CorruptMessage("corrupt frame: the stream ended inside a " + std::to_string(length) +
                        "-byte payload");
}

}  // namespace

bool recv_frame(int fd, Message& out) {
  std::deque<int> fds;
  Message message;
  try {
    const std::optional<Header> header = read_header(fd, fds);
    if (!header) return false;
    message.bytes.reserve(static_cast<std::size_t>(header->length));
    while (message.bytes.size() < header->length) {
      const std::size_t have = message.bytes.size();
      message.bytes.resize(next_payload_size(have, header->length));
      const std::size_t piece = message.bytes.size() - have;
      if (read_fully(fd, message.bytes.data() + have, piece, fds) < piece) {
        throw ended_inside_payload(header->length);
      }
    }
    take_fds(fds, header->fds, message.fds);
  } catch (...) {
    close_all(fds);
    throw;
  }
  close_all(fds);
  out = std::move(message);
  return true;
}

bool recv_counted_frame(int fd, std::size_t element_size, MakeRoom make_room, void* context) {
  std::deque<int> fds;
  try {
    const std::optional<Header> read = read_header(fd, fds);
    if (!read) return false;
    const Header header = *read;
    std::uint64_t count = 0;
    const std::uint64_t prefix = std::min<std::uint64_t>(header.length, sizeof count);
    if (read_fully(fd, reinterpret_cast<char*>(&count), prefix, fds) < prefix) {
      throw ended_inside_payload(header.length);
    }
    const std::uint64_t elements_length = header.length - prefix;
    if (header.fds != 0 || prefix < sizeof count || count > elements_length / element_size ||
        count * element_size != elements_length) {
      // Read past the rest of the frame, then report it.
      char discard[64 * 1024];
      for (std::uint64_t left = elements_length; left > 0;) {
        const std::size_t piece =
            static_cast<std::size_t>(std::min<std::uint64_t>(left, sizeof discard));
        if (read_fully(fd, discard, piece, fds) < piece) throw ended_inside_payload(header.length);
        left -= piece;
      }
      throw CorruptMessage("corrupt message: a " + std::to_string(header.length) +
                           "-byte message with " + std::to_string(header.fds) +
                           " descriptors does not hold a count and that many " +
                           std::to_string(element_size) + "-byte elements");
    }
    char* elements = make_room(context, static_cast<std::size_t>(count));
    if (read_fully(fd, elements, elements_length, fds) < elements_length) {
      throw ended_inside_payload(header.length);
    }
  } catch (...) {
    close_all(fds);
    throw;
  }
  close_all(fds);
  return true;
}

bool spin_until_readable(int fd, std::chrono::nanoseconds spin) {
  const auto until = spindle::detail::Clock::now() + spin;
  do {
    char byte;
    if (::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) >= 0) return true;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;  // recv reports it
  } while (spindle::detail::Clock::now() < until);
  return false;
}

bool wait_readable(int fd, const spindle::detail::Clock::time_point* deadline) {
  pollfd entry{fd, POLLIN, 0};
  for (;;) {
    int timeout_ms = -1;
    if (deadline != nullptr) {
      const auto left = *deadline - spindle::detail::Clock::now();
      timeout_ms = left <= left.zero()
                       ? 0
                       : static_cast<int>(std::min<std::int64_t>(
                             std::chrono::ceil<std::chrono::milliseconds>(left).count(), 1 << 30));
    }
    const int ready = ::poll(&entry, 1, timeout_ms);
    if (ready > 0) return true;
    if (ready == 0) {
      if (deadline == nullptr || spindle::detail::Clock::now() >= *deadline) return false;
      continue;
    }
    if (errno != EINTR) throw_errno("poll");
  }
}

// ---- FrameReader ----

namespace {
// Payloads from this size on are read straight into their message.
constexpr std::size_t large_frame = 64 * 1024;
constexpr std::size_t read_size = 64 * 1024;
}  // namespace

FrameReader::~FrameReader() {
  for (int fd : fds_)
    close_fd(fd);
}

bool FrameReader::pop(Message& out) {
  if (large_) {
    if (large_filled_ < large_length_) return false;
    take_fds(fds_, large_fds_, large_->fds);
    out = std::move(*large_);
    large_.reset();
    return true;
  }
  const std::size_t available = end_ - begin_;
  if (available < frame_header_size) return false;
  const Header header = parse_header(buffer_.get() + begin_);
  if (available - frame_header_size < header.length) return false;
  Message message;
  message.bytes.assign(buffer_.get() + begin_ + frame_header_size, header.length);
  take_fds(fds_, header.fds, message.fds);
  begin_ += frame_header_size + header.length;
  if (begin_ == end_) begin_ = end_ = 0;
  out = std::move(message);
  return true;
}

void FrameReader::start_large_frame() {
  const std::size_t available = end_ - begin_;
  if (available < frame_header_size) return;
  const Header header = parse_header(buffer_.get() + begin_);
  const std::size_t have = available - frame_header_size;
  if (header.length < large_frame || have >= header.length) return;
  // Reserved only: committed as the bytes arrive (see fill).
  std::string payload = recycled_buffer(static_cast<std::size_t>(header.length));
  payload.assign(buffer_.get() + begin_ + frame_header_size, have);
  large_.emplace();
  large_->bytes = std::move(payload);
  large_filled_ = have;
  large_length_ = static_cast<std::size_t>(header.length);
  large_fds_ = header.fds;
  begin_ = end_ = 0;
}

void FrameReader::make_room(std::size_t want) {
  if (capacity_ - end_ >= want) return;
  const std::size_t kept = end_ - begin_;
  if (begin_ > 0 && capacity_ - kept >= want) {
    std::memmove(buffer_.get(), buffer_.get() + begin_, kept);
  } else {
    const std::size_t capacity = std::max(kept + want, capacity_ * 2);
    std::unique_ptr<char[]> grown(new char[capacity]);
    if (kept > 0) std::memcpy(grown.get(), buffer_.get() + begin_, kept);
    buffer_ = std::move(grown);
    capacity_ = capacity;
  }
  begin_ = 0;
  end_ = kept;
}

bool FrameReader::fill(bool block) {
  // A bad header is reported by pop(); here it only means "not a large frame".
  try {
    if (!large_) start_large_frame();
  } catch (const CorruptMessage&) {
  }
  char* target;
  std::size_t want;
  if (large_) {
    std::string& bytes = large_->bytes;
    if (large_filled_ == bytes.size())
      bytes.resize(next_payload_size(large_filled_, large_length_));
    target = bytes.data() + large_filled_;
    want = bytes.size() - large_filled_;  // not past this frame
  } else {
    make_room(read_size);
    target = buffer_.get() + end_;
    want = capacity_ - end_;
  }
  for (;;) {
    const ssize_t n = receive_with_fds(fd_, target, want, fds_, block ? 0 : MSG_DONTWAIT);
    if (n >= 0) {
      (large_ ? large_filled_ : end_) += static_cast<std::size_t>(n);
      return n > 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!block) return true;
      wait_for(fd_, POLLIN);
      continue;
    }
    if (errno == ECONNRESET) return false;
    throw_errno("recv");
  }
}

// ---- FrameWriter ----

FrameWriter::~FrameWriter() {
  for (Chunk& chunk : chunks_) {
    for (int fd : chunk.fds) {
      close_fd(fd);
    }
  }
}

FrameWriter::Chunk& FrameWriter::add(std::size_t length, std::size_t fds) {
  const std::string header = make_header(length, fds);
  Chunk& chunk = chunks_.emplace_back();
  std::memcpy(chunk.header, header.data(), frame_header_size);
  return chunk;
}

void FrameWriter::push(Message&& message) {
  Chunk& chunk = add(message.size(), message.fds.size());
  chunk.payload = std::move(message.bytes);
  chunk.borrowed[0] = std::exchange(message.borrowed, {});
  chunk.fds = std::exchange(message.fds, {});
}

void FrameWriter::push_view(const Message& message, std::vector<int> fds) {
  Chunk* chunk = nullptr;
  try {
    chunk = &add(message.size(), fds.size());
  } catch (...) {
    for (int fd : fds)
      close_fd(fd);
    throw;
  }
  chunk->borrowed[0] = message.bytes;
  chunk->borrowed[1] = message.borrowed;
  chunk->fds = std::move(fds);
}

void FrameWriter::own_borrowed() {
  for (Chunk& chunk : chunks_) {
    for (std::string_view& piece : chunk.borrowed) {
      chunk.payload.append(piece);
      piece = {};
    }
  }
}

std::size_t FrameWriter::unsent_frames() const noexcept {
  std::size_t unsent = 0;
  for (auto chunk = chunks_.rbegin(); chunk != chunks_.rend() && chunk->sent == 0; ++chunk)
    ++unsent;
  return unsent;
}

bool FrameWriter::flush(int fd) {
  while (!chunks_.empty()) {
    // One sendmsg for a run of chunks; a chunk with descriptors starts its own run.
    constexpr std::size_t max_iov = 64;
    iovec iov[max_iov];
    std::size_t count = 0;
    const Chunk& first = chunks_.front();
    const bool with_fds = first.sent == 0 && !first.fds.empty();
    for (auto it = chunks_.begin(); it != chunks_.end() && count + 4 <= max_iov; ++it) {
      if (it != chunks_.begin() && !it->fds.empty()) break;
      // The parts of the frame, from where the last write stopped.
      std::size_t skip = it->sent;
      auto part = [&](const char* data, std::size_t size) {
        if (skip >= size) {
          skip -= size;
          return;
        }
        iov[count++] = {const_cast<char*>(data) + skip, size - skip};
        skip = 0;
      };
      part(it->header, frame_header_size);
      part(it->payload.data(), it->payload.size());
      for (const std::string_view piece : it->borrowed)
        part(piece.data(), piece.size());
    }
    const ssize_t written = send_with_fds(fd, iov, count, with_fds ? first.fds.data() : nullptr,
                                          with_fds ? first.fds.size() : 0, MSG_DONTWAIT);
    if (written < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      throw_errno("send");
    }
    if (with_fds) {
      for (int sent_fd : chunks_.front().fds)
        close_fd(sent_fd);
      chunks_.front().fds.clear();
    }
    auto left = static_cast<std::size_t>(written);
    while (!chunks_.empty()) {
      Chunk& chunk = chunks_.front();
      const std::size_t rest = chunk.size() - chunk.sent;
      if (left < rest) {
        chunk.sent += left;
        break;
      }
      left -= rest;
      recycle_buffer(std::move(chunk.payload));
      chunks_.pop_front();
    }
  }
  return true;
}

void FrameWriter::flush_blocking(int fd) {
  while (!flush(fd))
    wait_for(fd, POLLOUT);
}

}  // namespace spindle::multiprocessing::detail
