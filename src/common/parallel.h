// Running independent pieces of work on a few threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace scisearch {

// Calls fn(i) for every i in [0, n) on at most `threads` threads (the calling thread is one
// of them) and returns when all calls have returned. fn must be safe to run concurrently for
// different i and must not throw. Any thread.
template <typename F>
void ParallelFor(size_t n, int threads, F&& fn) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) fn(i);
  };
  const size_t count = std::min<size_t>(n, size_t(std::max(1, threads)));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < count; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

}  // namespace scisearch
