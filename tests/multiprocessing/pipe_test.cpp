// Pipe and Connection within one process (across processes: process_test.cpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "spindle/multiprocessing.hpp"

namespace mp = spindle::multiprocessing;
using namespace std::chrono_literals;

TEST(Pipe, DuplexEndsSendBothWays) {
  auto [a, b] = mp::Pipe<std::string>();
  a.send("ping");
  EXPECT_EQ(b.recv(), "ping");
  b.send("pong");
  EXPECT_EQ(a.recv(), "pong");
}

TEST(Pipe, ValuesArriveInOrder) {
  auto [a, b] = mp::Pipe<int>();
  for (int i = 0; i < 100; ++i)
    a.send(i);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(b.recv(), i);
}

TEST(Pipe, OneWayPipeFirstEndReceivesSecondSends) {
  auto [reader, writer] = mp::Pipe<int>(false);
  EXPECT_TRUE(reader.readable());
  EXPECT_FALSE(reader.writable());
  EXPECT_FALSE(writer.readable());
  EXPECT_TRUE(writer.writable());
  writer.send(5);
  EXPECT_EQ(reader.recv(), 5);
  EXPECT_THROW(reader.send(1), std::logic_error);
  EXPECT_THROW(writer.recv(), std::logic_error);
}

TEST(Pipe, SendAfterCloseIsLogicError) {
  auto [a, b] = mp::Pipe<int>();
  a.close();
  EXPECT_TRUE(a.closed());
  EXPECT_THROW(a.send(1), std::logic_error);
  EXPECT_THROW(a.recv(), std::logic_error);
  a.close();  // again: nothing
}

TEST(Pipe, RecvRaisesEOFErrorOnceTheOtherEndIsClosedAndDrained) {
  auto [a, b] = mp::Pipe<int>();
  a.send(1);
  a.send(2);
  a.close();
  EXPECT_EQ(b.recv(), 1);
  EXPECT_EQ(b.recv(), 2);
  EXPECT_THROW(b.recv(), spindle::EOFError);
}

TEST(Pipe, SendToAClosedPeerIsBrokenPipe) {
  auto [a, b] = mp::Pipe<int>();
  b.close();
  try {
    a.send(1);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EPIPE);
  }
}

TEST(Pipe, PollReportsDataAndWaitsUpToTheTimeout) {
  auto [a, b] = mp::Pipe<int>();
  EXPECT_FALSE(b.poll());
  EXPECT_FALSE(b.poll(10ms));
  a.send(3);
  EXPECT_TRUE(b.poll());
  EXPECT_TRUE(b.poll(1s));
  EXPECT_EQ(b.recv(), 3);
  EXPECT_THROW(b.poll(-1ms), std::invalid_argument);
  a.close();
  EXPECT_TRUE(b.poll());  // end of stream: recv() would not block
}

TEST(Pipe, MessageLargerThanThePipeBufferArrives) {
  auto [a, b] = mp::Pipe<std::vector<std::uint64_t>>();
  std::vector<std::uint64_t> big(4 << 20);  // 32 MiB
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = i * 7;
  std::thread sender([&, &a = a] { a.send(big); });
  const auto received = b.recv();
  sender.join();
  EXPECT_EQ(received, big);
}

TEST(Pipe, CorruptFrameIsAClearError) {
  auto [a, b] = mp::Pipe<int>();
  const char garbage[32] = "this is not a spindle frame....";
  ASSERT_EQ(::write(a.fileno(), garbage, sizeof garbage), static_cast<ssize_t>(sizeof garbage));
  try {
    b.recv();
    FAIL() << "no exception";
  } catch (const spindle::multiprocessing::detail::CorruptMessage& e) {
    EXPECT_NE(std::string(e.what()).find("bad magic"), std::string::npos) << e.what();
  }
}

TEST(Pipe, WrongTypeOnTheWireIsAClearError) {
  auto [a, b] = mp::Pipe<std::string>();
  a.send("abc");
  auto& raw = reinterpret_cast<mp::Connection<std::vector<double>>&>(b);
  EXPECT_THROW(raw.recv(), spindle::multiprocessing::detail::CorruptMessage);
}

