// asyncio subprocesses on uv_spawn: create_subprocess_exec / _shell and Process. The pipes
// are Streams on uv_pipe_t. See docs/design/asyncio.md, "Streams and subprocesses".
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <string>
#include <utility>
#include <vector>

#include "streams_internal.hpp"

namespace spindle::asyncio {
namespace internal {

// The uv_process_t of a child. Freed by its close callback, after the child exited (or was
// killed and reaped because its Process went away).
struct ProcessHandle {
  uv_process_t process;
  ProcessState* owner = nullptr;
  static void on_close(uv_handle_t* handle) { delete static_cast<ProcessHandle*>(handle->data); }
};

struct ProcessState {
  ProcessHandle* handle = nullptr;  // null once the child has exited
  int pid = 0;
  std::optional<int> returncode;
  std::optional<StreamWriter> in;
  std::optional<StreamReader> out;
  std::optional<StreamReader> err;
  ParkingList exit_waiters;

  ProcessState() = default;
  ProcessState(const ProcessState&) = delete;
  ProcessState& operator=(const ProcessState&) = delete;
  ~ProcessState() {
    if (handle == nullptr) return;
    // Still running: kill and reap it (Python's transport.close() kills the child too).
    handle->owner = nullptr;
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (close_or_adopt(reinterpret_cast<uv_handle_t*>(&handle->process), &ProcessHandle::on_close))
      delete handle;
  }

  static void on_exit(uv_process_t* process, std::int64_t exit_status, int term_signal) {
    auto* handle = static_cast<ProcessHandle*>(process->data);
    if (ProcessState* self = handle->owner) {
      self->returncode = term_signal != 0 ? -term_signal : static_cast<int>(exit_status);
      self->handle = nullptr;
      self->exit_waiters.wake_all();
    }
    if (close_or_adopt(reinterpret_cast<uv_handle_t*>(process), &ProcessHandle::on_close))
      delete handle;
  }
};

namespace {

// File descriptors opened for a spawn, closed when it is over (the child has its copies).
class Descriptors {
 public:
  Descriptors() = default;
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  ~Descriptors() {
    for (int fd : fds_)
      ::close(fd);
  }
  int keep(int fd) {
    fds_.push_back(fd);
    return fd;
  }
  // Removes `fd` from the list without closing it (the parent's end, now owned by a Stream).
  void release(int fd) { std::erase(fds_, fd); }

