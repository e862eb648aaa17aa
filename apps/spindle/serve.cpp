// spindle serve [--host 127.0.0.1] [--port N] [--files DIR]: the test HTTP/1.1 server
// (test_server.hpp) in the foreground until SIGINT or SIGTERM. The first line on stdout is
// the bound address ("http://127.0.0.1:PORT"; with --json a JSON object), so that a program
// starting it with --port 0 learns the port chosen.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <optional>
#include <string>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "test_server.hpp"

namespace spindle_cli {

namespace {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string files;
};

int run_serve(const ServeOptions& serve, const GlobalOptions& global) {
  Console console(global, "serve");
  // Blocked here, so in the server's thread too; sigwait below takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  TestServerOptions options{.host = serve.host, .port = serve.port};
  if (!serve.files.empty()) options.files = serve.files;
  std::optional<TestServer> server;
  try {
    server.emplace(options);
  } catch (const std::invalid_argument& error) {
    throw CLI::ValidationError("--files", error.what());
  } catch (const std::system_error& error) {
    console.error(fmt::format("cannot listen on {}:{}: {}", serve.host, serve.port, error.what()));
    return kExitItemFailed;
  }
  if (console.json())
    console.out(
        nlohmann::json{{"url", server->url()}, {"host", server->host()}, {"port", server->port()}}
            .dump());
  else
    console.out(server->url());
  std::fflush(stdout);
  int received = 0;
  sigwait(&signals, &received);
  server->stop();
  return kExitOk;
}

}  // namespace

void register_serve(CLI::App& app, Context& context) {
  auto options = std::make_shared<ServeOptions>();
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Run the test HTTP/1.1 server (/status/{code}, /delay/{ms}, /bytes/{n}, /users/{id}, "
      "/files/...) until interrupted; prints its address first");
  serve->add_option("--host", options->host, "Address to listen on")->capture_default_str();
  serve->add_option("--port", options->port, "Port to listen on (0: a free one)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  serve->add_option("--files", options->files, "Folder served under /files/")
      ->check(CLI::ExistingDirectory);
  serve->callback(
      [options, &context] { context.exit_code = run_serve(*options, context.options); });
}

}  // namespace spindle_cli
