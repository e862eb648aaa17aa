// spindle replace [-j N] OLD NEW FILE...: replaces every occurrence of OLD with NEW in each
// FILE, files in parallel on a ThreadPoolExecutor, never losing data: each file is streamed
// into a temporary file in its own folder, which is fsynced and renamed over the original
// (keeping its mode, and its owner when allowed), and then the folder is fsynced. At any
// moment, a crash included, each file holds either its old or its new contents.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "atomic_file.hpp"
#include "command.hpp"
#include "spindle/futures.hpp"

namespace spindle_cli {

namespace {

struct ReplaceOptions {
  std::string old_text;
  std::string new_text;
  std::vector<std::string> files;
  unsigned jobs = 0;
};

struct FileProblem : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr std::size_t kReadBytes = 1u << 20;

// Rewrites `path` (already resolved through symlinks); returns the number of replacements.
// Files without OLD are left untouched.
std::uint64_t replace_in_file(const std::filesystem::path& path, const ReplaceOptions& options) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FileProblem(std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) throw FileProblem(std::strerror(errno));
  if (S_ISDIR(info.st_mode)) throw FileProblem("is a directory");
  if (!S_ISREG(info.st_mode)) throw FileProblem("not a regular file");
  if (::access(path.c_str(), W_OK) != 0)
    throw FileProblem(fmt::format("not writable: {}", std::strerror(errno)));
  // A file nobody may write is left alone even by a user (root) whom access() lets through.
  if ((info.st_mode & 0222) == 0) throw FileProblem("not writable: read-only file");

  AtomicFile output(path);
  const std::string& old_text = options.old_text;
  std::uint64_t replacements = 0;
  std::string data;       // bytes read and not yet written
  std::string rewritten;  // what goes to the temporary file for this block
  std::vector<char> block(kReadBytes);
  bool at_end = false;
  while (!at_end) {
    const ssize_t got = ::read(fd, block.data(), block.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw FileProblem(fmt::format("cannot read: {}", std::strerror(errno)));
    at_end = got == 0;
    data.append(block.data(), static_cast<std::size_t>(got));
    // Until the end, the last OLD.size() - 1 bytes may begin an occurrence the next read
    // completes: keep them for the next round.
    const std::size_t settled =
        at_end ? data.size() : data.size() - std::min(data.size(), old_text.size() - 1);
    rewritten.clear();
    std::size_t position = 0;
    for (;;) {
      const std::size_t found = data.find(old_text, position);
      if (found == std::string::npos || found >= settled) break;
      rewritten.append(data, position, found - position);
      rewritten += options.new_text;
      position = found + old_text.size();
      ++replacements;
    }
    const std::size_t keep_from = std::max(position, settled);
    rewritten.append(data, position, keep_from - position);
    data.erase(0, keep_from);
    output.write(rewritten);
  }
  if (replacements == 0) return 0;  // the temporary file is removed; the original untouched
  output.set_permissions(info.st_mode & 07777, info.st_uid, info.st_gid);
  output.commit();
  return replacements;
}

int run_replace(const ReplaceOptions& options, const GlobalOptions& global) {
  if (options.old_text.empty()) throw CLI::ValidationError("OLD", "OLD must not be empty");
  Console console(global, "replace");
  const unsigned workers =
      options.jobs != 0 ? options.jobs : std::max(2u, std::thread::hardware_concurrency());

  struct Job {
    std::string name;  // as given
    std::filesystem::path resolved;
    std::string problem;
    std::optional<spindle::Future<std::uint64_t>> result;
  };
  std::vector<Job> jobs(options.files.size());
  std::set<std::filesystem::path> seen;  // a file named twice (or through a link) is done once
  std::uint64_t total = 0;
  std::size_t changed_files = 0;
  bool failed = false;
  nlohmann::json files = nlohmann::json::array();
  console.start_progress("replace", options.files.size(), false);
  {
    spindle::ThreadPoolExecutor pool({.max_workers = workers, .thread_name_prefix = "replace"});
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      Job& job = jobs[i];
      job.name = options.files[i];
      std::error_code error;
      job.resolved = std::filesystem::canonical(job.name, error);
      if (error) {
        job.problem = error.message();
        continue;
      }
      if (!seen.insert(job.resolved).second) continue;
      job.result = pool.submit([&job, &options, &console] {
        const auto count = replace_in_file(job.resolved, options);
        console.advance_progress(1);
        return count;
      });
    }
    for (Job& job : jobs) {
      std::uint64_t count = 0;
      if (job.result) {
        try {
          count = job.result->result();
        } catch (const FileProblem& problem) {
          job.problem = problem.what();
        } catch (const AtomicWriteError& problem) {
          job.problem = problem.what();
        }
      } else if (job.problem.empty()) {
        continue;  // a repeat of a file already listed
      }
      if (!job.problem.empty()) {
        failed = true;
        console.item_error(job.name, job.problem);
        files.push_back({{"file", job.name}, {"error", job.problem}});
        continue;
      }
      total += count;
      changed_files += count > 0 ? 1 : 0;
      files.push_back({{"file", job.name}, {"replacements", count}});
      if (!console.json()) console.out(fmt::format("{} {}", count, job.name));
    }
  }
  console.finish_progress();
  if (console.json())
    console.out(nlohmann::json{{"old", options.old_text},
                               {"new", options.new_text},
                               {"files", files},
                               {"total", total},
                               {"changed_files", changed_files}}
                    .dump(2));
  else
    console.out(fmt::format("{} total in {} changed file(s)", total, changed_files));
  return failed ? kExitItemFailed : kExitOk;
}

}  // namespace

void register_replace(CLI::App& app, Context& context) {
  auto options = std::make_shared<ReplaceOptions>();
  CLI::App* replace = app.add_subcommand(
      "replace",
      "Replace every occurrence of OLD with NEW in each FILE, in parallel, atomically:\n"
      "each file is rewritten to a temporary file in its folder, fsynced and renamed over it\n"
      "(mode kept), so a crash leaves it wholly old or wholly new. Prints \"COUNT FILE\".");
  replace->add_option("-j,--jobs", options->jobs, "Worker threads (default: one per core)")
      ->check(CLI::Range(1u, 1024u));
  replace->add_option("OLD", options->old_text, "Text to replace (bytes, exactly)")->required();
  replace->add_option("NEW", options->new_text, "Replacement text")->required();
  replace->add_option("FILE", options->files, "Files to change")->required();
  replace->callback(
      [options, &context] { context.exit_code = run_replace(*options, context.options); });
}

}  // namespace spindle_cli