 private:
  std::vector<int> fds_;
};

std::system_error errno_error(const std::string& what) {
  return std::system_error(std::error_code(errno, std::system_category()), what);
}

StreamRef pipe_stream(EventLoop& loop, int fd, std::size_t limit, Descriptors& fds) {
  StreamRef stream(Stream::create_pipe(loop, limit));
  if (int rc = uv_pipe_open(&stream->uv.pipe, fd); rc != 0)
    throw uv_system_error(rc, "asyncio: cannot open a pipe to the child");
  fds.release(fd);
  return stream;
}

Task<int> wait_process(std::shared_ptr<ProcessState> state) {
  while (!state->returncode)
    co_await Parked(state->exit_waiters);
  co_return *state->returncode;
}

Task<> feed_stdin(std::optional<StreamWriter> in, std::optional<std::string> input) {
  if (!in) co_return;
  if (input && !input->empty()) {
    in->write(*input);
    try {
      co_await in->drain();
    } catch (const std::system_error& error) {
      // The child closed its stdin (exited early): Python ignores BrokenPipe / ConnectionReset.
      if (error.code() != std::errc::broken_pipe && error.code() != std::errc::connection_reset)
        throw;
    }
  }
  in->close();
}

Task<std::string> read_to_end(std::optional<StreamReader> reader) {
  if (!reader) co_return std::string();
  co_return co_await reader->read();
}

Task<Communicated> communicate_with(std::shared_ptr<ProcessState> state,
                                    std::optional<std::string> input) {
  if (input && !state->in)
    throw std::logic_error("Process::communicate: input given but stdin is not subprocess::PIPE");
  auto [fed, out, err] = co_await gather(feed_stdin(state->in, std::move(input)),
                                         read_to_end(state->out), read_to_end(state->err));
  static_cast<void>(fed);
  co_await wait_process(state);
  co_return Communicated{std::move(out), std::move(err)};
}

}  // namespace
}  // namespace internal

int Process::pid() const {
  return state_->pid;
}

StreamWriter& Process::in() {
  if (!state_->in) throw std::logic_error("Process::in: stdin is not subprocess::PIPE");
  return *state_->in;
}
StreamReader& Process::out() {
  if (!state_->out) throw std::logic_error("Process::out: stdout is not subprocess::PIPE");
  return *state_->out;
}
StreamReader& Process::err() {
  if (!state_->err) throw std::logic_error("Process::err: stderr is not subprocess::PIPE");
  return *state_->err;
}

Task<Communicated> Process::communicate(std::optional<std::string> input) {
  return internal::communicate_with(state_, std::move(input));
}
Task<int> Process::wait() {
  return internal::wait_process(state_);
}
std::optional<int> Process::returncode() const {
  return state_->returncode;
}

void Process::send_signal(int signal) {
  if (state_->handle == nullptr) return;  // exited already
  if (int rc = uv_process_kill(&state_->handle->process, signal); rc != 0)
    throw internal::uv_system_error(
        rc, "Process::send_signal(" + std::to_string(signal) + ") to " + std::to_string(pid()));
}
void Process::terminate() {
  send_signal(SIGTERM);
}
void Process::kill() {
  send_signal(SIGKILL);
}

namespace internal {
namespace {

Process spawn_now(std::string& program, std::vector<std::string>& args,
                  SubprocessOptions& options) {
  using internal::StreamAccess;
  using subprocess::Redirect;
  EventLoop& loop = get_running_loop();
  const std::string where = "asyncio::create_subprocess_exec(" + program + ")";
  if (options.in == Redirect::stdout_ || options.out == Redirect::stdout_)
    throw std::invalid_argument(where + ": subprocess::STDOUT is only for stderr");
  if (options.limit == 0) throw std::invalid_argument(where + ": the limit must be positive");

  internal::Descriptors fds;
  int child_fd[3] = {0, 1, 2};
  int parent_fd[3] = {-1, -1, -1};
  int devnull = -1;
  const Redirect redirects[3] = {options.in, options.out, options.err};
  for (int i = 0; i < 3; ++i) {
    switch (redirects[i]) {
      case Redirect::inherit:
        break;
      case Redirect::devnull:
        if (devnull < 0) {
          devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
          if (devnull < 0) throw internal::errno_error(where + ": cannot open /dev/null");
          fds.keep(devnull);
        }
        child_fd[i] = devnull;
        break;
      case Redirect::pipe: {
        int ends[2];
        if (::pipe2(ends, O_CLOEXEC) != 0)
          throw internal::errno_error(where + ": cannot create a pipe");
        fds.keep(ends[0]);
        fds.keep(ends[1]);
        child_fd[i] = i == 0 ? ends[0] : ends[1];
        parent_fd[i] = i == 0 ? ends[1] : ends[0];
        break;
      }
      case Redirect::stdout_:
        child_fd[i] = child_fd[1];
        break;
    }
  }

  auto state = std::make_shared<internal::ProcessState>();
  if (parent_fd[0] >= 0)
    state->in.emplace(
        StreamAccess::writer(internal::pipe_stream(loop, parent_fd[0], options.limit, fds)));
  if (parent_fd[1] >= 0)
    state->out.emplace(
        StreamAccess::reader(internal::pipe_stream(loop, parent_fd[1], options.limit, fds)));
  if (parent_fd[2] >= 0)
    state->err.emplace(
        StreamAccess::reader(internal::pipe_stream(loop, parent_fd[2], options.limit, fds)));

  std::vector<char*> argv;
  argv.push_back(program.data());
  for (std::string& arg : args)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (options.env) {
    for (std::string& entry : *options.env)
      envp.push_back(entry.data());
    envp.push_back(nullptr);
  }
  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; ++i) {
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = child_fd[i];
  }
  uv_process_options_t spawn{};
  spawn.file = program.c_str();
  spawn.args = argv.data();
  spawn.env = options.env ? envp.data() : nullptr;
  spawn.cwd = options.cwd ? options.cwd->c_str() : nullptr;
  spawn.stdio_count = 3;
  spawn.stdio = stdio;
  spawn.exit_cb = &internal::ProcessState::on_exit;

  auto* handle = new internal::ProcessHandle;
  handle->process.data = handle;
  int rc = uv_spawn(internal::uv_loop(loop), &handle->process, &spawn);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&handle->process), &internal::ProcessHandle::on_close);
    throw internal::uv_system_error(rc, where);
  }
  handle->owner = state.get();
  state->handle = handle;
  state->pid = handle->process.pid;
  if (state->out) internal::StreamAccess::ref(*state->out)->start_reading();
  if (state->err) internal::StreamAccess::ref(*state->err)->start_reading();
  return StreamAccess::process(std::move(state));
}

Task<Process> spawn(std::string program, std::vector<std::string> args, SubprocessOptions options) {
  co_return spawn_now(program, args, options);
}

}  // namespace
}  // namespace internal

Task<Process> create_subprocess_exec(std::string program, std::vector<std::string> args,
                                     SubprocessOptions options) {
  return internal::spawn(std::move(program), std::move(args), std::move(options));
}

Task<Process> create_subprocess_shell(std::string command, SubprocessOptions options) {
  return create_subprocess_exec("/bin/sh", {"-c", std::move(command)}, std::move(options));
}

}  // namespace spindle::asyncio
