// spindle factor end to end, and the prime arithmetic behind it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <numeric>
#include <random>

#include "command_runner.hpp"
#include "primes.hpp"

using spindle_test::run_spindle;

TEST(Primes, FactorsMultiplyBackToTheNumberAndArePrime) {
  std::mt19937_64 random(42);
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t n = std::max<std::uint64_t>(2, random() >> (i % 64));
    const auto factors = spindle_cli::prime_factors(n);
    ASSERT_FALSE(factors.empty()) << n;
    std::uint64_t rest = n;  // divided by each factor in turn, it must end at 1
    for (std::size_t k = 0; k < factors.size(); ++k) {
      ASSERT_TRUE(spindle_cli::is_prime(factors[k])) << n << " " << factors[k];
      if (k > 0) {
        ASSERT_LE(factors[k - 1], factors[k]);
      }
      ASSERT_EQ(rest % factors[k], 0u) << n;
      rest /= factors[k];
    }
    ASSERT_EQ(rest, 1u) << n;
  }
}

TEST(Primes, IsPrimeAgreesWithTrialDivisionAndKnownPrimes) {
  EXPECT_EQ(spindle_cli::count_primes_by_trial_division(0, 100000), 9592u);
  std::uint64_t counted = 0;
  for (std::uint64_t n = 0; n < 100000; ++n)
    counted += spindle_cli::is_prime(n);
  EXPECT_EQ(counted, 9592u);
  EXPECT_TRUE(spindle_cli::is_prime(18446744073709551557ull));  // the largest 64-bit prime
  EXPECT_FALSE(spindle_cli::is_prime(3215031751ull));           // a strong pseudoprime to 2,3,5,7
  EXPECT_EQ(spindle_cli::prime_factors(4295098369ull), (std::vector<std::uint64_t>{65537, 65537}));
}

TEST(Factor, PrintsFactorsInInputOrder) {
  const auto result = run_spindle({"factor", "-j", "2", "600851475143", "12", "97",
                                   "18446744073709551615", "1000000016000000063", "2"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out,
            "600851475143: 71 839 1471 6857\n"
            "12: 2 2 3\n"
            "97: 97\n"
            "18446744073709551615: 3 5 17 257 641 65537 6700417\n"
            "1000000016000000063: 1000000007 1000000009\n"
            "2: 2\n");
  EXPECT_NE(result.err.find("factored on 2 worker process(es)"), std::string::npos) << result.err;
}

TEST(Factor, RejectsNonNumbersAndNumbersOutOfRangeAndFactorsTheRest) {
  const auto result = run_spindle(
      {"factor", "12", "abc", "0", "1", "18446744073709551616", "12x", "", "3.5", "15"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "12: 2 2 3\n15: 3 5\n");
  for (const char* line :
       {"spindle factor: error: abc: not a number", "spindle factor: error: 0: out of range",
        "spindle factor: error: 1: out of range",
        "spindle factor: error: 18446744073709551616: out of range",
        "spindle factor: error: 12x: not a number", "spindle factor: error: : empty",
        "spindle factor: error: 3.5: not a number"})
    EXPECT_NE(result.err.find(line), std::string::npos) << line << "\n" << result.err;
  EXPECT_NE(result.err.find("from 2 to 18446744073709551615"), std::string::npos);
}

TEST(Factor, OnlyBadItemsStartNoProcesses) {
  const auto result = run_spindle({"factor", "x"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err.find("worker process"), std::string::npos) << result.err;
}

TEST(Factor, NegativeNumbersAndMissingArgumentsAreUsageErrors) {
  EXPECT_EQ(run_spindle({"factor"}).exit_code, 2);
  EXPECT_EQ(run_spindle({"factor", "-j", "0", "12"}).exit_code, 2);
  const auto negative = run_spindle({"factor", "--", "-5"});
  EXPECT_EQ(negative.exit_code, 1);
  EXPECT_NE(negative.err.find("-5: negative"), std::string::npos) << negative.err;
}

TEST(Factor, JsonListsResultsAndErrorsInInputOrder) {
  const auto result = run_spindle({"--json", "factor", "-j", "1", "21", "nope", "8"});
  EXPECT_EQ(result.exit_code, 1);
  const auto document = nlohmann::json::parse(result.out);
  ASSERT_EQ(document["results"].size(), 3u);
  EXPECT_EQ(document["results"][0]["number"], "21");
  EXPECT_EQ(document["results"][0]["factors"], (std::vector<std::uint64_t>{3, 7}));
  EXPECT_TRUE(document["results"][1].contains("error"));
  EXPECT_EQ(document["results"][2]["factors"], (std::vector<std::uint64_t>{2, 2, 2}));
  EXPECT_EQ(document["processes"], 1);
}
