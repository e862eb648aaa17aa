// Prime arithmetic for `spindle factor` and the CPU-bound workload of `spindle compare`: plain
// functions of plain numbers, so that a ProcessPoolExecutor can run them in its workers.
#pragma once

#include <cstdint>
#include <vector>

namespace spindle_cli {

// Whether n is prime: deterministic Miller-Rabin for every 64-bit n. Pure; any thread.
bool is_prime(std::uint64_t n);

// The prime factors of n (n >= 2) in ascending order, repeated by multiplicity (12 -> 2 2 3):
// trial division by small primes, then Pollard's rho (Brent) with Miller-Rabin. Milliseconds
// at most for any 64-bit n. Pure; any thread.
std::vector<std::uint64_t> prime_factors(std::uint64_t n);

// How many primes lie in [from, to), each tested by trial division up to its square root: the
// tutorials' deliberately plain CPU-bound loop. Pure; any thread.
std::uint64_t count_primes_by_trial_division(std::uint64_t from, std::uint64_t to);

}  // namespace spindle_cli
