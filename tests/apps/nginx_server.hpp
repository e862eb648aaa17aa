// Test helper: nginx (Debian nginx-light) serving a folder on 127.0.0.1, started by the test
// with its own prefix, configuration, logs and pid file in a temporary folder; no root needed.
#pragma once

#include <pwd.h>

#include "command_runner.hpp"
#include "http/loopback_server.hpp"

namespace spindle_test {

class NginxServer {
 public:
  // Serves `root` at /files/ and at /slow/ (100 kB/s); /status/500 and /status/503 answer with that
  // status, /redirect sends 302 to /files/a.txt.
  explicit NginxServer(const std::filesystem::path& root) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      int port = 0;
      ::close(bound_loopback_socket(port, false));  // a port free a moment ago
      if (start(root, port)) return;
    }
    throw std::runtime_error("nginx did not start; see " + (prefix_.path() / "error.log").string() +
                             ":\n" + read_file(prefix_.path() / "error.log"));
  }
  ~NginxServer() { stop(); }

  int port() const { return port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  // Requests for `path` in the access log so far (nginx writes each line as it answers).
  int requests_for(const std::string& path) const {
    const std::string log = read_file(prefix_.path() / "access.log");
    const std::string needle = "\"GET " + path + " ";
    int count = 0;
    for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1))
      ++count;
    return count;
  }

 private:
  bool start(const std::filesystem::path& root, int port) {
    const auto prefix = prefix_.path();
    const passwd* user = ::getpwuid(::geteuid());
    std::ofstream(prefix / "nginx.conf")
        << "worker_processes 1;\n"
        << "pid " << (prefix / "nginx.pid").string() << ";\n"
        << "error_log " << (prefix / "error.log").string() << ";\n"
        << (user != nullptr && ::geteuid() == 0 ? "user " + std::string(user->pw_name) + ";\n"
                                                : std::string())
        << "events { worker_connections 256; }\n"
        << "http {\n"
        << "  access_log " << (prefix / "access.log").string() << ";\n"
        << "  client_body_temp_path " << (prefix / "body").string() << ";\n"
        << "  proxy_temp_path " << (prefix / "proxy").string() << ";\n"
        << "  fastcgi_temp_path " << (prefix / "fastcgi").string() << ";\n"
        << "  uwsgi_temp_path " << (prefix / "uwsgi").string() << ";\n"
        << "  scgi_temp_path " << (prefix / "scgi").string() << ";\n"
        << "  default_type application/octet-stream;\n"
        << "  server {\n"
        << "    listen 127.0.0.1:" << port << ";\n"
        << "    location /files/ { alias " << root.string() << "/; }\n"
        << "    location /slow/ { alias " << root.string() << "/; limit_rate 100k; }\n"
        << "    location = /status/500 { return 500; }\n"
        << "    location = /status/503 { return 503; }\n"
        << "    location = /redirect { return 302 /files/a.txt; }\n"
        << "  }\n"
        << "}\n";
    const std::string conf = (prefix / "nginx.conf").string();
    const std::string error_log = (prefix / "error.log").string();
    const std::string prefix_arg = prefix.string() + "/";
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::execl(SPINDLE_NGINX, "nginx", "-p", prefix_arg.c_str(), "-c", conf.c_str(), "-e",
              error_log.c_str(), "-g", "daemon off;", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Waiting for another process to listen: try to connect until it does or exits.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (accepts_connections(port)) {
        port_ = port;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    return false;
  }

  static bool accepts_connections(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    const bool connected =
        ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return connected;
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  TemporaryFolder prefix_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace spindle_test
