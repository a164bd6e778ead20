// The tap convolution's loops for sse2 (compiler flags: CMakeLists.txt).
#define MG_ISA sse2
#define MG_ISA_NAME "sse2"
#define MG_VECTOR_BYTES 16
#define MG_VECTOR_REGISTERS 16
#include "kernels.h"

namespace mg_kernels {
Kernels kernels_sse2() { return sse2::kernels(); }
}  // namespace mg_kernels
