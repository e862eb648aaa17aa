// SharedMemory, and the lifetime of the segments behind every shared object.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "shared_test_support.hpp"

namespace mp = spindle::multiprocessing;
using mp::shared_memory::SharedMemory;
using spindle_test::fork_child;
using spindle_test::wait_child;

namespace {

std::string unique_name(const char* what) {
  return std::string("spindle_test_") + what + "_" + std::to_string(::getpid());
}

TEST(SharedMemory, ChildSeesWhatTheCreatorWroteAndWritesBack) {
  SharedMemory block(unique_name("rw"), true, 4096);
  EXPECT_EQ(block.size(), 4096u);
  std::memcpy(block.buf().data(), "hello", 6);
  const std::string name = block.name();
  const pid_t child = fork_child([name] {
    SharedMemory attached(name);
    const bool saw = std::strcmp(reinterpret_cast<char*>(attached.buf().data()), "hello") == 0;
    std::memcpy(attached.buf().data() + 100, "world", 6);
    return saw;
  });
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_STREQ(reinterpret_cast<char*>(block.buf().data() + 100), "world");
  block.unlink();
}

TEST(SharedMemory, AttachingByNameInTheSameProcessSharesTheBytes) {
  SharedMemory block(unique_name("same"), true, 100);
  SharedMemory other(block.name());
  block.buf()[7] = std::byte{42};
  EXPECT_EQ(other.buf()[7], std::byte{42});
  EXPECT_GE(other.size(), 100u);
  block.unlink();
}

TEST(SharedMemory, CreatingAnExistingNameIsFileExistsNamingIt) {
  const std::string name = unique_name("exists");
  SharedMemory block(name, true, 64);
  try {
    SharedMemory again(name, true, 64);
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), std::errc::file_exists);
    EXPECT_NE(std::string(error.what()).find(name), std::string::npos) << error.what();
  }
  block.unlink();
}

TEST(SharedMemory, AttachingAMissingNameIsNotFoundNamingIt) {
  const std::string name = unique_name("missing");
  try {
    SharedMemory block(name);
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(error.what()).find(name), std::string::npos) << error.what();
  }
}

TEST(SharedMemory, EmptyNameWithCreateGetsAFreshName) {
  SharedMemory first({}, true, 10);
  SharedMemory second({}, true, 10);
  EXPECT_EQ(first.name().rfind("psm_", 0), 0u) << first.name();
  EXPECT_NE(first.name(), second.name());
  first.unlink();
  second.unlink();
}

TEST(SharedMemory, BadArgumentsAreInvalidArgument) {
  EXPECT_THROW(SharedMemory(unique_name("zero"), true, 0), std::invalid_argument);
  EXPECT_THROW(SharedMemory({}, false, 10), std::invalid_argument);
}

TEST(SharedMemory, NamesWithANullOrAnInnerSlashAndNegativeSizesAreInvalidArgument) {
  using namespace std::string_literals;
  EXPECT_THROW(SharedMemory("a\0b"s, true, 64), std::invalid_argument);
  EXPECT_THROW(SharedMemory("a\0b"s, false, 0), std::invalid_argument);
  EXPECT_THROW(SharedMemory("dir/name", true, 64), std::invalid_argument);
  EXPECT_THROW(SharedMemory("/", false, 0), std::invalid_argument);
  EXPECT_THROW(SharedMemory(unique_name("negative"), true, static_cast<std::size_t>(-1)),
               std::invalid_argument);
}

TEST(SharedMemory, ABlockThatCannotBeMappedLeavesNoNameBehind) {
  const std::string name = unique_name("huge");
  EXPECT_THROW(SharedMemory(name, true, std::size_t{1} << 60), std::system_error);
  EXPECT_THROW(SharedMemory(name, false, 0), std::system_error);  // not found: nothing was left
  SharedMemory retry(name, true, 64);  // and the name can be created again
  retry.unlink();
}

TEST(SharedMemory, BufAfterCloseIsLogicErrorAndUnlinkTwiceIsNotFound) {
  SharedMemory block(unique_name("close"), true, 64);
  block.close();
  block.close();
  EXPECT_THROW(block.buf(), std::logic_error);
  block.unlink();
  try {
    block.unlink();
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), std::errc::no_such_file_or_directory);
  }
}

TEST(SharedMemory, MappingOutlivesUnlink) {
  SharedMemory block(unique_name("outlive"), true, 64);
  block.unlink();
  block.buf()[0] = std::byte{1};
  EXPECT_EQ(block.buf()[0], std::byte{1});
  EXPECT_THROW(SharedMemory(block.name()), std::system_error);
}

TEST(SharedMemory, HandleCrossesAsItsName) {
  SharedMemory block(unique_name("handle"), true, 64);
  block.buf()[3] = std::byte{9};
  SharedMemory loaded({}, true, 1);
  loaded.unlink();
  spindle_test::load_handle(spindle_test::save_handle(block), loaded);
  EXPECT_EQ(loaded.name(), block.name());
  EXPECT_EQ(loaded.buf()[3], std::byte{9});
  block.unlink();
}

TEST(Segments, CreatorUnlinksWhenItsLastHandleGoes) {
  std::string name;
  {
    mp::Lock lock;
    mp::Lock copy = lock;
    name = spindle_test::segment_name(lock);
    EXPECT_TRUE(spindle_test::shm_exists(name)) << name;
  }
  EXPECT_FALSE(spindle_test::shm_exists(name)) << name;
}

