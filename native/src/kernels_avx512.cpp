// The tap convolution's loops for avx512 (compiler flags: CMakeLists.txt).
#define MG_ISA avx512
#define MG_ISA_NAME "avx512"
#define MG_VECTOR_BYTES 64
#define MG_VECTOR_REGISTERS 32
#include "kernels.h"

namespace mg_kernels {
Kernels kernels_avx512() { return avx512::kernels(); }
}  // namespace mg_kernels
