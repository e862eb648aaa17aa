#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "spindle/threading.hpp"

namespace {

namespace threading = spindle::threading;
using threading::Thread;
using threading::ThreadOptions;

struct RestoreDefaultHook {
  ~RestoreDefaultHook() { threading::set_excepthook(nullptr); }
};

TEST(Excepthook, DefaultHookPrintsThreadNameTypeAndMessage) {
  testing::internal::CaptureStderr();
  Thread thread(ThreadOptions{.name = "failing"}, [] { throw std::out_of_range("index 7"); });
  thread.start();
  thread.join();
  const std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("Exception in thread failing:"), std::string::npos) << printed;
  EXPECT_NE(printed.find("std::out_of_range: index 7"), std::string::npos) << printed;
}

TEST(Excepthook, NonStandardExceptionIsReportedByItsType) {
  struct Custom {};
  testing::internal::CaptureStderr();
  Thread thread(ThreadOptions{.name = "custom"}, [] { throw Custom{}; });
  thread.start();
  thread.join();
  const std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("Exception in thread custom:"), std::string::npos) << printed;
  EXPECT_NE(printed.find("Custom"), std::string::npos) << printed;
}

TEST(Excepthook, CustomHookReceivesTheExceptionAndTheThread) {
  RestoreDefaultHook restore;
  std::string message;
  Thread* reported = nullptr;
  threading::set_excepthook([&](const threading::ExceptHookArgs& args) {
    reported = args.thread;
    try {
      std::rethrow_exception(args.exc_value);
    } catch (const std::runtime_error& error) {
      message = error.what();
    }
  });
  Thread thread([] { throw std::runtime_error("boom"); });
  thread.start();
  thread.join();
  EXPECT_EQ(message, "boom");
  EXPECT_EQ(reported, &thread);
}

TEST(Excepthook, AThrowingHookIsReportedAndTheProcessGoesOn) {
  RestoreDefaultHook restore;
  threading::set_excepthook(
      [](const threading::ExceptHookArgs&) { throw std::logic_error("hook failed"); });
  testing::internal::CaptureStderr();
  Thread thread([] { throw std::runtime_error("boom"); });
  thread.start();
  thread.join();
  const std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("Exception in threading.excepthook"), std::string::npos) << printed;
  EXPECT_NE(printed.find("hook failed"), std::string::npos) << printed;
}

TEST(Excepthook, NullptrRestoresTheDefaultHook) {
  bool custom_called = false;
  threading::set_excepthook([&](const threading::ExceptHookArgs&) { custom_called = true; });
  threading::set_excepthook(nullptr);
  testing::internal::CaptureStderr();
  Thread thread(ThreadOptions{.name = "restored"}, [] { throw std::runtime_error("x"); });
  thread.start();
  thread.join();
  const std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(custom_called);
  EXPECT_NE(printed.find("Exception in thread restored:"), std::string::npos) << printed;
}

TEST(Excepthook, ThreadThatThrewIsNoLongerAliveAfterJoin) {
  RestoreDefaultHook restore;
  threading::set_excepthook([](const threading::ExceptHookArgs&) {});
  Thread thread([] { throw 42; });
  thread.start();
  thread.join();
  EXPECT_FALSE(thread.is_alive());
}

}  // namespace
