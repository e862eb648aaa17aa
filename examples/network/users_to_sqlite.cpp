// The REST-to-database exercise: fetch users 1..N concurrently from a server's /users/{id}
// with the awaitable HTTP client (every request in flight at once on one event loop), and
// upsert them into an SQLite table. Running it twice leaves N rows: the id is the key.
//
//   users_to_sqlite BASE_URL N DATABASE
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spindle/asyncio.hpp"
#include "spindle/http.hpp"
#include "spindle/print.hpp"

namespace asyncio = spindle::asyncio;
namespace http = spindle::http;
using Clock = std::chrono::steady_clock;

// An open SQLite database; statements run one at a time on the calling thread.
class Database {
 public:
  explicit Database(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      const std::string message = sqlite3_errmsg(db_);
      sqlite3_close(db_);
      throw std::runtime_error("cannot open " + path + ": " + message);
    }
  }
  ~Database() { sqlite3_close(db_); }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void execute(const char* sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string message = error != nullptr ? error : "unknown error";
      sqlite3_free(error);
      throw std::runtime_error(std::string(sql) + ": " + message);
    }
  }
  // INSERT ... ON CONFLICT(id) DO UPDATE: a user fetched again replaces its row.
  void upsert_user(const nlohmann::json& user) {
    sqlite3_stmt* statement = nullptr;
    check(sqlite3_prepare_v2(db_,
                             "INSERT INTO users (id, name, username, email) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                             "username = excluded.username, email = excluded.email",
                             -1, &statement, nullptr));
    const auto text = [&](int index, const char* field) {
      const std::string value = user.value(field, "");
      sqlite3_bind_text(statement, index, value.c_str(), -1, SQLITE_TRANSIENT);
    };
    sqlite3_bind_int64(statement, 1, user.at("id").get<sqlite3_int64>());
    text(2, "name");
    text(3, "username");
    text(4, "email");
    const int result = sqlite3_step(statement);
    sqlite3_finalize(statement);
    if (result != SQLITE_DONE) check(result);
  }
  long count_users() {
    sqlite3_stmt* statement = nullptr;
    check(sqlite3_prepare_v2(db_, "SELECT COUNT(*) FROM users", -1, &statement, nullptr));
    long count = -1;
    if (sqlite3_step(statement) == SQLITE_ROW) count = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    return count;
  }

 private:
  void check(int result) {
    if (result != SQLITE_OK) throw std::runtime_error(sqlite3_errmsg(db_));
  }
  sqlite3* db_ = nullptr;
};

// Fetches every user at once; returns the parsed users (a failed one is reported and skipped).
asyncio::Task<std::vector<nlohmann::json>> fetch_users(std::string base, int count) {
  std::vector<asyncio::Task<http::Response>> requests;
  for (int id = 1; id <= count; ++id)
    requests.push_back(http::async_get(base + "/users/" + std::to_string(id),
                                       {.headers = {{"Accept", "application/json"}}}));
  auto outcomes = co_await asyncio::gather(asyncio::return_exceptions, std::move(requests));
  std::vector<nlohmann::json> users;
  for (auto& outcome : outcomes) {
    try {
      const http::Response response = outcome.value();
      response.raise_for_status();
      users.push_back(nlohmann::json::parse(response.body));
    } catch (const std::exception& error) {
      spindle::print("skipped: {}", error.what());
    }
  }
  co_return users;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    spindle::print("usage: users_to_sqlite BASE_URL N DATABASE");
    return 2;
  }
  const std::string base = argv[1];
  const int count = std::atoi(argv[2]);
  if (count < 1) {
    spindle::print("N must be a positive number, not '{}'", argv[2]);
    return 2;
  }
  const auto start = Clock::now();
  try {
    Database database(argv[3]);
    database.execute(
        "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, username TEXT, "
        "email TEXT)");
    const auto users = asyncio::run(fetch_users(base, count));
    spindle::print("Fetched {} of {} users in {:.2f} second(s)", users.size(), count,
                   std::chrono::duration<double>(Clock::now() - start).count());
    database.execute("BEGIN");
    for (const auto& user : users)
      database.upsert_user(user);
    database.execute("COMMIT");
    spindle::print("users table: {} row(s)", database.count_users());
    spindle::print("Finished in {:.2f} second(s)",
                   std::chrono::duration<double>(Clock::now() - start).count());
    return static_cast<int>(users.size()) == count ? 0 : 1;
  } catch (const std::exception& error) {
    spindle::print("error: {}", error.what());
    return 1;
  }
}