namespace {

struct Sample {
  int id;
  double weight;
  bool operator==(const Sample&) const = default;
};

// Sends `value` from another thread (a large one fills the socket before it is read).
template <class T>
T round_trip(const T& value) {
  auto [a, b] = mp::Pipe<T>();
  std::thread sender([&, &a = a] { a.send(value); });
  T received = b.recv();
  sender.join();
  return received;
}

std::size_t open_descriptors() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    ++count;
  return count;
}

}  // namespace

TEST(Pipe, StringsAndRawVectorsOfEverySizeArriveWhole) {
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{16383},
                                 std::size_t{16384}, std::size_t{(1 << 20) + 3}}) {
    std::string text(size, 'a');
    for (std::size_t i = 0; i < size; ++i)
      text[i] = static_cast<char>('a' + i % 26);
    EXPECT_EQ(round_trip(text), text) << size;
    const std::u16string wide(size, u'\u00e9');
    EXPECT_EQ(round_trip(wide), wide) << size;
    std::vector<Sample> samples(size / 8);
    for (std::size_t i = 0; i < samples.size(); ++i)
      samples[i] = {static_cast<int>(i), i * 0.5};
    EXPECT_EQ(round_trip(samples), samples) << size;
  }
}

TEST(Pipe, WrongTypeOnTheWireLeavesTheStreamInStep) {
  auto [a, b] = mp::Pipe<std::string>();
  a.send(std::string(100000, 'x'));  // 100,000 bytes are not a whole number of doubles
  a.send("next");
  auto& raw = reinterpret_cast<mp::Connection<std::vector<double>>&>(b);
  try {
    raw.recv();
    FAIL() << "no exception";
  } catch (const spindle::multiprocessing::detail::CorruptMessage& e) {
    EXPECT_NE(std::string(e.what()).find("8-byte elements"), std::string::npos) << e.what();
  }
  EXPECT_EQ(b.recv(), "next");
}

TEST(Pipe, DescriptorsWhereAStringIsExpectedAreCorruptAndClosed) {
  auto [a, b] = mp::Pipe<mp::Connection<int>>();
  auto [c, d] = mp::Pipe<int>();
  const std::size_t before = open_descriptors();
  a.send(c);
  auto& text = reinterpret_cast<mp::Connection<std::string>&>(b);
  EXPECT_THROW(text.recv(), spindle::multiprocessing::detail::CorruptMessage);
  EXPECT_EQ(open_descriptors(), before);
}

TEST(Pipe, AStreamEndingInsideAStringIsCorrupt) {
  auto [a, b] = mp::Pipe<std::string>();
  char frame[16 + 8 + 10];
  const std::uint32_t magic = spindle::multiprocessing::detail::frame_magic;
  const std::uint32_t descriptors = 0;
  const std::uint64_t length = 8 + 100;
  const std::uint64_t count = 100;
  std::memcpy(frame, &magic, 4);
  std::memcpy(frame + 4, &descriptors, 4);
  std::memcpy(frame + 8, &length, 8);
  std::memcpy(frame + 16, &count, 8);
  std::memset(frame + 24, 'x', 10);
  ASSERT_EQ(::write(a.fileno(), frame, sizeof frame), static_cast<ssize_t>(sizeof frame));
  a.close();
  try {
    b.recv();
    FAIL() << "no exception";
  } catch (const spindle::multiprocessing::detail::CorruptMessage& e) {
    EXPECT_NE(std::string(e.what()).find("ended inside a 108-byte payload"), std::string::npos)
        << e.what();
  }
}

TEST(Pipe, ConnectionTravelsThroughAConnection) {
  auto [a, b] = mp::Pipe<mp::Connection<int>>();
  auto [x, y] = mp::Pipe<int>();
  a.send(x);
  mp::Connection<int> received = b.recv();
  received.send(99);
  EXPECT_EQ(y.recv(), 99);
  x.send(100);  // the sender keeps its own end
  EXPECT_EQ(y.recv(), 100);
}
