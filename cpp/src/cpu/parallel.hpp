// When an OpenMP loop is worth its threads.
#pragma once

#include <cstdint>

namespace mtlx::cpu {

/// Loops over fewer elements than this run on the calling thread. Waking a second thread costs
/// ~5-10 us on an idle machine, but up to a scheduler time slice (ms) when the cores are
/// shared: a small problem in a solver loop (a working set, the school data) then spent 10-100x
/// longer in the barriers than in the work. The result does not depend on it (deterministic
/// reductions either way).
inline constexpr std::int64_t kMinParallelElements = std::int64_t{1} << 16;

}  // namespace mtlx::cpu
