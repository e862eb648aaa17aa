// spindle grep [-i] [-j N] WORD FILE...: counts whole-word occurrences of WORD in many files
// at once, each file read in large chunks scanned in parallel on a ThreadPoolExecutor.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "spindle/futures.hpp"
#include "word_search.hpp"

namespace spindle_cli {

namespace {

struct GrepOptions {
  std::string word;
  std::vector<std::string> files;
  bool ignore_case = false;
  unsigned jobs = 0;
};

// A file cannot be counted; the message names the reason.
struct FileProblem : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr std::uint64_t kChunkBytes = 4u << 20;

// Counts the occurrences starting in [start, start + length) of `path`.
WordPattern::Result count_chunk(const std::string& path, std::uint64_t start, std::uint64_t length,
                                std::uint64_t file_size, const WordPattern& pattern,
                                Console& console) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FileProblem(std::strerror(errno));
  // One byte of context before the chunk, the word's length after it (see WordPattern).
  const std::uint64_t read_from = start == 0 ? 0 : start - 1;
  const std::uint64_t read_to = std::min(file_size, start + length + pattern.size());
  thread_local std::vector<char> buffer;
  buffer.resize(read_to - read_from);
  std::size_t have = 0;
  while (have < buffer.size()) {
    const ssize_t got = ::pread(fd, buffer.data() + have, buffer.size() - have,
                                static_cast<off_t>(read_from + have));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      throw FileProblem(std::strerror(error));
    }
    if (got == 0) break;  // the file shrank since it was measured
    have += static_cast<std::size_t>(got);
  }
  ::close(fd);
  const std::size_t begin = static_cast<std::size_t>(start - read_from);
  const std::size_t end = std::min<std::size_t>(begin + length, have);
  const auto result =
      begin < end ? pattern.count(buffer.data(), have, begin, end) : WordPattern::Result{};
  console.advance_progress(length);
  return result;
}

struct FileJob {
  std::string path;
  std::string problem;  // non-empty: not counted
  std::uint64_t size = 0;
  std::vector<spindle::Future<WordPattern::Result>> chunks;
};

int run_grep(const GrepOptions& options, const GlobalOptions& global) {
  if (options.word.empty()) throw CLI::ValidationError("WORD", "the word must not be empty");
  Console console(global, "grep");
  const WordPattern pattern(options.word, options.ignore_case);
  const unsigned workers =
      options.jobs != 0 ? options.jobs : std::max(1u, std::thread::hardware_concurrency());
  const auto started = std::chrono::steady_clock::now();

  std::vector<FileJob> jobs(options.files.size());
  std::uint64_t total_bytes = 0;
  for (std::size_t i = 0; i < options.files.size(); ++i) {
    FileJob& job = jobs[i];
    job.path = options.files[i];
    struct stat info {};
    if (::stat(job.path.c_str(), &info) != 0) {
      job.problem = std::strerror(errno);
    } else if (S_ISDIR(info.st_mode)) {
      job.problem = "is a directory";
    } else if (!S_ISREG(info.st_mode)) {
      job.problem = "not a regular file";
    } else if (::access(job.path.c_str(), R_OK) != 0) {
      job.problem = std::strerror(errno);
    } else {
      job.size = static_cast<std::uint64_t>(info.st_size);
      total_bytes += job.size;
    }
  }
  console.start_progress("grep", total_bytes, true);
  {
    spindle::ThreadPoolExecutor pool({.max_workers = workers, .thread_name_prefix = "grep"});
    for (FileJob& job : jobs) {
      if (!job.problem.empty()) continue;
      // An empty file is one empty chunk: it is still opened, so an unreadable one is caught.
      const std::uint64_t chunks =
          std::max<std::uint64_t>(1, (job.size + kChunkBytes - 1) / kChunkBytes);
      for (std::uint64_t index = 0; index < chunks; ++index) {
        const std::uint64_t start = index * kChunkBytes;
        const std::uint64_t length = std::min(kChunkBytes, job.size - start);
        job.chunks.push_back(pool.submit([&job, &pattern, &console, start, length] {
          return count_chunk(job.path, start, length, job.size, pattern, console);
        }));
      }
    }

    std::uint64_t total = 0;
    bool failed = false;
    nlohmann::json files = nlohmann::json::array();
    std::vector<std::string> lines;
    for (FileJob& job : jobs) {
      std::uint64_t count = 0;
      bool binary = false;
      for (auto& chunk : job.chunks) {
        try {
          const auto result = chunk.result();
          count += result.count;
          binary = binary || result.has_nul;
        } catch (const FileProblem& problem) {
          if (job.problem.empty()) job.problem = problem.what();
        }
      }
      if (job.problem.empty() && binary)
        job.problem = "binary file (contains NUL bytes), not counted";
      if (!job.problem.empty()) {
        failed = true;
        console.item_error(job.path, job.problem);
        files.push_back({{"file", job.path}, {"error", job.problem}});
        continue;
      }
      total += count;
      files.push_back({{"file", job.path}, {"count", count}});
      if (!console.json()) console.out(fmt::format("{} {}", count, job.path));
    }
    console.finish_progress();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (console.json()) {
      const nlohmann::json document = {{"word", options.word}, {"ignore_case", options.ignore_case},
                                       {"files", files},       {"total", total},
                                       {"bytes", total_bytes}, {"seconds", seconds}};
      console.out(document.dump(2));
    } else {
      console.out(fmt::format("{} total", total));
    }
    return failed ? kExitItemFailed : kExitOk;
  }
}

}  // namespace

void register_grep(CLI::App& app, Context& context) {
  auto options = std::make_shared<GrepOptions>();
  CLI::App* grep = app.add_subcommand(
      "grep",
      "Count whole-word occurrences of WORD in each FILE, in parallel.\n"
      "A word matches as `grep -w -o -F` does in the C locale: not preceded or followed by an\n"
      "ASCII letter, digit or '_'. Prints \"COUNT FILE\" per file and \"COUNT total\".\n"
      "Missing, unreadable and binary (NUL-containing) files are reported and not counted.");
  grep->add_flag("-i,--ignore-case", options->ignore_case, "ASCII letters match either case");
  grep->add_option("-j,--jobs", options->jobs, "Worker threads (default: one per core)")
      ->check(CLI::Range(1u, 1024u));
  grep->add_option("WORD", options->word, "The word to count")->required();
  grep->add_option("FILE", options->files, "Files to search")->required();
  grep->callback([options, &context] { context.exit_code = run_grep(*options, context.options); });
}

}  // namespace spindle_cli
