// Framed messages over Unix stream sockets: a 16-byte header (magic, descriptor count,
// payload length) and the payload; descriptors ride on the header's first byte
// (SCM_RIGHTS). A payload larger than the socket buffer is written and read in pieces.
// A reader trusts a header's length only so far: one longer than max_payload_length() is a
// corrupt frame, and a payload's memory is committed as its bytes arrive, so a corrupt
// length costs no more memory than the bytes that did come.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "spindle/detail/serialization.hpp"
#include "spindle/detail/timeout.hpp"

namespace spindle::multiprocessing::detail {

inline constexpr std::uint32_t frame_magic = 0x504D5053;  // "SPMP"
inline constexpr std::size_t frame_header_size = 16;
inline constexpr std::uint64_t max_frame_length = std::uint64_t{1} << 40;
inline constexpr std::size_t max_frame_fds = 64;
// The longest payload a frame read here may have: this machine's memory and swap (its sender,
// on the same machine, held all of it), and never more than max_frame_length.
std::uint64_t max_payload_length() noexcept;

// A connected pair of Unix stream sockets, close-on-exec. std::system_error on failure.
std::pair<int, int> socket_pair();
void close_fd(int fd) noexcept;
void set_nonblocking(int fd);

// Blocking: writes one frame (all of it). std::system_error (EPIPE when the reader is gone).
void send_frame(int fd, const Message& message);
// Blocking: reads one frame. false at a clean end of stream before a header; CorruptMessage
// for a bad header or a stream that ends inside a frame.
bool recv_frame(int fd, Message& out);
// Called with an element count; returns where count elements go (count * element_size
// bytes), for recv_counted_frame.
using MakeRoom = char* (*)(void* context, std::size_t count);
// Blocking: reads one frame holding a count and that many elements of `element_size` bytes
// (how a string or a vector of raw elements is encoded), the elements straight into
// make_room(context, count): the kernel's copy is the only one. false at a clean end of
// stream before a header; CorruptMessage (after reading the whole frame, so the stream stays
// in step) for a frame that holds anything else, a bad header or a stream that ends inside
// a frame.
bool recv_counted_frame(int fd, std::size_t element_size, MakeRoom make_room, void* context);
// Waits until `fd` is readable (or at end of stream); false when the deadline passed first.
bool wait_readable(int fd, const spindle::detail::Clock::time_point* deadline);
// Looks for data (or the end of the stream) on `fd` without sleeping, for up to `spin`;
// whether some arrived. For a reader about to block: a reply that comes within a few
// microseconds is then taken without the cost of waking a sleeping process (20-50 us on a VM).
bool spin_until_readable(int fd, std::chrono::nanoseconds spin);

// Reads frames from a socket into a buffer, many per system call. A large payload is read
// straight into its own message instead, so its bytes are copied once, by the kernel.
class FrameReader {
 public:
  explicit FrameReader(int fd) : fd_(fd) {}
  ~FrameReader();
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;
  // Moves a complete buffered frame into `out`; false if none is complete yet.
  // CorruptMessage for a bad header.
  bool pop(Message& out);
  // Reads what the socket has (blocking until something arrives when `block`); false at end
  // of stream. A non-blocking read with nothing available returns true.
  bool fill(bool block);
  bool buffered() const { return begin_ < end_ || large_.has_value(); }

 private:
  // Moves a large frame whose header is buffered into large_ (a frame whose payload is not
  // all buffered yet: the rest is then read straight into it).
  void start_large_frame();
  // Room for `want` bytes after end_ (moving the buffered bytes to the front first).
  void make_room(std::size_t want);

  int fd_;
  std::unique_ptr<char[]> buffer_;  // [begin_, end_) holds bytes not yet popped
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  // A large frame's payload: large_filled_ bytes of its large_length_ read, into as much of
  // it as is committed yet (its size).
  std::optional<Message> large_;
  std::size_t large_filled_ = 0;
  std::size_t large_length_ = 0;
  std::uint32_t large_fds_ = 0;
  std::deque<int> fds_;
};

// Frames waiting to be written to a non-blocking socket.
class FrameWriter {
 public:
  FrameWriter() = default;
  ~FrameWriter();  // closes the descriptors of frames never sent
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;
  // Queues a frame (takes its payload and descriptors; the payload is not copied). A
  // borrowed part must stay alive until it is written, or until own_borrowed().
  void push(Message&& message);
  // Queues a frame of `message`'s payload without copying or taking it: `message` must stay
  // alive and unchanged until the frame is written, or until own_borrowed(). Takes `fds`.
  void push_view(const Message& message, std::vector<int> fds);
  // Copies every borrowed byte not yet written into the queue's own storage.
  void own_borrowed();
  // Writes as much as the socket takes; true when everything queued is written.
  // std::system_error when the peer is gone.
  bool flush(int fd);
  // Blocks until everything queued is written.
  void flush_blocking(int fd);
  bool empty() const { return chunks_.empty(); }
  // How many of the frames queued last have not begun to be written: the peer has none of
  // their bytes.
  std::size_t unsent_frames() const noexcept;

 private:
  // A frame: header, then payload, then the borrowed pieces.
  struct Chunk {
    char header[frame_header_size];
    std::string payload;
    std::string_view borrowed[2];
    std::vector<int> fds;
    std::size_t sent = 0;  // of the whole frame
    std::size_t size() const {
      return frame_header_size + payload.size() + borrowed[0].size() + borrowed[1].size();
    }
  };
  Chunk& add(std::size_t length, std::size_t fds);
  std::deque<Chunk> chunks_;
};

}  // namespace spindle::multiprocessing::detail
