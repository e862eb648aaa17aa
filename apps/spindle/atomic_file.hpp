// Writing a file so that readers (and a crash) see either the old contents or the new ones,
// never a mix: write a temporary file in the same folder, fsync it, rename it over the target,
// fsync the folder.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace spindle_cli {

// A step of an atomic write failed; what() says which and why (strerror).
struct AtomicWriteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A temporary file next to `target` that becomes `target` on commit(). Destroying it without
// commit() removes the temporary file. Not thread-safe; each instance belongs to one thread.
class AtomicFile {
 public:
  // Creates ".NAME.spindle-XXXXXX" in target's folder with mode 0600.
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes. Blocks on disk I/O.
  void write(std::string_view bytes);
  // Gives the file this mode (and owner, when allowed) before it replaces the target.
  void set_permissions(mode_t mode, std::optional<uid_t> owner = {},
                       std::optional<gid_t> group = {});
  // fsync, rename over the target, fsync the folder. Blocks on disk I/O.
  void commit();

  const std::filesystem::path& temporary_path() const noexcept { return temporary_; }

 private:
  [[noreturn]] void fail(std::string_view step, int error) const;

  std::filesystem::path target_;
  std::filesystem::path temporary_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace spindle_cli
