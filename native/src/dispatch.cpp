// Which loops run: chosen at run time from what the CPU reports, so one build serves every
// x86-64 CPU (the wheel is not tied to the machine that compiled it).
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "isa.h"

namespace mg_kernels {

#if defined(__x86_64__) || defined(_M_X64)
Kernels kernels_avx512();
Kernels kernels_avx2();
Kernels kernels_sse2();
#elif defined(__aarch64__)
Kernels kernels_neon();
#endif

namespace {

std::vector<Kernels> supported() {
  std::vector<Kernels> found;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) found.push_back(kernels_avx512());
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) found.push_back(kernels_avx2());
  found.push_back(kernels_sse2());  // every x86-64 CPU has SSE2
#elif defined(__aarch64__)
  found.push_back(kernels_neon());  // every AArch64 CPU has NEON
#endif
  return found;
}

const std::vector<Kernels>& all() {
  static const std::vector<Kernels> found = supported();
  return found;
}

const Kernels* find(const std::string& name) {
  for (const Kernels& k : all())
    if (name == k.name) return &k;
  return nullptr;
}

const Kernels* initial() {
  const char* env = std::getenv("MLX_GENERATIVE_SIMD");
  if (env && *env) {
    if (const Kernels* k = find(env)) return k;
    throw std::invalid_argument(std::string("MLX_GENERATIVE_SIMD=") + env + ": this CPU runs " +
                                available_instruction_sets());
  }
  return &all().front();
}

std::atomic<const Kernels*>& current() {
  static std::atomic<const Kernels*> chosen{initial()};
  return chosen;
}

}  // namespace

const Kernels& kernels() { return *current().load(); }

void use_instruction_set(const std::string& name) {
  const Kernels* k = find(name);
  if (!k) throw std::invalid_argument("instruction set '" + name + "': this CPU runs " + available_instruction_sets());
  current().store(k);
}

std::string available_instruction_sets() {
  std::string names;
  for (const Kernels& k : all()) names += (names.empty() ? "" : ", ") + std::string(k.name);
  return names;
}

}  // namespace mg_kernels
