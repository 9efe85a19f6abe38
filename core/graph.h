// Graph operators of the organ contours (spec §2): ring adjacency, Chebyshev operator, down- and up-sampling.
//
// Every operator is block-diagonal over organs in layout order (RL, LL, H). All are small dense matrices
// (at most 120 x 120), built once per data set kind and read-only afterwards: thread-safe to share.
#pragma once

#include <vector>

#include "core/organs.h"

namespace orch {

struct DenseMatrix {
  int rows = 0;
  int cols = 0;
  std::vector<float> data;  // row-major

  DenseMatrix() = default;
  DenseMatrix(int r, int c) : rows(r), cols(c), data(static_cast<size_t>(r) * c, 0.f) {}
  float& at(int r, int c) { return data[static_cast<size_t>(r) * cols + c]; }
  float at(int r, int c) const { return data[static_cast<size_t>(r) * cols + c]; }
  DenseMatrix matmul(const DenseMatrix& other) const;
};

// Node counts per organ of the coarse graph: ceil(n / 2) each (RL 22, LL 25, H 13).
std::vector<int> coarse_counts(const std::vector<int>& fine_counts);

// Undirected closed rings, one per organ, no edges between organs; every node has degree 2.
DenseMatrix ring_adjacency(const std::vector<int>& counts);

// PyG ChebConv's scaled Laplacian with normalization 'sym' and lambda_max = 2: L̂ = -D^{-1/2} A D^{-1/2}.
// For the rings here this is -A/2 (neighbours -0.5, diagonal 0).
DenseMatrix chebyshev_operator(const DenseMatrix& adjacency);

// D (m x n): coarse j = (fine 2j + fine 2j+1) / 2; for odd n the last coarse node copies the last fine node.
DenseMatrix downsample_operator(const std::vector<int>& fine_counts);

// U (n x m): even fine i = coarse i/2; odd fine i = mean of coarse (i-1)/2 and (i+1)/2, except the last odd
// node, which copies coarse m-1 (no wrap-around across the seam).
DenseMatrix unpool_operator(const std::vector<int>& fine_counts);

// All operators of one data set kind.
struct GraphOperators {
  std::vector<int> fine_counts, coarse_counts;
  DenseMatrix adjacency, adjacency_coarse;  // A, AD
  DenseMatrix cheb, cheb_coarse;            // L̂ on A and AD
  DenseMatrix down, up;                     // D (N2 x N1), U (N1 x N2)

  static GraphOperators of(const OrganLayout& layout);
};

}  // namespace orch
