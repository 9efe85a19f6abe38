#include "core/graph.h"

#include <cmath>
#include <stdexcept>

namespace orch {

DenseMatrix DenseMatrix::matmul(const DenseMatrix& o) const {
  if (cols != o.rows) throw std::invalid_argument("DenseMatrix::matmul: shape mismatch");
  DenseMatrix r(rows, o.cols);
  for (int i = 0; i < rows; ++i)
    for (int k = 0; k < cols; ++k) {
      float a = at(i, k);
      if (a == 0.f) continue;
      for (int j = 0; j < o.cols; ++j) r.at(i, j) += a * o.at(k, j);
    }
  return r;
}

std::vector<int> coarse_counts(const std::vector<int>& fine) {
  std::vector<int> c;
  for (int n : fine) c.push_back((n + 1) / 2);
  return c;
}

static int sum(const std::vector<int>& v) {
  int s = 0;
  for (int x : v) s += x;
  return s;
}

DenseMatrix ring_adjacency(const std::vector<int>& counts) {
  int total = sum(counts);
  DenseMatrix a(total, total);
  int off = 0;
  for (int n : counts) {
    for (int i = 0; i < n; ++i) {
      int prev = (i - 1 + n) % n, next = (i + 1) % n;
      if (prev != i) a.at(off + i, off + prev) = 1.f;
      if (next != i) a.at(off + i, off + next) = 1.f;
    }
    off += n;
  }
  return a;
}

DenseMatrix chebyshev_operator(const DenseMatrix& adj) {
  DenseMatrix l(adj.rows, adj.cols);
  std::vector<double> inv_sqrt_deg(adj.rows, 0.0);
  for (int i = 0; i < adj.rows; ++i) {
    double d = 0;
    for (int j = 0; j < adj.cols; ++j) d += adj.at(i, j);
    inv_sqrt_deg[i] = d > 0 ? 1.0 / std::sqrt(d) : 0.0;
  }
  for (int i = 0; i < adj.rows; ++i)
    for (int j = 0; j < adj.cols; ++j)
      if (adj.at(i, j) != 0.f)
        l.at(i, j) = static_cast<float>(-adj.at(i, j) * inv_sqrt_deg[i] * inv_sqrt_deg[j]);
  return l;
}

DenseMatrix downsample_operator(const std::vector<int>& fine) {
  auto coarse = coarse_counts(fine);
  DenseMatrix d(sum(coarse), sum(fine));
  int fo = 0, co = 0;
  for (size_t o = 0; o < fine.size(); ++o) {
    int n = fine[o], m = coarse[o];
    for (int j = 0; j < m; ++j) {
      if (2 * j + 1 < n) {
        d.at(co + j, fo + 2 * j) = 0.5f;
        d.at(co + j, fo + 2 * j + 1) = 0.5f;
      } else {
        d.at(co + j, fo + 2 * j) = 1.f;  // odd n: last coarse node is the last fine node
      }
    }
    fo += n;
    co += m;
  }
  return d;
}

DenseMatrix unpool_operator(const std::vector<int>& fine) {
  auto coarse = coarse_counts(fine);
  DenseMatrix u(sum(fine), sum(coarse));
  int fo = 0, co = 0;
  for (size_t o = 0; o < fine.size(); ++o) {
    int n = fine[o], m = coarse[o];
    for (int i = 0; i < n; ++i) {
      if (i % 2 == 0) {
        u.at(fo + i, co + i / 2) = 1.f;
      } else if ((i + 1) / 2 < m) {
        u.at(fo + i, co + (i - 1) / 2) = 0.5f;
        u.at(fo + i, co + (i + 1) / 2) = 0.5f;
      } else {
        u.at(fo + i, co + m - 1) = 1.f;  // last odd node: no wrap-around across the seam
      }
    }
    fo += n;
    co += m;
  }
  return u;
}

GraphOperators GraphOperators::of(const OrganLayout& layout) {
  GraphOperators g;
  for (const auto& o : layout.organs) g.fine_counts.push_back(o.points);
  g.coarse_counts = orch::coarse_counts(g.fine_counts);
  g.adjacency = ring_adjacency(g.fine_counts);
  g.adjacency_coarse = ring_adjacency(g.coarse_counts);
  g.cheb = chebyshev_operator(g.adjacency);
  g.cheb_coarse = chebyshev_operator(g.adjacency_coarse);
  g.down = downsample_operator(g.fine_counts);
  g.up = unpool_operator(g.fine_counts);
  return g;
}

}  // namespace orch
