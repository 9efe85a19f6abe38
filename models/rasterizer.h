// The soft polygon rasteriser of the Rasterize baseline (BoundaryFormer's SoftPolygon, mode "mask").
//
// For each pixel centre p (integer coordinates) and a closed polygon: out = sigmoid(s * d^2 / tau), with
// s = +1 inside (even-odd test), -1 outside, and d^2 the squared distance to the nearest edge segment. The
// gradient flows, as in the reference's CUDA kernel, only through d^2 to the two end points of the argmin
// segment (s held constant). Pixels are processed in chunks (bounded memory) and only inside the polygons'
// bounding box plus 4 pixels: beyond that the output underflows to exactly 0 in float32 and so does its
// gradient. Works on any device the vertices are on (CPU, CUDA). Stateless; thread-safe.
#pragma once

#include <ATen/core/Tensor.h>

namespace orch::models {

// vertices (B, n, 2) as (x, y) in pixel coordinates; returns (B, size, size).
at::Tensor soft_polygon(const at::Tensor& vertices, int64_t size, double tau = 0.1, int64_t chunk = 8192);

}  // namespace orch::models
