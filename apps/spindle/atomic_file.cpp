#include "atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace spindle_cli {

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  const auto folder = target_.has_parent_path() ? target_.parent_path() : ".";
  std::string pattern =
      (folder / fmt::format(".{}.spindle-XXXXXX", target_.filename().string())).string();
  fd_ = ::mkostemp(pattern.data(), O_CLOEXEC);
  if (fd_ < 0) fail("cannot create a temporary file in its folder", errno);
  temporary_ = pattern;
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temporary_.empty()) ::unlink(temporary_.c_str());
}

void AtomicFile::fail(std::string_view step, int error) const {
  throw AtomicWriteError(fmt::format("{}: {}", step, std::strerror(error)));
}

void AtomicFile::write(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd_, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      fail("cannot write the temporary file", errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
}

void AtomicFile::set_permissions(mode_t mode, std::optional<uid_t> owner,
                                 std::optional<gid_t> group) {
  if (owner || group) {
    // Keeping the owner needs privileges a normal user lacks; the mode is what matters then.
    [[maybe_unused]] const int ignored = ::fchown(fd_, owner.value_or(static_cast<uid_t>(-1)),
                                                  group.value_or(static_cast<gid_t>(-1)));
  }
  if (::fchmod(fd_, mode) != 0) fail("cannot set the permissions", errno);
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail("cannot flush the temporary file", errno);
  const int closing = fd_;
  fd_ = -1;
  if (::close(closing) != 0) fail("cannot write the temporary file", errno);
  if (::rename(temporary_.c_str(), target_.c_str()) != 0)
    fail("cannot rename the temporary file over it", errno);
  committed_ = true;
  // The rename itself is durable only once the folder is flushed.
  const auto folder = target_.has_parent_path() ? target_.parent_path() : ".";
  const int folder_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (folder_fd < 0) fail("cannot open its folder to flush it", errno);
  const int synced = ::fsync(folder_fd);
  const int error = errno;
  ::close(folder_fd);
  if (synced != 0) fail("cannot flush its folder", error);
}

}  // namespace spindle_cli
