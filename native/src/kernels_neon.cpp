// The tap convolution's loops for neon (compiler flags: CMakeLists.txt).
#define MG_ISA neon
#define MG_ISA_NAME "neon"
#define MG_VECTOR_BYTES 16
#define MG_VECTOR_REGISTERS 32
#include "kernels.h"

namespace mg_kernels {
Kernels kernels_neon() { return neon::kernels(); }
}  // namespace mg_kernels
