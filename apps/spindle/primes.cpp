#include "primes.hpp"

#include <algorithm>
#include <numeric>

namespace spindle_cli {

namespace {

__extension__ typedef unsigned __int128 uint128;

std::uint64_t multiply_mod(std::uint64_t a, std::uint64_t b, std::uint64_t m) {
  return static_cast<std::uint64_t>(static_cast<uint128>(a) * b % m);
}

std::uint64_t power_mod(std::uint64_t base, std::uint64_t exponent, std::uint64_t m) {
  std::uint64_t result = 1;
  base %= m;
  for (; exponent > 0; exponent >>= 1) {
    if (exponent & 1) result = multiply_mod(result, base, m);
    base = multiply_mod(base, base, m);
  }
  return result;
}

constexpr std::uint64_t kSmallPrimes[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};

// A non-trivial factor of the odd composite n (Pollard's rho, Brent's cycle finding, with
// products of 128 differences per gcd).
std::uint64_t rho_factor(std::uint64_t n) {
  for (std::uint64_t c = 1;; ++c) {
    const auto step = [&](std::uint64_t x) { return (multiply_mod(x, x, n) + c) % n; };
    std::uint64_t y = 2, x = 2, saved = 2, product = 1, divisor = 1;
    for (std::uint64_t length = 1; divisor == 1; length <<= 1) {
      x = y;
      for (std::uint64_t i = 0; i < length; ++i)
        y = step(y);
      for (std::uint64_t done = 0; done < length && divisor == 1; done += 128) {
        saved = y;
        for (std::uint64_t i = 0; i < std::min<std::uint64_t>(128, length - done); ++i) {
          y = step(y);
          product = multiply_mod(product, x > y ? x - y : y - x, n);
        }
        divisor = std::gcd(product, n);
      }
    }
    if (divisor == n) {  // the batch overshot: retrace it one step at a time
      do {
        saved = step(saved);
        divisor = std::gcd(x > saved ? x - saved : saved - x, n);
      } while (divisor == 1);
    }
    if (divisor != n) return divisor;
  }
}

void factor_into(std::uint64_t n, std::vector<std::uint64_t>& factors) {
  if (n == 1) return;
  if (is_prime(n)) {
    factors.push_back(n);
    return;
  }
  const std::uint64_t divisor = rho_factor(n);
  factor_into(divisor, factors);
  factor_into(n / divisor, factors);
}

}  // namespace

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  for (const std::uint64_t p : kSmallPrimes) {
    if (n % p == 0) return n == p;
  }
  std::uint64_t odd = n - 1;
  int twos = 0;
  for (; odd % 2 == 0; odd /= 2)
    ++twos;
  for (const std::uint64_t base : kSmallPrimes) {
    std::uint64_t x = power_mod(base, odd, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int i = 1; i < twos && composite; ++i) {
      x = multiply_mod(x, x, n);
      composite = x != n - 1;
    }
    if (composite) return false;
  }
  return true;
}

std::vector<std::uint64_t> prime_factors(std::uint64_t n) {
  std::vector<std::uint64_t> factors;
  for (std::uint64_t p = 2; p < 1000 && p * p <= n; p += p == 2 ? 1 : 2) {
    for (; n % p == 0; n /= p)
      factors.push_back(p);
  }
  factor_into(n, factors);
  std::sort(factors.begin(), factors.end());
  return factors;
}

std::uint64_t count_primes_by_trial_division(std::uint64_t from, std::uint64_t to) {
  std::uint64_t count = 0;
  for (std::uint64_t n = std::max<std::uint64_t>(from, 2); n < to; ++n) {
    bool prime = true;
    for (std::uint64_t d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    count += prime;
  }
  return count;
}

}  // namespace spindle_cli
