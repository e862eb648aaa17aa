// Lesson 8: a bank account shared by five customers (threads), each making deposits and
// withdrawals. Every operation reads and then writes the balance, so it holds the account's
// Lock throughout; without it concurrent updates could be lost. 1000 + 5 x (500 - 200) = 2500.
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

#include "spindle/print.hpp"
#include "spindle/threading.hpp"

namespace threading = spindle::threading;
using Clock = std::chrono::steady_clock;

class BankAccount {
 public:
  explicit BankAccount(long balance) : balance_(balance) {}

  void deposit(long amount) {
    const std::scoped_lock guard(lock_);
    balance_ += amount;
  }

  // False (and no change) when the balance is too low.
  bool withdraw(long amount) {
    const std::scoped_lock guard(lock_);
    if (balance_ < amount) return false;
    balance_ -= amount;
    return true;
  }

  long balance() {
    const std::scoped_lock guard(lock_);
    return balance_;
  }

 private:
  threading::Lock lock_;
  long balance_;
};

// 100 deposits of 5 and 20 withdrawals of 10, interleaved: +300 in all.
void customer(BankAccount& account) {
  int refused = 0;
  for (int i = 0; i < 100; ++i) {
    account.deposit(5);
    if (i % 5 == 0 && !account.withdraw(10)) ++refused;
  }
  spindle::print("{}: deposited 500, withdrew 200 ({} withdrawal(s) refused)",
                 threading::current_thread().name(), refused);
}

int main() {
  const auto start = Clock::now();
  BankAccount account(1000);
  spindle::print("Starting balance: {}", account.balance());

  std::deque<threading::Thread> customers;  // a deque never moves its elements
  for (int i = 1; i <= 5; ++i) {
    const threading::ThreadOptions options{.name = "customer-" + std::to_string(i)};
    customers.emplace_back(options, customer, std::ref(account)).start();
  }
  for (auto& thread : customers) {
    thread.join();
  }

  spindle::print("Final balance: {}", account.balance());
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  spindle::print("Finished in {:.2f} second(s)", elapsed);
  return account.balance() == 2500 ? 0 : 1;
}
