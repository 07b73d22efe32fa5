// Declarations of the reference kernels (naive loops, nothing clever): the executable
// specification every optimised kernel is tested against. Signatures as in kernels.h.
#pragma once

#include "kernels/kernels.h"

namespace fastcnn::kernels::reference {

#include "kernels/declarations.inc"

}  // namespace fastcnn::kernels::reference
