// FrameReader and FrameWriter, the framed stream between a pool and its workers: frames
// batched into one system call, large payloads read straight into their message, descriptors
// riding with their frame, and a corrupt header reported.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "spindle/detail/process_channel.hpp"
#include "support/sanitizers.hpp"

namespace detail = spindle::multiprocessing::detail;

namespace {

struct SocketPair {
  SocketPair() {
    std::tie(writer, reader) = detail::socket_pair();
    detail::set_nonblocking(writer);
  }
  ~SocketPair() {
    detail::close_fd(writer);
    detail::close_fd(reader);
  }
  int writer = -1;
  int reader = -1;
};

detail::Message message_of(std::string bytes) {
  detail::Message message;
  message.bytes = std::move(bytes);
  return message;
}

std::string pattern(std::size_t size, char seed) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    text[i] = static_cast<char>(seed + static_cast<char>(i % 251));
  return text;
}

// Reads frames until `count` have arrived (blocking reads).
std::vector<detail::Message> read_frames(detail::FrameReader& reader, std::size_t count) {
  std::vector<detail::Message> frames;
  detail::Message message;
  while (frames.size() < count) {
    if (reader.pop(message)) {
      frames.push_back(std::move(message));
      continue;
    }
    if (!reader.fill(true)) break;
  }
  return frames;
}

// A frame header announcing `length` bytes and no descriptors.
std::string header_of_length(std::uint64_t length) {
  std::string header(detail::frame_header_size, '\0');
  const std::uint32_t magic = detail::frame_magic;
  std::memcpy(header.data(), &magic, sizeof magic);
  std::memcpy(header.data() + 8, &length, sizeof length);
  return header;
}

// This machine's memory and swap, in bytes.
std::uint64_t memory_and_swap() {
  struct sysinfo info {};
  if (::sysinfo(&info) != 0) return 0;
  return (std::uint64_t{info.totalram} + info.totalswap) * info.mem_unit;
}

// The most memory this process has had resident (VmHWM, in KiB) since the last
// reset_peak_resident(); -1 if unknown.
long peak_resident_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}
bool reset_peak_resident() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

// A descriptor's identity, to check that the one received is the one sent.
std::pair<dev_t, ino_t> identity(int fd) {
  struct stat status {};
  ::fstat(fd, &status);
  return {status.st_dev, status.st_ino};
}

}  // namespace

TEST(FrameChannel, ManySmallFramesArriveInOrder) {
  SocketPair sockets;
  detail::FrameWriter writer;
  for (int i = 0; i < 1000; ++i)
    writer.push(message_of("frame " + std::to_string(i)));
  std::thread sender([&] { writer.flush_blocking(sockets.writer); });
  detail::FrameReader reader(sockets.reader);
  const auto frames = read_frames(reader, 1000);
  sender.join();
  ASSERT_EQ(frames.size(), 1000u);
  for (int i = 0; i < 1000; ++i)
    EXPECT_EQ(frames[i].bytes, "frame " + std::to_string(i));
  EXPECT_FALSE(reader.buffered());
}

TEST(FrameChannel, LargeFramesBetweenSmallOnesArriveWhole) {
  SocketPair sockets;
  detail::FrameWriter writer;
  const std::vector<std::string> payloads = {"a", pattern(3 << 20, 'x'), "", pattern(70000, 'q'),
                                             "z", pattern(65536, 'k')};
  for (const auto& payload : payloads)
    writer.push(message_of(payload));
  std::thread sender([&] { writer.flush_blocking(sockets.writer); });
  detail::FrameReader reader(sockets.reader);
  const auto frames = read_frames(reader, payloads.size());
  sender.join();
  ASSERT_EQ(frames.size(), payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i)
    EXPECT_EQ(frames[i].bytes, payloads[i]) << "frame " << i;
}

