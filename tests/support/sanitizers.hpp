// Which sanitizer a test binary is built with, for the few tests a sanitizer slows down too
// much or cannot run at all. SPINDLE_TEST_THREAD_SANITIZER, SPINDLE_TEST_ADDRESS_SANITIZER and
// SPINDLE_TEST_SANITIZED (either) are 1 or 0, for #if.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define SPINDLE_TEST_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SPINDLE_TEST_THREAD_SANITIZER 1
#endif
#endif
#ifndef SPINDLE_TEST_THREAD_SANITIZER
#define SPINDLE_TEST_THREAD_SANITIZER 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SPINDLE_TEST_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPINDLE_TEST_ADDRESS_SANITIZER 1
#endif
#endif
#ifndef SPINDLE_TEST_ADDRESS_SANITIZER
#define SPINDLE_TEST_ADDRESS_SANITIZER 0
#endif

#define SPINDLE_TEST_SANITIZED (SPINDLE_TEST_THREAD_SANITIZER || SPINDLE_TEST_ADDRESS_SANITIZER)
