// The tap convolution's loops for avx2 (compiler flags: CMakeLists.txt).
#define MG_ISA avx2
#define MG_ISA_NAME "avx2"
#define MG_VECTOR_BYTES 32
#define MG_VECTOR_REGISTERS 16
#include "kernels.h"

namespace mg_kernels {
Kernels kernels_avx2() { return avx2::kernels(); }
}  // namespace mg_kernels
