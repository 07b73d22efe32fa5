// Declarations of the reference kernels (naive loops, nothing clever): the executable
// specification every optimised kernel is tested against. Signatures as in kernels.h.
#pragma once

#include "kernels/kernels.h"

namespace fastcnn::kernels::reference {

#include "kernels/declarations.inc"

// The scalar activation used by every tier's epilogue.
float apply_activation(Activation activation, float value);

}  // namespace fastcnn::kernels::reference
