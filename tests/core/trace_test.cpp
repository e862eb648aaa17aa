// Tracing: the spans the thread pool, the process pool and the event loop record, and the two
// drawings of them (Chrome Trace Event JSON parsed back; the SVG checked for well-formedness
// and its bars counted).
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "spindle/asyncio.hpp"
#include "spindle/futures.hpp"
#include "spindle/multiprocessing.hpp"
#include "spindle/threading.hpp"
#include "spindle/trace.hpp"

namespace trace = spindle::trace;
namespace asyncio = spindle::asyncio;
using namespace std::chrono_literals;

namespace {

int triple(int x) {
  return 3 * x;
}

// Stops tracing and forgets its spans whatever the test did.
class Trace : public ::testing::Test {
 protected:
  ~Trace() override {
    trace::stop();
    trace::clear();
  }
};

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

// Checks that `xml` is well-formed as far as elements go: every tag opened is closed in order,
// attributes are quoted, and no '&' starts anything but an entity. Returns the problem, or "".
std::string xml_problem(const std::string& xml) {
  std::vector<std::string> open;
  std::size_t at = 0;
  while (at < xml.size()) {
    if (xml[at] == '&') {
      const std::string rest = xml.substr(at, 6);
      bool known = false;
      for (const char* entity : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"})
        known = known || rest.rfind(entity, 0) == 0;
      if (!known) return "bare & at " + std::to_string(at);
      ++at;
      continue;
    }
    if (xml[at] != '<') {
      ++at;
      continue;
    }
    const auto end = xml.find('>', at);
    if (end == std::string::npos) return "unterminated tag at " + std::to_string(at);
    const std::string tag = xml.substr(at + 1, end - at - 1);
    at = end + 1;
    if (tag.empty()) return "empty tag";
    if (tag[0] == '?' || tag[0] == '!') continue;
    if (count_of(tag, "\"") % 2 != 0) return "unbalanced quotes in <" + tag + ">";
    if (tag[0] == '/') {
      if (open.empty() || open.back() != tag.substr(1))
        return "mismatched </" + tag.substr(1) + ">";
      open.pop_back();
      continue;
    }
    const std::string name = tag.substr(0, tag.find_first_of(" \t\n/"));
    if (tag.back() != '/') open.push_back(name);
  }
  return open.empty() ? "" : "unclosed <" + open.back() + ">";
}

}  // namespace

TEST_F(Trace, NothingIsRecordedWhileTracingIsOff) {
  EXPECT_FALSE(trace::enabled());
  spindle::ThreadPoolExecutor pool({.max_workers = 2});
  for (int i = 0; i < 10; ++i)
    pool.submit([] {}).result();
  EXPECT_TRUE(trace::spans().empty());
}

TEST_F(Trace, ThreadPoolRecordsOneSpanPerTaskOnItsWorkersLanes) {
  spindle::ThreadPoolExecutor pool({.max_workers = 2, .thread_name_prefix = "lane"});
  trace::start();
  std::vector<spindle::Future<int>> futures;
  for (int i = 0; i < 20; ++i)
    futures.push_back(pool.submit([i] { return i; }));
  for (auto& future : futures)
    future.result();
  pool.shutdown();
  trace::stop();
  const auto spans = trace::spans();
  ASSERT_EQ(spans.size(), 20u);
  for (const auto& span : spans) {
    EXPECT_EQ(span.category, "ThreadPoolExecutor");
    EXPECT_EQ(span.lane.rfind("lane", 0), 0u) << span.lane;
    EXPECT_LE(span.start, span.end);
  }
  for (std::size_t i = 1; i < spans.size(); ++i)
    EXPECT_LE(spans[i - 1].start, spans[i].start);
}

TEST_F(Trace, StartDiscardsTheSpansOfAnEarlierRun) {
  trace::start();
  trace::record({"lane", "old", "test", trace::Clock::now(), trace::Clock::now()});
  trace::start();
  EXPECT_TRUE(trace::spans().empty());
}

TEST_F(Trace, ProcessPoolRecordsEachCallOnItsWorkersPidLane) {
  spindle::ProcessPoolExecutor pool({.max_workers = 2});
  trace::start();
  std::vector<spindle::Future<int>> futures;
  for (int i = 0; i < 8; ++i)
    futures.push_back(pool.submit(triple, i));
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(futures[static_cast<std::size_t>(i)].result(), 3 * i);
  trace::stop();
  const auto spans = trace::spans();
  ASSERT_EQ(spans.size(), 8u);
  for (const auto& span : spans) {
    EXPECT_EQ(span.category, "ProcessPoolExecutor");
    EXPECT_EQ(span.lane.rfind("pid ", 0), 0u) << span.lane;
    EXPECT_GT(std::atoi(span.lane.c_str() + 4), 0) << span.lane;
    EXPECT_NE(span.lane, "pid " + std::to_string(::getpid()));
    EXPECT_LE(span.start, span.end);
  }
}

TEST_F(Trace, EventLoopRecordsEachStepOfATaskUnderItsName) {
  trace::start();
  asyncio::run([]() -> asyncio::Task<> {
    auto child = asyncio::create_task(
        []() -> asyncio::Task<> {
          co_await asyncio::sleep(1ms);
          co_await asyncio::sleep(1ms);
        }(),
        {.name = "sleeper"});
    co_await child;
  }());
  trace::stop();
  int sleeper_steps = 0;
  for (const auto& span : trace::spans()) {
    EXPECT_EQ(span.category, "asyncio");
    EXPECT_EQ(span.lane, spindle::threading::current_thread().name());
    if (span.name == "sleeper") ++sleeper_steps;
  }
  EXPECT_EQ(sleeper_steps, 3);  // start to first sleep, between the sleeps, to the end
}

TEST_F(Trace, ChromeTraceIsJsonWithOneCompleteEventPerSpan) {
  const auto t0 = trace::Clock::now();
  std::vector<trace::Section> sections{
      {"threads \"quoted\"",
       {{"worker-1", "a", "ThreadPoolExecutor", t0, t0 + 2ms},
        {"worker-2", "b\n<&>", "ThreadPoolExecutor", t0 + 1ms, t0 + 3ms}}},
      {"processes", {{"pid 7", "call", "ProcessPoolExecutor", t0 + 5ms, t0 + 6ms}}}};
  const auto document = nlohmann::json::parse(trace::chrome_trace_json(sections));
  std::vector<nlohmann::json> complete;
  std::map<std::pair<int, int>, std::string> thread_names;
  std::map<int, std::string> process_names;
  for (const auto& event : document["traceEvents"]) {
    if (event["ph"] == "X") complete.push_back(event);
    if (event["ph"] == "M" && event["name"] == "thread_name")
      thread_names[{event["pid"], event["tid"]}] = event["args"]["name"];
    if (event["ph"] == "M" && event["name"] == "process_name")
      process_names[event["pid"]] = event["args"]["name"];
  }
  ASSERT_EQ(complete.size(), 3u);
  EXPECT_EQ(complete[0]["name"], "a");
  EXPECT_DOUBLE_EQ(complete[0]["ts"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(complete[0]["dur"].get<double>(), 2000.0);
  EXPECT_EQ(complete[1]["name"], "b\n<&>");
  EXPECT_DOUBLE_EQ(complete[1]["ts"].get<double>(), 1000.0);
  EXPECT_DOUBLE_EQ(complete[2]["ts"].get<double>(), 5000.0);
  EXPECT_EQ(thread_names.at({complete[1]["pid"], complete[1]["tid"]}), "worker-2");
  EXPECT_EQ(thread_names.at({complete[2]["pid"], complete[2]["tid"]}), "pid 7");
  EXPECT_EQ(process_names.at(complete[0]["pid"]), "threads \"quoted\"");
  EXPECT_NE(complete[0]["pid"], complete[2]["pid"]);
}

TEST_F(Trace, ChromeTraceOfARealRunParses) {
  spindle::ThreadPoolExecutor pool({.max_workers = 2});
  trace::start();
  for (int i = 0; i < 5; ++i)
    pool.submit([] {}).result();
  pool.shutdown();  // a worker records its span just after the task's result is set
  trace::stop();
  const auto document = nlohmann::json::parse(trace::chrome_trace_json(trace::spans()));
  int complete = 0;
  for (const auto& event : document["traceEvents"])
    complete += event["ph"] == "X";
  EXPECT_EQ(complete, 5);
}

TEST_F(Trace, SvgIsWellFormedWithOneBarPerSpanAndOneLanePerWorker) {
  const auto t0 = trace::Clock::now();
  std::vector<trace::Section> sections{{"threads & <friends>",
                                        {{"worker-1", "a", "x", t0, t0 + 2ms},
                                         {"worker-2", "b\"'", "x", t0 + 1ms, t0 + 3ms},
                                         {"worker-1", "c", "x", t0 + 2ms, t0 + 4ms}}},
                                       {"processes", {{"pid 7", "call", "x", t0 + 5ms, t0 + 6ms}}}};
  const std::string svg = trace::svg_timeline(sections, {.title = "a & b"});
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_EQ(count_of(svg, "<rect class=\"span\""), 4u);
  EXPECT_EQ(count_of(svg, "class=\"lane\""), 3u);  // worker-1, worker-2, pid 7
  EXPECT_NE(svg.find("threads &amp; &lt;friends&gt;"), std::string::npos);
  EXPECT_EQ(count_of(svg, "</svg>"), 1u);
}

TEST_F(Trace, SvgOfARealRunHasOneBarPerTask) {
  spindle::ThreadPoolExecutor pool({.max_workers = 2});
  trace::start();
  std::vector<spindle::Future<void>> futures;
  for (int i = 0; i < 12; ++i)
    futures.push_back(pool.submit([] {}));
  for (auto& future : futures)
    future.result();
  pool.shutdown();  // a worker records its span just after the task's result is set
  trace::stop();
  const std::string svg = trace::svg_timeline(trace::spans());
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_of(svg, "<rect class=\"span\""), 12u);
}

TEST_F(Trace, EmptyTraceDrawsAnEmptyTimeline) {
  EXPECT_EQ(xml_problem(trace::svg_timeline(std::vector<trace::Span>{})), "");
  const auto document = nlohmann::json::parse(trace::chrome_trace_json(std::vector<trace::Span>{}));
  EXPECT_TRUE(document["traceEvents"].is_array());
}
