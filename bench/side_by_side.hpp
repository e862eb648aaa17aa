// What every side-by-side benchmark runner reports with: the median of its rounds, the load
// average (a figure means little when other work shares the 2 cores), thousands separators
// and the CPUs this process may use.
#pragma once

#include <sched.h>

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace spindle_bench {

// The median; the mean of the middle two for an even count; 0 for none.
inline double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

// "1.23 0.98 0.75": the 1, 5 and 15 minute load averages from /proc/loadavg.
inline std::string load_average() {
  std::ifstream file("/proc/loadavg");
  std::string one, five, fifteen;
  file >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// 1234567.8 -> "1,234,568".
inline std::string with_commas(double value) {
  const std::string digits = std::to_string(static_cast<long long>(value + 0.5));
  std::string grouped;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  return grouped;
}

// How many CPUs this process may run on (taskset narrows it).
inline std::size_t affinity_cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    return static_cast<std::size_t>(CPU_COUNT(&set));
  return std::thread::hardware_concurrency();
}

}  // namespace spindle_bench