TEST(FrameChannel, DescriptorsTravelWithTheirFrame) {
  SocketPair sockets;
  int first_pipe[2];
  int second_pipe[2];
  ASSERT_EQ(::pipe2(first_pipe, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(second_pipe, O_CLOEXEC), 0);
  const auto first_identity = identity(first_pipe[0]);
  const auto second_identity = identity(second_pipe[0]);
  detail::FrameWriter writer;
  writer.push(message_of("plain"));
  detail::Message small = message_of("with one descriptor");
  small.fds.push_back(::dup(first_pipe[0]));
  writer.push(std::move(small));
  detail::Message large = message_of(pattern(1 << 20, 'L'));
  large.fds.push_back(::dup(second_pipe[0]));
  writer.push(std::move(large));
  writer.push(message_of("after"));
  std::thread sender([&] { writer.flush_blocking(sockets.writer); });
  detail::FrameReader reader(sockets.reader);
  const auto frames = read_frames(reader, 4);
  sender.join();
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_TRUE(frames[0].fds.empty());
  ASSERT_EQ(frames[1].fds.size(), 1u);
  EXPECT_EQ(identity(frames[1].fds[0]), first_identity);
  ASSERT_EQ(frames[2].fds.size(), 1u);
  EXPECT_EQ(identity(frames[2].fds[0]), second_identity);
  EXPECT_EQ(frames[2].bytes, pattern(1 << 20, 'L'));
  EXPECT_EQ(frames[3].bytes, "after");
  for (int fd : {first_pipe[0], first_pipe[1], second_pipe[0], second_pipe[1]})
    ::close(fd);
}

TEST(FrameChannel, BorrowedBytesFollowTheOwnedOnesInTheirFrame) {
  SocketPair sockets;
  const std::string elements = pattern(200000, 'b');
  detail::Message borrowing = message_of("head:");
  borrowing.borrowed = elements;
  detail::Message viewed = message_of("viewed:");
  viewed.borrowed = "tail";
  detail::FrameWriter writer;
  writer.push(std::move(borrowing));
  writer.push_view(viewed, {});
  writer.push(message_of("after"));
  std::thread sender([&] { writer.flush_blocking(sockets.writer); });
  detail::FrameReader reader(sockets.reader);
  const auto frames = read_frames(reader, 3);
  sender.join();
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].bytes, "head:" + elements);
  EXPECT_EQ(frames[1].bytes, "viewed:tail");
  EXPECT_EQ(frames[2].bytes, "after");
  EXPECT_EQ(viewed.bytes, "viewed:");  // push_view left it alone
}

TEST(FrameChannel, OwnedBorrowedBytesAreSentAsTheyWereAfterTheOwnerChangesThem) {
  SocketPair sockets;
  const std::string original = pattern(4 << 20, 'o');
  auto elements = std::make_unique<std::string>(original);
  detail::Message borrowing = message_of("head:");
  borrowing.borrowed = *elements;
  detail::Message viewed = message_of(pattern(100000, 'v'));
  detail::FrameWriter writer;
  writer.push(std::move(borrowing));
  writer.push_view(viewed, {});
  ASSERT_FALSE(writer.flush(sockets.writer));  // the socket took only part of the first frame
  writer.own_borrowed();
  std::fill(elements->begin(), elements->end(), 'X');
  elements.reset();
  viewed.bytes.assign(100000, 'Y');
  std::thread sender([&] { writer.flush_blocking(sockets.writer); });
  detail::FrameReader reader(sockets.reader);
  const auto frames = read_frames(reader, 2);
  sender.join();
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_TRUE(frames[0].bytes == "head:" + original);
  EXPECT_TRUE(frames[1].bytes == pattern(100000, 'v'));
}

TEST(FrameChannel, NonBlockingFillWithNothingToReadReturnsTrue) {
  SocketPair sockets;
  detail::set_nonblocking(sockets.reader);
  detail::FrameReader reader(sockets.reader);
  EXPECT_TRUE(reader.fill(false));
  detail::Message message;
  EXPECT_FALSE(reader.pop(message));
}

