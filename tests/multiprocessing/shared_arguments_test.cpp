// Shared objects passed as arguments to a spawned Process or a pool task: the child gets a
// handle to the same memory, lock or queue, as in Python.
#include <dirent.h>
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "spindle/multiprocessing.hpp"

namespace mp = spindle::multiprocessing;
using namespace std::chrono_literals;

namespace {

void double_everything(mp::Value<long> total, mp::Array<int> numbers,
                       std::vector<mp::Value<int>> more) {
  std::scoped_lock guard(total);
  total.value() *= 2;
  for (int& number : numbers)
    number *= 2;
  for (auto& value : more)
    value.value() *= 2;
}

void write_greeting(mp::shared_memory::SharedMemory block) {
  const char greeting[] = "hello from the child";
  std::memcpy(block.buf().data(), greeting, sizeof greeting);
  block.close();
}

// Answers each step of the parent's through a different kind of shared object.
void take_part(mp::Lock lock, mp::RLock rlock, mp::Semaphore semaphore, mp::Event event,
               mp::Condition condition, mp::Barrier barrier, mp::Value<int> stage) {
  lock.release();  // the parent acquired it: a Lock has no owner
  rlock.acquire();
  rlock.acquire();
  rlock.release();
  rlock.release();
  semaphore.release();
  event.wait();
  {
    std::scoped_lock guard(condition);
    stage.value() = 1;
    condition.notify_all();
  }
  barrier.wait();
}

void echo_doubled(mp::Queue<int> in, mp::JoinableQueue<std::string> out,
                  mp::SimpleQueue<int> done) {
  for (int i = 0; i < 3; ++i)
    out.put(std::to_string(in.get() * 2));
  out.join();  // until the parent has task_done() every item
  done.put(1);
}

long add_to(mp::Value<long> total, long amount) {
  std::scoped_lock guard(total);
  total.value() += amount;
  return total.value();
}

std::size_t shm_entries() {
  std::size_t count = 0;
  DIR* directory = ::opendir("/dev/shm");
  if (directory == nullptr) return 0;
  while (::readdir(directory) != nullptr)
    ++count;
  ::closedir(directory);
  return count;
}

}  // namespace

TEST(SharedArguments, ValueArrayAndAVectorOfValuesReachAProcessAsTheParentsMemory) {
  mp::Value<long> total(21);
  mp::Array<int> numbers{1, 2, 3};
  std::vector<mp::Value<int>> more{mp::Value<int>(5), mp::Value<int>(7)};
  mp::Process child(double_everything, total, numbers, more);
  child.start();
  child.join();
  ASSERT_EQ(child.exitcode(), 0);
  EXPECT_EQ(total.value(), 42);
  EXPECT_EQ(numbers[0], 2);
  EXPECT_EQ(numbers[2], 6);
  EXPECT_EQ(more[0].value(), 10);
  EXPECT_EQ(more[1].value(), 14);
}

TEST(SharedArguments, SharedMemoryPassedToAProcessIsTheSameBlock) {
  mp::shared_memory::SharedMemory block("", true, 64);
  mp::Process child(write_greeting, block);
  child.start();
  child.join();
  ASSERT_EQ(child.exitcode(), 0);
  EXPECT_STREQ(reinterpret_cast<const char*>(block.buf().data()), "hello from the child");
  block.close();
  block.unlink();
}

TEST(SharedArguments, LocksEventsConditionsAndBarriersPassedToAProcessAreShared) {
  mp::Lock lock;
  mp::RLock rlock;
  mp::Semaphore semaphore(0);
  mp::Event event;
  mp::Condition condition;
  mp::Barrier barrier(2);
  mp::Value<int> stage(0);
  lock.acquire();
  mp::Process child(take_part, lock, rlock, semaphore, event, condition, barrier, stage);
  child.start();
  EXPECT_TRUE(lock.acquire(30s));       // released by the child
  EXPECT_TRUE(semaphore.acquire(30s));  // released by the child
  event.set();
  {
    std::unique_lock guard(condition);
    EXPECT_TRUE(condition.wait_for([&] { return stage.value() == 1; }, 30s));
  }
  EXPECT_LT(barrier.wait(30s), 2u);
  child.join();
  EXPECT_EQ(child.exitcode(), 0);
  EXPECT_FALSE(rlock.locked());
}

TEST(SharedArguments, QueuesPassedToAProcessCarryItemsBothWays) {
  mp::Queue<int> in;
  mp::JoinableQueue<std::string> out;
  mp::SimpleQueue<int> done;
  mp::Process child(echo_doubled, in, out, done);
  child.start();
  for (int i = 1; i <= 3; ++i)
    in.put(i);
  for (const char* expected : {"2", "4", "6"}) {
    EXPECT_EQ(out.get(30s), expected);
    out.task_done();
  }
  EXPECT_EQ(done.get(), 1);
  child.join();
  EXPECT_EQ(child.exitcode(), 0);
}

TEST(SharedArguments, AValuePassedToPoolTasksIsSharedByEveryWorker) {
  mp::Value<long> total(0);
  {
    mp::ProcessPoolExecutor executor({.max_workers = 2});
    std::vector<spindle::futures::Future<long>> futures;
    for (long i = 1; i <= 10; ++i)
      futures.push_back(executor.submit(add_to, total, i));
    for (auto& future : futures)
      future.result();
  }
  mp::Pool pool({.processes = 2});
  EXPECT_EQ(pool.apply(add_to, total, 45L), 100);
  EXPECT_EQ(total.value(), 100);
}

TEST(SharedArguments, AHandleToLoadIntoMakesNoSharedObjectOfItsOwn) {
  const std::size_t before = shm_entries();
  {
    auto handles = mp::detail::blank<
        std::tuple<mp::Lock, mp::Condition, mp::Barrier, mp::Value<int>, mp::Array<double>,
                   mp::Queue<int>, mp::SimpleQueue<int>, mp::shared_memory::SharedMemory>>();
    EXPECT_EQ(shm_entries(), before);
  }
  EXPECT_EQ(shm_entries(), before);
}
