// Task spans: a mutex-guarded list (taken only while tracing is on) and its two drawings.
#include "spindle/trace.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "spindle/threading.hpp"

namespace spindle::trace {

namespace internal {
std::atomic<bool> enabled_flag{false};
}  // namespace internal

namespace {

struct Recorder {
  std::mutex mutex;
  std::vector<Span> spans;
};

Recorder& recorder() {
  static auto* instance = new Recorder();  // immortal: spans may end during static destruction
  return *instance;
}

bool by_start(const Span& a, const Span& b) {
  return a.start != b.start ? a.start < b.start : a.lane < b.lane;
}

// `text` as the inside of a JSON string.
std::string json_escaped(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        else
          out += c;
    }
  }
  return out;
}

// `text` as XML character data or an attribute value.
std::string xml_escaped(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters other than tab and newline are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out += c;
    }
  }
  return out;
}

double micros(Clock::duration duration) {
  return std::chrono::duration<double, std::micro>(duration).count();
}

// The lanes of `spans` in name order, numbered from 0.
std::map<std::string, int> lanes_of(const std::vector<Span>& spans) {
  std::set<std::string> names;
  for (const auto& span : spans)
    names.insert(span.lane);
  std::map<std::string, int> lanes;
  for (const auto& name : names)
    lanes.emplace(name, static_cast<int>(lanes.size()));
  return lanes;
}

}  // namespace

void start() {
  clear();
  internal::enabled_flag.store(true, std::memory_order_relaxed);
}

void stop() {
  internal::enabled_flag.store(false, std::memory_order_relaxed);
}

std::vector<Span> spans() {
  std::vector<Span> copy;
  {
    std::lock_guard lock(recorder().mutex);
    copy = recorder().spans;
  }
  std::sort(copy.begin(), copy.end(), by_start);
  return copy;
}

void clear() {
  std::lock_guard lock(recorder().mutex);
  recorder().spans.clear();
}

void record(Span span) {
  std::lock_guard lock(recorder().mutex);
  recorder().spans.push_back(std::move(span));
}

std::string current_lane() {
  // A thread's name does not change while it runs tasks; look it up once per thread.
  thread_local const std::string lane = spindle::threading::current_thread().name();
  return lane;
}

void ScopedSpan::begin(std::string name) {
  name_ = std::move(name);
  active_ = true;
  start_ = Clock::now();
}

void ScopedSpan::finish() noexcept {
  const auto end = Clock::now();
  try {
    record(Span{current_lane(), std::move(name_), category_, start_, end});
  } catch (...) {
    // Out of memory while tracing: the span is lost, the task is not.
  }
}