TEST(FrameChannel, EndOfStreamInsideALargeFrameIsSeen) {
  SocketPair sockets;
  detail::FrameWriter writer;
  writer.push(message_of(pattern(16 << 20, 'e')));
  ASSERT_FALSE(writer.flush(sockets.writer));  // the socket took only part of it
  ::shutdown(sockets.writer, SHUT_WR);
  detail::FrameReader reader(sockets.reader);
  detail::Message message;
  bool open = true;
  while (open && !reader.pop(message))
    open = reader.fill(true);
  EXPECT_FALSE(open);
  EXPECT_TRUE(reader.buffered());  // the unfinished frame
}

TEST(FrameChannel, CorruptHeaderIsReported) {
  SocketPair sockets;
  const std::string garbage(32, '\x7f');
  ASSERT_EQ(::write(sockets.writer, garbage.data(), garbage.size()),
            static_cast<ssize_t>(garbage.size()));
  detail::FrameReader reader(sockets.reader);
  ASSERT_TRUE(reader.fill(true));
  detail::Message message;
  EXPECT_THROW(reader.pop(message), detail::CorruptMessage);
}

// A header announcing more bytes than this machine could hold is corrupt at once: no reader
// tries to make room for it.
TEST(FrameChannel, AFrameLongerThanTheMachineCouldHoldIsCorrupt) {
  const std::uint64_t length = (std::uint64_t{1} << 40) - 1;
  if (memory_and_swap() >= length) GTEST_SKIP() << "this machine could hold such a frame";
  const std::string header = header_of_length(length);
  {
    SocketPair sockets;
    ASSERT_EQ(::write(sockets.writer, header.data(), header.size()),
              static_cast<ssize_t>(header.size()));
    detail::FrameReader reader(sockets.reader);
    detail::Message message;
    EXPECT_THROW(
        {
          while (!reader.pop(message))
            ASSERT_TRUE(reader.fill(true));
        },
        detail::CorruptMessage);
  }
  SocketPair sockets;
  ASSERT_EQ(::write(sockets.writer, header.data(), header.size()),
            static_cast<ssize_t>(header.size()));
  detail::Message message;
  EXPECT_THROW(detail::recv_frame(sockets.reader, message), detail::CorruptMessage);
}

// A header announcing a large payload of which only a little comes: the readers take memory
// for what comes, not for what was announced.
TEST(FrameChannel, APayloadTakesMemoryOnlyAsItsBytesArrive) {
#if SPINDLE_TEST_SANITIZED
  GTEST_SKIP() << "the sanitizer's allocator touches memory of its own for a large block";
#endif
  constexpr std::uint64_t announced = std::uint64_t{1} << 30;
  constexpr long tolerance_kib = 64 * 1024;
  if (memory_and_swap() < 2 * announced) GTEST_SKIP() << "too little memory to tell";
  if (!reset_peak_resident() || peak_resident_kib() < 0) GTEST_SKIP() << "no peak to measure";
  const std::string frame = header_of_length(announced) + pattern(100000, 'p');
  {
    SocketPair sockets;
    ASSERT_EQ(::write(sockets.writer, frame.data(), frame.size()),
              static_cast<ssize_t>(frame.size()));
    ::shutdown(sockets.writer, SHUT_WR);
    const long before = peak_resident_kib();
    detail::FrameReader reader(sockets.reader);
    detail::Message message;
    bool open = true;
    while (open && !reader.pop(message))
      open = reader.fill(true);
    EXPECT_FALSE(open);  // the stream ended inside the frame
    EXPECT_LT(peak_resident_kib() - before, tolerance_kib);
  }
  ASSERT_TRUE(reset_peak_resident());
  SocketPair sockets;
  ASSERT_EQ(::write(sockets.writer, frame.data(), frame.size()),
            static_cast<ssize_t>(frame.size()));
  ::shutdown(sockets.writer, SHUT_WR);
  const long before = peak_resident_kib();
  detail::Message message;
  EXPECT_THROW(detail::recv_frame(sockets.reader, message), detail::CorruptMessage);
  EXPECT_LT(peak_resident_kib() - before, tolerance_kib);
}

