// Task spans, recorded by the executors, the pools and the asyncio event loop while tracing is
// on, and drawn as Chrome Trace Event JSON (Perfetto, chrome://tracing) or as an SVG timeline
// with one lane per worker and one bar per task.
//
//   spindle::trace::start();
//   ... run tasks on a ThreadPoolExecutor, a ProcessPoolExecutor, an event loop ...
//   spindle::trace::stop();
//   std::ofstream("run.json") << spindle::trace::chrome_trace_json(spindle::trace::spans());
//   std::ofstream("run.svg") << spindle::trace::svg_timeline(spindle::trace::spans());
//
// What records a span, and on which lane:
//   ThreadPoolExecutor     each task run, on the worker thread's lane (its thread name)
//   ProcessPoolExecutor,   each call from when the parent sends it to when its result arrives
//   multiprocessing::Pool  (recorded in the parent), on the lane "pid N" of the worker process
//   asyncio event loop     each step of a task (from a resume to the next suspension), on the
//                          lane of the loop's thread, named after the task
// Tracing off costs one relaxed atomic load per task; on, each span takes a mutex once.
// This header is not tied to any one module: it is for every part of the library.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace spindle::trace {

using Clock = std::chrono::steady_clock;

// One task's time on one lane.
struct Span {
  std::string lane;      // the worker: a thread's name, "pid 1234"
  std::string name;      // the task
  std::string category;  // what ran it: "ThreadPoolExecutor", "ProcessPoolExecutor", "asyncio"
  Clock::time_point start{};
  Clock::time_point end{};
};

// Spans under a title: drawn as one block of lanes (SVG) or one process (Chrome trace).
struct Section {
  std::string title;
  std::vector<Span> spans;
};

namespace internal {
extern std::atomic<bool> enabled_flag;
}  // namespace internal

// Whether spans are being recorded. One relaxed atomic load; any thread.
inline bool enabled() noexcept {
  return internal::enabled_flag.load(std::memory_order_relaxed);
}

// Discards the spans recorded so far and starts recording. Any thread.
void start();
// Stops recording; the spans are kept. Any thread. A task running meanwhile may still add
// its span.
void stop();
// The spans recorded, sorted by start time. Any thread; does not block for long.
std::vector<Span> spans();
// Discards the spans recorded. Any thread.
void clear();
// Adds a span (whether or not tracing is on: the caller checked enabled()). Any thread.
void record(Span span);
// The lane of the calling thread: its threading name ("MainThread", "ThreadPoolExecutor-0_1").
std::string current_lane();

// Records the time from its construction to its destruction as a span on the calling
// thread's lane, when tracing was on at construction; otherwise does nothing more than
// one relaxed load. Not copyable or movable; use on one thread.
class ScopedSpan {
 public:
  // `category` must outlive the span (a string literal). `name` is called (for the span's
  // name) only when tracing is on.
  template <class Name>
  ScopedSpan(const char* category, Name&& name) : category_(category) {
    if (enabled()) begin(std::forward<Name>(name)());
  }
  ScopedSpan(const ScopedSpan&) = delete;
  ScopedSpan& operator=(const ScopedSpan&) = delete;
  ~ScopedSpan() {
    if (active_) finish();
  }

 private:
  void begin(std::string name);
  void finish() noexcept;

  const char* category_;
  bool active_ = false;
  std::string name_;
  Clock::time_point start_{};
};

// Chrome Trace Event JSON ("X" complete events in microseconds, one process per section
// named after its title, one thread per lane): what Perfetto and chrome://tracing open.
// Times are relative to the earliest span.
std::string chrome_trace_json(const std::vector<Section>& sections);
std::string chrome_trace_json(const std::vector<Span>& spans);

// Keyword arguments of svg_timeline.
struct SvgOptions {
  int width = 1000;  // pixels
  std::string title{};
};

// An SVG timeline: for each section its title, then one lane per worker (sorted by name)
// with one bar (<rect class="span">) per span, on a shared time axis in milliseconds.
std::string svg_timeline(const std::vector<Section>& sections, const SvgOptions& options = {});
std::string svg_timeline(const std::vector<Span>& spans, const SvgOptions& options = {});

}  // namespace spindle::trace
