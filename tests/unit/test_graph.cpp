#include <gtest/gtest.h>

#include <cmath>

#include "core/graph.h"

using namespace orch;

TEST(Graph, NodeCountsFollowTheSpec) {
  auto lh = GraphOperators::of(OrganLayout::of(DatasetKind::kLungsHeart));
  auto l = GraphOperators::of(OrganLayout::of(DatasetKind::kLungs));
  EXPECT_EQ(lh.adjacency.rows, 120);
  EXPECT_EQ(lh.adjacency_coarse.rows, 60);
  EXPECT_EQ(l.adjacency.rows, 94);
  EXPECT_EQ(l.adjacency_coarse.rows, 47);
  EXPECT_EQ(lh.coarse_counts, (std::vector<int>{22, 25, 13}));
  EXPECT_EQ(lh.down.rows, 60);
  EXPECT_EQ(lh.down.cols, 120);
  EXPECT_EQ(lh.up.rows, 120);
  EXPECT_EQ(lh.up.cols, 60);
}

TEST(Graph, RingsAreClosedBlockDiagonalAndDegreeTwo) {
  auto g = GraphOperators::of(OrganLayout::of(DatasetKind::kLungsHeart));
  const int offs[] = {0, 44, 94, 120};
  for (int i = 0; i < 120; ++i) {
    float deg = 0;
    for (int j = 0; j < 120; ++j) {
      deg += g.adjacency.at(i, j);
      EXPECT_EQ(g.adjacency.at(i, j), g.adjacency.at(j, i));
    }
    EXPECT_EQ(deg, 2.f) << "node " << i;
  }
  for (int o = 0; o < 3; ++o) {
    EXPECT_EQ(g.adjacency.at(offs[o], offs[o + 1] - 1), 1.f) << "ring of organ " << o << " is not closed";
    if (o > 0) {
      EXPECT_EQ(g.adjacency.at(offs[o], offs[o] - 1), 0.f) << "edge across organs";
    }
  }
}

TEST(Graph, ChebyshevOperatorIsMinusHalfA) {
  auto g = GraphOperators::of(OrganLayout::of(DatasetKind::kLungs));
  for (int i = 0; i < g.cheb.rows; ++i)
    for (int j = 0; j < g.cheb.cols; ++j) EXPECT_FLOAT_EQ(g.cheb.at(i, j), -0.5f * g.adjacency.at(i, j));
  // And on a graph with unequal degrees it is the symmetric normalisation -D^-1/2 A D^-1/2.
  DenseMatrix a(3, 3);
  a.at(0, 1) = a.at(1, 0) = a.at(1, 2) = a.at(2, 1) = 1;
  auto l = chebyshev_operator(a);
  EXPECT_NEAR(l.at(0, 1), -1 / std::sqrt(2.0), 1e-6);
  EXPECT_EQ(l.at(1, 1), 0.f);
}

TEST(Graph, DownsampleAveragesPairs) {
  auto d = downsample_operator({4, 3});
  // organ 1 (n = 4): coarse 0 = (f0 + f1)/2, coarse 1 = (f2 + f3)/2
  EXPECT_EQ(d.rows, 4);
  EXPECT_EQ(d.at(0, 0), 0.5f);
  EXPECT_EQ(d.at(0, 1), 0.5f);
  EXPECT_EQ(d.at(1, 2), 0.5f);
  EXPECT_EQ(d.at(1, 3), 0.5f);
  // organ 2 (n = 3, odd): coarse 0 = (f0 + f1)/2, coarse 1 = f2 exactly
  EXPECT_EQ(d.at(2, 4), 0.5f);
  EXPECT_EQ(d.at(2, 5), 0.5f);
  EXPECT_EQ(d.at(3, 6), 1.f);
  for (int r = 0; r < d.rows; ++r) {
    float s = 0;
    for (int c = 0; c < d.cols; ++c) s += d.at(r, c);
    EXPECT_FLOAT_EQ(s, 1.f);
  }
}

TEST(Graph, UnpoolHasNoWrapAroundAtTheSeam) {
  auto u = unpool_operator({6});
  // m = 3: f0 = c0, f1 = (c0 + c1)/2, f2 = c1, f3 = (c1 + c2)/2, f4 = c2, f5 = c2 (not (c2 + c0)/2)
  const float expect[6][3] = {{1, 0, 0}, {.5f, .5f, 0}, {0, 1, 0}, {0, .5f, .5f}, {0, 0, 1}, {0, 0, 1}};
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(u.at(i, j), expect[i][j]) << i << "," << j;
  auto u5 = unpool_operator({5});  // odd n: last node is even and copies c2
  EXPECT_EQ(u5.at(4, 2), 1.f);
  EXPECT_EQ(u5.at(3, 1), .5f);
  EXPECT_EQ(u5.at(3, 2), .5f);
}

TEST(Graph, UnpoolAfterDownsampleIsNotTheIdentity) {
  auto g = GraphOperators::of(OrganLayout::of(DatasetKind::kLungsHeart));
  auto ud = g.up.matmul(g.down);
  bool identity = true;
  for (int i = 0; i < ud.rows; ++i)
    for (int j = 0; j < ud.cols; ++j)
      if (std::abs(ud.at(i, j) - (i == j ? 1.f : 0.f)) > 1e-6) identity = false;
  EXPECT_FALSE(identity);
  // A constant signal survives both.
  for (int i = 0; i < ud.rows; ++i) {
    float s = 0;
    for (int j = 0; j < ud.cols; ++j) s += ud.at(i, j);
    EXPECT_FLOAT_EQ(s, 1.f);
  }
}
