// Network lesson 2: one thread downloads a document and sets an Event; another waits on the
// Event, then counts the document's words.
//
//   event_download_word_count BASE_URL [PATH]   (PATH defaults to /, the server's index page)
#include <chrono>
#include <sstream>
#include <string>

#include "spindle/http.hpp"
#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
namespace http = spindle::http;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 2) {
    spindle::print("usage: event_download_word_count BASE_URL [PATH]");
    return 2;
  }
  const std::string url = std::string(argv[1]) + (argc > 2 ? argv[2] : "/");
  const auto start = Clock::now();
  threading::Event downloaded;
  std::string document;  // written before set(), read after wait(): the Event orders them

  threading::Thread downloader([&] {
    spindle::print("Downloading {}", url);
    try {
      document = http::get(url).body;
    } catch (const http::RequestError& error) {
      spindle::print("{}", error.what());
    }
    spindle::print("Downloaded {} bytes", document.size());
    downloaded.set();
  });
  threading::Thread counter([&] {
    spindle::print("Waiting for the download...");
    downloaded.wait();
    std::istringstream words(document);
    std::size_t count = 0;
    for (std::string word; words >> word;)
      ++count;
    spindle::print("Word count: {}", count);
  });
  counter.start();
  downloader.start();
  downloader.join();
  counter.join();
  spindle::print("Finished in {:.2f} second(s)",
                 std::chrono::duration<double>(Clock::now() - start).count());
}
