// asyncio lesson: count the occurrences of a word in many large log files concurrently (what
// tutorials call "reading files asynchronously"). Done properly: the files are read with
// libuv's asynchronous file operations (uv_fs_open / uv_fs_read / uv_fs_close run on libuv's
// worker threads and call back on the loop), each awaited through an asyncio::Future, so the
// loop never blocks on a disk read and the files are read side by side. Each file is read in
// 1 MiB chunks; a match that straddles two chunks is still counted once.
//
// The program first writes the logs into a temporary folder (8 files of about 4 MiB, with a
// known number of "ERROR" lines), counts, checks the total, and removes the folder.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "spindle/asyncio.hpp"
#include "spindle/detail/asyncio_uv.hpp"
#include "spindle/print.hpp"

namespace asyncio = spindle::asyncio;
using Clock = std::chrono::steady_clock;

// One libuv file-system request, awaited through an asyncio::Future. The request frees itself
// when libuv calls back, so a reader cancelled meanwhile leaves nothing dangling.
struct FsRequest {
  uv_fs_t request;
  asyncio::Future<ssize_t> done;
};

template <class Start>
asyncio::Task<ssize_t> fs_call(const std::string& what, Start start) {
  auto* request = new FsRequest{{}, asyncio::Future<ssize_t>()};
  request->request.data = request;
  asyncio::Future<ssize_t> done = request->done;
  const int rc = start(&request->request, [](uv_fs_t* finished) {
    auto* self = static_cast<FsRequest*>(finished->data);
    if (!self->done.done()) self->done.set_result(finished->result);
    uv_fs_req_cleanup(finished);
    delete self;
  });
  if (rc < 0) {
    uv_fs_req_cleanup(&request->request);
    delete request;
    throw std::system_error(-rc, std::system_category(), what);
  }
  const ssize_t result = co_await done;
  if (result < 0) throw std::system_error(static_cast<int>(-result), std::system_category(), what);
  co_return result;
}

asyncio::Task<long> count_in_file(std::string path, std::string word) {
  uv_loop_t* loop = asyncio::internal::uv_loop(asyncio::get_running_loop());
  const auto fd = static_cast<uv_file>(co_await fs_call(path, [&](uv_fs_t* request, uv_fs_cb cb) {
    return uv_fs_open(loop, request, path.c_str(), O_RDONLY, 0, cb);
  }));
  std::vector<char> chunk(1 << 20);
  std::string text;  // the end of the previous chunk, then this chunk
  long count = 0;
  std::int64_t offset = 0;
  for (;;) {
    uv_buf_t buffer = uv_buf_init(chunk.data(), static_cast<unsigned>(chunk.size()));
    const ssize_t n = co_await fs_call(path, [&](uv_fs_t* request, uv_fs_cb cb) {
      return uv_fs_read(loop, request, fd, &buffer, 1, offset, cb);
    });
    if (n == 0) break;
    offset += n;
    text.append(chunk.data(), static_cast<std::size_t>(n));
    for (std::size_t at = text.find(word); at != std::string::npos;
         at = text.find(word, at + word.size()))
      ++count;
    // Keep less than a word: a match found next time must end in the next chunk.
    text.erase(0, text.size() - std::min(text.size(), word.size() - 1));
  }
  co_await fs_call(
      path, [&](uv_fs_t* request, uv_fs_cb cb) { return uv_fs_close(loop, request, fd, cb); });
  co_return count;
}

asyncio::Task<long> count_everywhere(std::vector<std::string> paths, std::string word) {
  std::vector<asyncio::Task<long>> counts;
  for (const std::string& path : paths)
    counts.push_back(count_in_file(path, word));
  std::vector<long> results = co_await asyncio::gather(std::move(counts));
  long total = 0;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    spindle::print("{}: {} occurrence(s) of '{}'",
                   std::filesystem::path(paths[i]).filename().string(), results[i], word);
    total += results[i];
  }
  co_return total;
}

// Writes `files` logs of about `bytes` each; returns their paths and how many ERROR lines
// they hold in all.
std::vector<std::string> write_logs(const std::filesystem::path& folder, int files,
                                    std::size_t bytes, long& errors) {
  std::vector<std::string> paths;
  errors = 0;
  for (int f = 0; f < files; ++f) {
    const std::filesystem::path path = folder / ("server-" + std::to_string(f) + ".log");
    std::ofstream out(path, std::ios::binary);
    std::size_t written = 0;
    for (long line = 0; written < bytes; ++line) {
      std::string text = "2024-05-0" + std::to_string(1 + f % 9) +
                         " 12:00:" + std::to_string(10 + line % 50) + " worker-" +
                         std::to_string(line % 4);
      if ((line + f) % 7 == 0) {
        text += " ERROR request " + std::to_string(line) + " failed: upstream timed out\n";
        ++errors;
      } else {
        text += " INFO request " + std::to_string(line) + " served in 12 ms\n";
      }
      out << text;
      written += text.size();
    }
    paths.push_back(path.string());
  }
  return paths;
}

int main() {
  const std::filesystem::path folder =
      std::filesystem::temp_directory_path() / ("spindle-logs-" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);
  long expected = 0;
  const std::vector<std::string> paths = write_logs(folder, 8, 4 << 20, expected);

  const auto start = Clock::now();
  const long total = asyncio::run(count_everywhere(paths, "ERROR"));
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Total occurrences of 'ERROR' in {} files: {} (expected {}){}", paths.size(),
                 total, expected, total == expected ? "" : " MISMATCH");
  std::filesystem::remove_all(folder);
  spindle::print("Finished in {:.2f} second(s)", elapsed);
  return total == expected ? 0 : 1;
}
