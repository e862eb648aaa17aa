// spindle compare end to end: --quick with every output, each parsed back.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <set>

#include "command_runner.hpp"

using spindle_test::read_file;
using spindle_test::run_spindle;
using spindle_test::TemporaryFolder;

namespace {

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

}  // namespace

TEST(Compare, QuickRunWritesJsonSvgAndChromeTrace) {
  TemporaryFolder folder;
  const auto svg_file = folder / "timeline.svg";
  const auto trace_file = folder / "trace.json";
  const auto started = std::chrono::steady_clock::now();
  const auto result = run_spindle(
      {"compare", "--quick", "--json", "--svg", svg_file.string(), "--trace", trace_file.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  // --quick's promise, with room for a loaded machine and sanitizers.
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(90));

  const auto document = nlohmann::json::parse(result.out);
  ASSERT_EQ(document["runs"].size(), 8u);
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& run : document["runs"]) {
    seen.insert({run["workload"].get<std::string>(), run["way"].get<std::string>()});
    EXPECT_GT(run["wall_seconds"].get<double>(), 0.0);
    EXPECT_GE(run["cpu_seconds"].get<double>(), 0.0);
    EXPECT_GT(run["speedup"].get<double>(), 0.0);
  }
  for (const char* workload : {"I/O", "CPU"})
    for (const char* way : {"sequential", "threads", "processes", "asyncio"})
      EXPECT_TRUE(seen.count({workload, way})) << workload << " " << way;
  EXPECT_EQ(document["runs"][0]["result"], document["io"]["requests"]);  // every request got 200
  EXPECT_EQ(document["runs"][4]["result"], 148933);                      // primes below 2,000,000
  EXPECT_NE(document["summary"].get<std::string>().find("threads"), std::string::npos);

  const std::string svg = read_file(svg_file);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_EQ(count_of(svg, "<svg "), 1u);
  EXPECT_EQ(count_of(svg, "</svg>"), 1u);
  EXPECT_EQ(count_of(svg, "<rect "), count_of(svg, "</rect>"));
  EXPECT_EQ(count_of(svg, "class=\"section\""), 8u);  // one block per run
  // Sequential runs record a bar per request and per chunk; the pools and the loop add theirs.
  EXPECT_GE(count_of(svg, "<rect class=\"span\""), 2u * (10 + 8));

  const auto trace = nlohmann::json::parse(read_file(trace_file));
  std::set<std::string> categories;
  std::set<std::string> lanes;
  for (const auto& event : trace["traceEvents"]) {
    if (event["ph"] == "X") categories.insert(event["cat"].get<std::string>());
    if (event["ph"] == "M" && event["name"] == "thread_name")
      lanes.insert(event["args"]["name"].get<std::string>());
  }
  EXPECT_EQ(categories, (std::set<std::string>{"sequential", "ThreadPoolExecutor",
                                               "ProcessPoolExecutor", "asyncio"}));
  EXPECT_TRUE(std::any_of(lanes.begin(), lanes.end(),
                          [](const std::string& lane) { return lane.rfind("pid ", 0) == 0; }));
}

TEST(Compare, QuickRunPrintsATableAndWhatItMeans) {
  const auto result = run_spindle({"compare", "--quick"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("workload  way"), std::string::npos) << result.out;
  EXPECT_EQ(count_of(result.out, "sequential "), 2u) << result.out;
  EXPECT_NE(result.out.find("in C++ threads compute in parallel"), std::string::npos);
}

TEST(Compare, AnUnwritableOutputFileIsNamed) {
  const auto result = run_spindle({"compare", "--quick", "--svg", "/nonexistent/dir/t.svg"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("/nonexistent/dir/t.svg"), std::string::npos) << result.err;
}
