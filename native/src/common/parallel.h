#pragma once
// A small parallel-for for the CPU paths: splits [0, n) into contiguous chunks over the machine's
// cores. Work items must be independent.
#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace marlin {

// The calling thread's share of the cores (0: all of them). Tensor-parallel CPU ranks are threads
// of one process; each caps its share so tp ranks do not start tp x cores threads.
inline unsigned& ThreadShare() {
  thread_local unsigned share = 0;
  return share;
}

inline unsigned CpuThreads() {
  unsigned t = std::thread::hardware_concurrency();
  t = t == 0 ? 1 : t;
  const unsigned s = ThreadShare();
  return s ? std::min(s, t) : t;
}

template <typename F>
void ParallelFor(size_t n, F&& body, size_t min_chunk = 1) {
  if (n == 0) return;
  size_t threads = std::min<size_t>(CpuThreads(), (n + min_chunk - 1) / min_chunk);
  if (threads <= 1) {
    body(size_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  size_t chunk = (n + threads - 1) / threads;
  for (size_t t = 1; t < threads; t++) {
    size_t lo = t * chunk, hi = std::min(n, lo + chunk);
    if (lo >= hi) break;
    pool.emplace_back([&body, lo, hi] { body(lo, hi); });
  }
  body(size_t{0}, std::min(n, chunk));
  for (auto& th : pool) th.join();
}

}  // namespace marlin