TEST(Segments, ForkedChildDoesNotUnlinkTheParentsSegment) {
  auto* event = new mp::Event;
  const std::string name = spindle_test::segment_name(*event);
  const pid_t child = fork_child([event] {
    event->set();
    delete event;  // the child's last handle: unmaps, but the segment is not the child's
    return true;
  });
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_TRUE(spindle_test::shm_exists(name));
  EXPECT_TRUE(event->is_set());
  delete event;
  EXPECT_FALSE(spindle_test::shm_exists(name));
}

TEST(Segments, SweepRemovesTheSegmentsOfACreatorThatDied) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  mp::Event never;
  const pid_t child = fork_child([&] {
    mp::Lock lock;  // named after this child, not after the parent it was forked from
    const std::string name = spindle_test::segment_name(lock);
    mp::detail::sweep_orphaned_segments();
    if (!spindle_test::shm_exists(name)) return false;
    if (::write(pipe_fds[1], name.data(), name.size()) < 0) return false;
    never.wait();  // killed here
    return true;
  });
  ::close(pipe_fds[1]);
  char buffer[256] = {};
  const auto got = ::read(pipe_fds[0], buffer, sizeof buffer - 1);
  ::close(pipe_fds[0]);
  ASSERT_GT(got, 0);
  const std::string name(buffer, static_cast<std::size_t>(got));
  EXPECT_TRUE(spindle_test::shm_exists(name)) << name;  // its creator lives: no sweep takes it
  ::kill(child, SIGKILL);
  EXPECT_EQ(wait_child(child), 128 + SIGKILL);
  mp::detail::sweep_orphaned_segments();  // (another process's sweep may have been first)
  EXPECT_FALSE(spindle_test::shm_exists(name)) << name;
}

TEST(Segments, SweepKeepsTheSegmentsOfLivingCreators) {
  mp::Semaphore semaphore(3);
  mp::detail::sweep_orphaned_segments();
  EXPECT_TRUE(spindle_test::shm_exists(spindle_test::segment_name(semaphore)));
  EXPECT_EQ(semaphore.get_value(), 3);
}

TEST(Segments, LoadingAHandleWhoseSegmentIsGoneIsNotFoundNamingIt) {
  std::string bytes;
  std::string name;
  {
    mp::Lock lock;
    bytes = spindle_test::save_handle(lock);
    name = spindle_test::segment_name(lock);
  }
  mp::Lock loaded;
  try {
    spindle_test::load_handle(bytes, loaded);
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(error.what()).find(name.substr(1)), std::string::npos) << error.what();
  }
}

// A full /dev/shm: an object whose control pages do not fit is std::system_error (ENOSPC)
// at construction, naming its segment, not a SIGBUS at its first use; and it leaves no
// segment behind. The child mounts a 16 KiB tmpfs over /dev/shm in a mount namespace of its
// own (which needs CAP_SYS_ADMIN: skipped without it).
TEST(Segments, AFullDevShmIsNoSpaceAtConstructionAndLeavesNothingBehind) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = fork_child([&] {
    std::string seen;
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=16k") != 0) {
      seen = std::string("skip: cannot mount a small /dev/shm here: ") + std::strerror(errno);
    } else {
      mp::Lock small;  // a page: fits
      small.acquire();
      small.release();
      const auto full = [&](auto make) {
        try {
          make();
          seen += "created ";
        } catch (const std::system_error& error) {
          const std::string what = error.what();
          const bool named = what.find("shared memory 'spindle.") != std::string::npos &&
                             what.find("(/dev/shm is full)") != std::string::npos;
          seen += (error.code() == std::errc::no_space_on_device ? "ENOSPC" : error.what()) +
                  std::string(named ? ",named " : ",unnamed ");
        }
      };
      full([] { mp::Queue<int> queue; });
      full([] { mp::Array<char> bytes(1 << 20); });
      int left = 0;
      for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/dev/shm"))
        ++left;
      seen += "left=" + std::to_string(left);  // only the Lock's segment
    }
    return ::write(pipe_fds[1], seen.data(), seen.size()) == static_cast<ssize_t>(seen.size());
  });
  ::close(pipe_fds[1]);
  char buffer[512] = {};
  const auto got = ::read(pipe_fds[0], buffer, sizeof buffer - 1);
  ::close(pipe_fds[0]);
  EXPECT_EQ(wait_child(child), 0);
  ASSERT_GT(got, 0);
  const std::string seen(buffer, static_cast<std::size_t>(got));
  if (seen.rfind("skip: ", 0) == 0) GTEST_SKIP() << seen.substr(6);
  EXPECT_EQ(seen, "ENOSPC,named ENOSPC,named left=1");
}

TEST(Segments, LoadingAHandleAsAnotherKindIsInvalidArgument) {
  mp::Lock lock;
  mp::Event event;
  EXPECT_THROW(spindle_test::load_handle(spindle_test::save_handle(lock), event),
               std::invalid_argument);
  mp::Array<int> ints(4);
  mp::Array<double> doubles(4);
  EXPECT_THROW(spindle_test::load_handle(spindle_test::save_handle(ints), doubles),
               std::invalid_argument);
}

}  // namespace
