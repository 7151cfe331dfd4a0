// The simulator's random source. Internal to the simulate module.
//
// std::mt19937 is portable but the std:: distributions are not (libstdc++ and
// libc++ draw differently), and the simulator promises the same facility for a
// seed on every machine; so the generator and every distribution live here.
//
// Thread safety: a Random is a value; give each thread (each file) its own,
// seeded with Random::Derive.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

namespace scisearch::simulate {

// xoshiro256** seeded through splitmix64 (Blackman and Vigna, 2018).
class Random {
 public:
  explicit Random(uint64_t seed) {
    for (uint64_t& word : state_) word = SplitMix64(seed);
  }

  // A seed for an independent stream named by (seed, label, index): the same
  // triple always gives the same stream, different triples unrelated ones.
  static uint64_t Derive(uint64_t seed, std::string_view label, uint64_t index = 0) {
    uint64_t h = seed ^ 0x9e3779b97f4a7c15ull;
    for (char c : label) h = (h ^ uint8_t(c)) * 0x100000001b3ull;
    h ^= index * 0xbf58476d1ce4e5b9ull;
    return SplitMix64(h);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1).
  double Uniform() { return double(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double low, double high) { return low + (high - low) * Uniform(); }
  // Uniform integer in [0, n); n > 0.
  uint64_t Below(uint64_t n) { return uint64_t(Uniform() * double(n)) % n; }
  // Uniform integer in [low, high].
  int64_t Between(int64_t low, int64_t high) {
    return low + int64_t(Below(uint64_t(high - low + 1)));
  }
  bool Chance(double probability) { return Uniform() < probability; }

  // Normal by Box-Muller (one of the pair; simple and portable).
  double Normal(double mean = 0.0, double sd = 1.0) {
    double u1 = Uniform();
    while (u1 <= 0.0) u1 = Uniform();
    const double u2 = Uniform();
    return mean + sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

  // Poisson counts: Knuth's product method for small means, a rounded normal above 30.
  int64_t Poisson(double mean) {
    if (mean <= 0.0) return 0;
    if (mean > 30.0) {
      const double x = std::round(Normal(mean, std::sqrt(mean)));
      return x < 0.0 ? 0 : int64_t(x);
    }
    const double limit = std::exp(-mean);
    int64_t k = 0;
    double product = Uniform();
    while (product > limit) {
      ++k;
      product *= Uniform();
    }
    return k;
  }

  // An element of a non-empty vector.
  template <typename T>
  const T& Pick(const std::vector<T>& items) {
    return items[Below(items.size())];
  }

 private:
  static uint64_t SplitMix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t state_[4];
};

}  // namespace scisearch::simulate