TEST(FrameChannel, UnsentFramesAreTheOnesNotBegun) {
  SocketPair sockets;
  detail::FrameWriter writer;
  writer.push(message_of("first"));
  writer.push(message_of(pattern(16 << 20, 'u')));  // more than the socket takes
  writer.push(message_of("third"));
  writer.push(message_of("fourth"));
  EXPECT_EQ(writer.unsent_frames(), 4u);
  ASSERT_FALSE(writer.flush(sockets.writer));
  EXPECT_EQ(writer.unsent_frames(), 2u);
}

TEST(RecycledBuffer, AKeptBufferIsHandedOutAgain) {
  std::string buffer = detail::recycled_buffer(100000);
  EXPECT_TRUE(buffer.empty());
  EXPECT_GE(buffer.capacity(), 100000u);
  buffer.assign(1000, 'x');
  const char* storage = buffer.data();
  detail::recycle_buffer(std::move(buffer));
  std::string again = detail::recycled_buffer(50000);
  EXPECT_TRUE(again.empty());  // emptied, with its storage kept
  EXPECT_EQ(again.data(), storage);
  detail::recycle_buffer(std::move(again));
}

TEST(RecycledBuffer, SmallAndHugeBuffersAreNotKept) {
  std::string small = detail::recycled_buffer(100);
  EXPECT_GE(small.capacity(), 100u);
  detail::recycle_buffer(std::move(small));  // freed, not kept
  std::string huge = detail::recycled_buffer(64 << 20);
  EXPECT_GE(huge.capacity(), std::size_t{64} << 20);
  detail::recycle_buffer(std::move(huge));  // freed, not kept
  EXPECT_EQ(huge.capacity(), std::string().capacity());
}

TEST(RecycledBuffer, ManyThreadsTakeAndGiveBack) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 2000; ++i) {
        std::string buffer =
            detail::recycled_buffer(20000 + static_cast<std::size_t>(i % 7) * 1000);
        buffer.assign(100, 'b');
        detail::recycle_buffer(std::move(buffer));
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_GE(detail::recycled_buffer(20000).capacity(), 20000u);
}

namespace {
// The VmFlags line of the mapping in /proc/self/smaps that holds `address`.
std::string vm_flags_of(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto where = reinterpret_cast<std::uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR, &begin, &end) == 2 &&
        line.find(':') > line.find('-')) {
      inside = begin <= where && where < end;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return {};
}
}  // namespace

// A private anonymous mapping of `size` bytes, unmapped at the end of the scope.
struct Mapping {
  explicit Mapping(std::size_t size)
      : size(size),
        data(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) {}
  ~Mapping() {
    if (data != MAP_FAILED) ::munmap(data, size);
  }
  std::size_t size;
  void* data;
};

TEST(HugePages, TheAlignedPartOfALargeRangeIsMarkedForHugePages) {
  if (!std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled")) {
    GTEST_SKIP() << "this kernel has no transparent huge pages";
  }
  const Mapping mapping(std::size_t{8} << 20);
  ASSERT_NE(mapping.data, MAP_FAILED);
  detail::advise_huge_pages(mapping.data, mapping.size);
  constexpr std::uintptr_t huge_page = std::uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<std::uintptr_t>(mapping.data);
  const std::uintptr_t aligned = (begin + huge_page - 1) & ~(huge_page - 1);
  EXPECT_NE(vm_flags_of(reinterpret_cast<const void*>(aligned)).find(" hg"), std::string::npos);
  auto* bytes = static_cast<char*>(mapping.data);
  bytes[mapping.size - 1] = 'x';  // still ordinary memory to its owner
  EXPECT_EQ(bytes[mapping.size - 1], 'x');
}

TEST(HugePages, ARangeWithoutAnAlignedHugePageIsLeftAlone) {
  const Mapping mapping(std::size_t{64} << 10);
  ASSERT_NE(mapping.data, MAP_FAILED);
  detail::advise_huge_pages(mapping.data, mapping.size);
  EXPECT_EQ(vm_flags_of(mapping.data).find(" hg"), std::string::npos);
}
