#include <sys/socket.h>

#include "spindle/multiprocessing.hpp"

namespace spindle::multiprocessing::internal {

ConnectionCore& ConnectionCore::operator=(ConnectionCore&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    readable_ = other.readable_;
    writable_ = other.writable_;
  }
  return *this;
}

namespace {
// How long recv() looks for a value before it sleeps: a peer answering at once answers within
// a few microseconds, far less than waking a sleeping process costs.
constexpr auto recv_spin = std::chrono::microseconds(20);
}  // namespace

void ConnectionCore::send(const detail::Message& message) {
  detail::send_frame(fd_, message);
}

detail::Message ConnectionCore::recv() {
  detail::spin_until_readable(fd_, recv_spin);
  detail::Message message;
  if (!detail::recv_frame(fd_, message)) throw EOFError();
  return message;
}

void ConnectionCore::recv_counted(std::size_t element_size, char* (*make_room)(void*, std::size_t),
                                  void* context) {
  detail::spin_until_readable(fd_, recv_spin);
  if (!detail::recv_counted_frame(fd_, element_size, make_room, context)) throw EOFError();
}

bool ConnectionCore::poll(const spindle::detail::Clock::time_point* deadline) {
  return detail::wait_readable(fd_, deadline);
}

void ConnectionCore::close() noexcept {
  detail::close_fd(std::exchange(fd_, -1));
}

int ConnectionCore::fileno() const {
  if (fd_ < 0) throw std::logic_error("fileno on a closed Connection");
  return fd_;
}

void ConnectionCore::save(cereal::BinaryOutputArchive& archive) const {
  if (fd_ < 0) throw std::logic_error("cannot send a closed Connection to another process");
  const std::uint32_t index = detail::attach_fd(fd_);
  archive(index, readable_, writable_);
}

void ConnectionCore::load(cereal::BinaryInputArchive& archive) {
  std::uint32_t index = 0;
  bool readable = false;
  bool writable = false;
  archive(index, readable, writable);
  *this = ConnectionCore(detail::take_fd(index), readable, writable);
}

std::pair<ConnectionCore, ConnectionCore> make_pipe(bool duplex) {
  auto [a, b] = detail::socket_pair();
  if (duplex) return {ConnectionCore(a, true, true), ConnectionCore(b, true, true)};
  // Python: the first end receives, the second sends.
  ::shutdown(a, SHUT_WR);
  ::shutdown(b, SHUT_RD);
  return {ConnectionCore(a, true, false), ConnectionCore(b, false, true)};
}

}  // namespace spindle::multiprocessing::internal
