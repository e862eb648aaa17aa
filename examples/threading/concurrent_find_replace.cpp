// Lesson 5: threads speed up work that waits on I/O. Ten files in a fresh temporary folder
// get a find-and-replace ("id" -> "ids"), one thread per file. Each thread reports into its
// own slot of a vector, passed with std::ref because Thread copies its arguments.
#include <chrono>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace fs = std::filesystem;
namespace threading = spindle::threading;
using Clock = std::chrono::steady_clock;

// A new, empty folder under the system's temporary directory, removed with its contents when
// this object goes.
class TemporaryFolder {
 public:
  TemporaryFolder() {
    std::random_device random;
    do {
      path_ = fs::temp_directory_path() / ("spindle-find-replace-" + std::to_string(random()));
    } while (!fs::create_directory(path_));
  }
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;
  ~TemporaryFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void write_file(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// Replaces every `from` in `text` with `to`; returns how many.
std::size_t replace_all(std::string& text, std::string_view from, std::string_view to) {
  std::size_t count = 0;
  for (auto pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
    ++count;
  }
  return count;
}

// The work of one thread.
void replace(const fs::path& filename, std::string_view substr, std::string_view new_substr,
             std::size_t& replaced) {
  spindle::print("Processing the file {}", filename.filename().string());
  std::string content = read_file(filename);
  replaced = replace_all(content, substr, new_substr);
  write_file(filename, content);
}

int main() {
  const auto start = Clock::now();
  const TemporaryFolder folder;

  // test1.txt holds 1 "id", test2.txt holds 2, ... test10.txt holds 10.
  std::vector<fs::path> filenames;
  for (int file = 1; file <= 10; ++file) {
    filenames.push_back(folder.path() / ("test" + std::to_string(file) + ".txt"));
    std::string content;
    for (int line = 1; line <= file; ++line) {
      content += "id: " + std::to_string(line) + "\n";
    }
    write_file(filenames.back(), content);
  }

  std::vector<std::size_t> replaced(filenames.size(), 0);
  std::deque<threading::Thread> threads;  // a deque never moves its elements
  for (std::size_t i = 0; i < filenames.size(); ++i) {
    threads.emplace_back(replace, filenames[i], "id", "ids", std::ref(replaced[i])).start();
  }
  for (auto& thread : threads) {
    thread.join();
  }

  std::size_t total = 0;
  for (std::size_t i = 0; i < filenames.size(); ++i) {
    spindle::print("{}: replaced {} occurrence(s) of 'id' with 'ids'",
                   filenames[i].filename().string(), replaced[i]);
    total += replaced[i];
  }
  const std::string sample = read_file(filenames[2]);
  spindle::print("test3.txt now reads: {}", sample.substr(0, sample.find('\n')));
  spindle::print("Replaced {} occurrence(s) in {} files", total, filenames.size());

  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
}
