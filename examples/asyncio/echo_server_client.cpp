// asyncio lesson: a TCP echo server and its client on streams (the Python documentation's
// "TCP echo client and server using streams"). The server answers each client with what it
// sent; the client sends "Hello World!", prints the reply and closes. Both run in one program
// here: the server listens on a free port of 127.0.0.1, the client connects to it, then the
// server is closed (Python's version serves forever and is stopped with Ctrl-C).
#include <chrono>
#include <string>

#include "spindle/asyncio.hpp"
#include "spindle/print.hpp"

namespace asyncio = spindle::asyncio;
using Clock = std::chrono::steady_clock;

asyncio::Task<> handle_echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  std::string message = co_await reader.read(100);
  auto address = writer.get_extra_info("peername");
  spindle::print("Received '{}' from {}", message, address ? address->to_string() : "?");
  spindle::print("Send: '{}'", message);
  writer.write(message);
  co_await writer.drain();
  spindle::print("Close the connection");
  writer.close();
  co_await writer.wait_closed();
}

asyncio::Task<> tcp_echo_client(std::string message, int port) {
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  spindle::print("Send: '{}'", message);
  writer.write(message);
  co_await writer.drain();
  std::string data = co_await reader.read(100);
  spindle::print("Received: '{}'", data);
  spindle::print("Close the connection");
  writer.close();
  co_await writer.wait_closed();
}

asyncio::Task<> main_task() {
  asyncio::Server server = co_await asyncio::start_server(handle_echo, "127.0.0.1", 0);
  std::string addresses;
  for (const asyncio::SocketAddress& address : server.sockets())
    addresses += (addresses.empty() ? "" : ", ") + address.to_string();
  spindle::print("Serving on {}", addresses);
  auto serving = asyncio::create_task(server.serve_forever());
  co_await tcp_echo_client("Hello World!", server.port());
  server.close();  // ends serve_forever with CancelledError, as Ctrl-C would
  try {
    co_await serving;
  } catch (const asyncio::CancelledError&) {
    spindle::print("Server closed");
  }
}

int main() {
  const auto start = Clock::now();
  asyncio::run(main_task());
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