std::string chrome_trace_json(const std::vector<Section>& sections) {
  Clock::time_point origin = Clock::time_point::max();
  for (const auto& section : sections)
    for (const auto& span : section.spans)
      origin = std::min(origin, span.start);
  std::string out = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[";
  bool first = true;
  const auto add = [&](const std::string& event) {
    if (!first) out += ",";
    out += "\n";
    out += event;
    first = false;
  };
  int pid = 0;
  for (const auto& section : sections) {
    ++pid;
    add(fmt::format(R"({{"name":"process_name","ph":"M","pid":{},"tid":0,"args":{{"name":"{}"}}}})",
                    pid, json_escaped(section.title)));
    add(fmt::format(
        R"({{"name":"process_sort_index","ph":"M","pid":{},"tid":0,"args":{{"sort_index":{}}}}})",
        pid, pid));
    const auto lanes = lanes_of(section.spans);
    for (const auto& [lane, tid] : lanes)
      add(fmt::format(
          R"({{"name":"thread_name","ph":"M","pid":{},"tid":{},"args":{{"name":"{}"}}}})", pid,
          tid + 1, json_escaped(lane)));
    for (const auto& span : section.spans)
      add(fmt::format(
          R"({{"name":"{}","cat":"{}","ph":"X","ts":{:.3f},"dur":{:.3f},"pid":{},"tid":{}}})",
          json_escaped(span.name), json_escaped(span.category), micros(span.start - origin),
          micros(span.end - span.start), pid, lanes.at(span.lane) + 1));
  }
  out += "\n]}\n";
  return out;
}

std::string chrome_trace_json(const std::vector<Span>& spans) {
  return chrome_trace_json(std::vector<Section>{{"spindle", spans}});
}

std::string svg_timeline(const std::vector<Section>& sections, const SvgOptions& options) {
  constexpr int kMargin = 10;
  constexpr int kLabelWidth = 180;
  constexpr int kLaneHeight = 18;
  constexpr int kTitleHeight = 24;
  constexpr int kAxisHeight = 20;
  const int plot_width = std::max(100, options.width - kLabelWidth - 2 * kMargin);
  // One scale for every section, so that their lengths compare: the longest section fills
  // the plot; each section starts at its own first span.
  double longest_us = 1;
  for (const auto& section : sections) {
    if (section.spans.empty()) continue;
    Clock::time_point first = Clock::time_point::max();
    Clock::time_point last = Clock::time_point::min();
    for (const auto& span : section.spans) {
      first = std::min(first, span.start);
      last = std::max(last, span.end);
    }
    longest_us = std::max(longest_us, micros(last - first));
  }
  const double pixels_per_us = plot_width / longest_us;
  std::string body;
  int y = kMargin;
  if (!options.title.empty()) {
    body += fmt::format(R"(<text x="{}" y="{}" class="title">{}</text>)"
                        "\n",
                        kMargin, y + 16, xml_escaped(options.title));
    y += kTitleHeight;
  }
  static constexpr const char* kColours[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                             "#76b7b2", "#edc948", "#b07aa1", "#9c755f"};
  for (const auto& section : sections) {
    if (!section.title.empty()) {
      body += fmt::format(R"(<text x="{}" y="{}" class="section">{}</text>)"
                          "\n",
                          kMargin, y + 16, xml_escaped(section.title));
      y += kTitleHeight;
    }
    Clock::time_point first = Clock::time_point::max();
    for (const auto& span : section.spans)
      first = std::min(first, span.start);
    const auto lanes = lanes_of(section.spans);
    for (const auto& [lane, index] : lanes) {
      const int lane_y = y + index * kLaneHeight;
      body += fmt::format(R"(<text x="{}" y="{}" class="lane">{}</text>)"
                          "\n",
                          kMargin, lane_y + 13, xml_escaped(lane));
      body += fmt::format(R"(<line x1="{}" y1="{}" x2="{}" y2="{}" class="grid"/>)"
                          "\n",
                          kMargin + kLabelWidth, lane_y + kLaneHeight,
                          kMargin + kLabelWidth + plot_width, lane_y + kLaneHeight);
    }
    for (const auto& span : section.spans) {
      const int index = lanes.at(span.lane);
      const double x = kMargin + kLabelWidth + micros(span.start - first) * pixels_per_us;
      const double width = std::max(0.5, micros(span.end - span.start) * pixels_per_us);
      body += fmt::format(
          R"(<rect class="span" x="{:.2f}" y="{}" width="{:.2f}" height="{}" fill="{}">)"
          R"(<title>{} ({}): {:.3f} ms</title></rect>)"
          "\n",
          x, y + index * kLaneHeight + 2, width, kLaneHeight - 4,
          kColours[static_cast<std::size_t>(index) % std::size(kColours)], xml_escaped(span.name),
          xml_escaped(span.lane), micros(span.end - span.start) / 1000);
    }
    y += static_cast<int>(lanes.size()) * kLaneHeight + kMargin;
  }
  // The time axis: ten ticks over the longest section.
  const int axis_y = y + 4;
  body += fmt::format(R"(<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>)"
                      "\n",
                      kMargin + kLabelWidth, axis_y, kMargin + kLabelWidth + plot_width, axis_y);
  for (int tick = 0; tick <= 10; ++tick) {
    const double x = kMargin + kLabelWidth + plot_width * tick / 10.0;
    body += fmt::format(R"(<text x="{:.1f}" y="{}" class="tick">{:.4g} ms</text>)"
                        "\n",
                        x, axis_y + 14, longest_us * tick / 10.0 / 1000);
  }
  const int height = axis_y + kAxisHeight + kMargin;
  return fmt::format(
             R"(<?xml version="1.0" encoding="UTF-8"?>)"
             "\n"
             R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}">)"
             "\n"
             "<style>text{{font-family:sans-serif;font-size:11px}} .title{{font-size:15px;"
             "font-weight:bold}} .section{{font-size:13px;font-weight:bold}} "
             ".tick{{text-anchor:middle;font-size:9px}} .grid{{stroke:#ddd}} "
             ".axis{{stroke:#333}}</style>\n",
             options.width, height, options.width, height) +
         body + "</svg>\n";
}

std::string svg_timeline(const std::vector<Span>& spans, const SvgOptions& options) {
  return svg_timeline(std::vector<Section>{{"", spans}}, options);
}

}  // namespace spindle::trace
