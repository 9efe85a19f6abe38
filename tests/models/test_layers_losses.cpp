// ChebConv, the IGSC lookup, losses and the rasteriser against direct formulas, hand computations and
// finite differences.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/graph.h"
#include "models/layers.h"
#include "models/losses.h"
#include "models/rasterizer.h"

using namespace orch;
using namespace orch::models;

TEST(ChebConv, MatchesTheChebyshevPolynomialFormula) {
  torch::manual_seed(1);
  auto lhat = to_tensor(chebyshev_operator(ring_adjacency({6, 4}))).to(torch::kFloat64);
  ChebConv conv(3, 5, 4);
  conv->to(torch::kFloat64);
  auto x = torch::randn({2, 10, 3}, torch::kFloat64);
  auto got = conv(x, GraphOperator(lhat));
  // Direct: T0 = I, T1 = L, Tk = 2 L T(k-1) - T(k-2); out = sum_k (Tk X) Θk + b.
  std::vector<torch::Tensor> T = {torch::eye(10, torch::kFloat64), lhat};
  for (int k = 2; k < 4; ++k) T.push_back(2 * torch::matmul(lhat, T[k - 1]) - T[k - 2]);
  auto want = conv->bias.clone();
  for (int k = 0; k < 4; ++k) want = want + torch::matmul(torch::matmul(T[k], x), conv->weight[k]);
  EXPECT_TRUE(torch::allclose(got, want, 1e-10, 1e-12));
  EXPECT_FLOAT_EQ(lhat[0][1].item<float>(), -0.5f);
}

TEST(GraphOperator, EqualsTheDenseProductBitForBit) {
  // The sparse row form must give exactly what torch::matmul with the dense operator gives, forward and backward,
  // for every operator of both data set kinds (L̂ has 2 non-zeros per row, U 1 or 2, D 2).
  torch::manual_seed(3);
  for (DatasetKind kind : {DatasetKind::kLungsHeart, DatasetKind::kLungs}) {
    GraphTensors g = GraphTensors::of(OrganLayout::of(kind));
    for (const GraphOperator* op : {&g.cheb, &g.cheb_coarse, &g.down, &g.up}) {
      auto x = torch::randn({3, op->cols(), 7}, torch::requires_grad());
      auto x2 = x.detach().clone().requires_grad_(true);
      auto got = op->apply(x);
      auto want = torch::matmul(op->dense(), x2);
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_TRUE(torch::equal(got, want));
      auto w = torch::randn_like(got);
      (got * w).sum().backward();
      (want * w).sum().backward();
      EXPECT_TRUE(torch::allclose(x.grad(), x2.grad(), 0, 1e-6));
      EXPECT_TRUE(torch::equal(op->apply(x.detach()[0]), torch::matmul(op->dense(), x.detach()[0])));  // unbatched
    }
    EXPECT_EQ(g.cheb.rows(), g.up.rows());
    EXPECT_EQ(g.cheb_coarse.rows(), g.down.rows());
  }
}

TEST(ChebConv, InitialisationFollowsTheReference) {
  torch::manual_seed(2);
  ChebConv conv(40, 60, 6);
  double bound = std::sqrt(6.0 / 100);
  EXPECT_LE(conv->weight.abs().max().item<double>(), bound);
  EXPECT_GT(conv->weight.abs().max().item<double>(), 0.9 * bound);  // glorot-uniform, not N(0, 0.1)
  EXPECT_NEAR(conv->bias.std().item<double>(), 0.1, 0.04);
  ChebConv head(32, 2, 1, false);
  EXPECT_FALSE(head->bias.defined());
  EXPECT_EQ(head->weight.numel(), 64);
}

TEST(NodeNorm, NormalisesEachNodeOverItsFeatures) {
  auto x = torch::randn({2, 5, 7}, torch::kFloat64) * 3 + 1;
  auto y = node_norm(x);
  EXPECT_TRUE(torch::allclose(y.mean(-1), torch::zeros({2, 5}, torch::kFloat64), 1e-9, 1e-9));
  auto var = y.var(-1, false);
  EXPECT_TRUE(torch::allclose(var, torch::ones({2, 5}, torch::kFloat64), 1e-3, 1e-3));
}

namespace {
// A 4 x 4 map whose value at (y, x) is 4 y + x: bilinear interpolation of it is exact.
torch::Tensor linear_map() { return torch::arange(16, torch::kFloat64).reshape({1, 1, 4, 4}); }
double lookup_at(double px, double py) {
  auto p = torch::tensor({px / 4, py / 4}, torch::kFloat64).reshape({1, 1, 2});
  return igsc_lookup(p, linear_map(), false).item<double>();
}
}  // namespace

TEST(IgscLookup, MeanOfNineBilinearSamplesInside) {
  EXPECT_NEAR(lookup_at(1.5, 1.25), 4 * 1.25 + 1.5, 1e-12);  // the mean of a linear function is its centre value
}

TEST(IgscLookup, RoiAlignBoundaryRules) {
  // At (0, 0): samples at -1 are inside [-1, size] and clamp to 0: x in {0, 0, 1}, y in {0, 0, 1}.
  EXPECT_NEAR(lookup_at(0, 0), 4.0 / 3 + 1.0 / 3, 1e-12);
  // x = -1.5: samples at -2.5 and -1.5 are beyond -1 and contribute 0 but still count; -0.5 clamps to 0.
  EXPECT_NEAR(lookup_at(-1.5, 1), (0 + 4 + 8) / 9.0, 1e-12);
  // x = 3.5: 2.5 interpolates, 3.5 (<= size) snaps to the last column, 4.5 (> size) contributes 0.
  double col = 0;
  for (int y : {0, 1, 2}) col += (4 * y + 2.5) + (4 * y + 3);
  EXPECT_NEAR(lookup_at(3.5, 1), col / 9.0, 1e-12);
}

TEST(IgscLookup, MatchesAScalarRoiAlignAtRandomPositionsInAndOutOfTheMap) {
  // torchvision's bilinear_interpolate written out per sample, against the tensor version, in float32, for
  // positions from well outside to well inside a 7 x 7 map (odd size, so no sample sits on a symmetric grid).
  torch::manual_seed(5);
  const int64_t C = 3, S = 7, N = 200;
  auto f = torch::randn({2, C, S, S});
  auto p = torch::rand({2, N, 2}) * 1.8 - 0.4;
  auto got = igsc_lookup(p, f, false);
  auto fa = f.accessor<float, 4>();
  auto pa = p.accessor<float, 3>();
  auto sample = [&](int64_t b, int64_t c, double y, double x) {
    if (y < -1.0 || y > S || x < -1.0 || x > S) return 0.0;
    y = std::max(y, 0.0);
    x = std::max(x, 0.0);
    int64_t yl = static_cast<int64_t>(y), xl = static_cast<int64_t>(x), yh, xh;
    if (yl >= S - 1) { yh = yl = S - 1; y = yl; } else yh = yl + 1;
    if (xl >= S - 1) { xh = xl = S - 1; x = xl; } else xh = xl + 1;
    double ly = y - yl, lx = x - xl;
    return (1 - ly) * (1 - lx) * fa[b][c][yl][xl] + (1 - ly) * lx * fa[b][c][yl][xh] + ly * (1 - lx) * fa[b][c][yh][xl] +
           ly * lx * fa[b][c][yh][xh];
  };
  double worst = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        double x = pa[b][n][0] * S, y = pa[b][n][1] * S, sum = 0;
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) sum += sample(b, c, y + dy, x + dx);
        worst = std::max(worst, std::abs(sum / 9 - got[b][n][c].item<double>()));
      }
  EXPECT_LT(worst, 1e-5);
}

TEST(IgscLookup, GradientsReachTheFeaturesNotThePositions) {
  auto f = linear_map().clone().requires_grad_(true);
  auto p = torch::tensor({1.5 / 4, 1.25 / 4}, torch::kFloat64).reshape({1, 1, 2}).requires_grad_(true);
  igsc_lookup(p, f, false).sum().backward();
  EXPECT_NEAR(f.grad().sum().item<double>(), 1.0, 1e-12);  // nine samples, weights summing to 1, divided by 9
  // Sample (x = 0.5, y = 0.25) puts 0.5 * 0.75 / 9 on pixel (0, 0).
  EXPECT_NEAR(f.grad()[0][0][0][0].item<double>(), 0.5 * 0.75 / 9, 1e-12);
  EXPECT_FALSE(p.grad().defined() && p.grad().abs().sum().item<double>() != 0);
}

TEST(IgscLookup, OptionalPositionGradientsMatchFiniteDifferences) {
  torch::manual_seed(3);
  auto f = torch::randn({1, 2, 8, 8}, torch::kFloat64);
  auto p = torch::tensor({0.41, 0.37, 0.63, 0.52}, torch::kFloat64).reshape({1, 2, 2}).requires_grad_(true);
  auto w = torch::randn({1, 2, 2}, torch::kFloat64);
  (igsc_lookup(p, f, true) * w).sum().backward();
  auto g = p.grad().clone();
  const double h = 1e-7;
  for (int i = 0; i < 4; ++i) {
    auto pp = p.detach().clone(), pm = p.detach().clone();
    pp.view(-1)[i] += h;
    pm.view(-1)[i] -= h;
    double fd = ((igsc_lookup(pp, f, true) * w).sum() - (igsc_lookup(pm, f, true) * w).sum()).item<double>() / (2 * h);
    EXPECT_NEAR(g.view(-1)[i].item<double>(), fd, 1e-5) << i;
  }
}

TEST(Losses, KlIsTheMeanOverLatentDimensions) {
  auto z = torch::zeros({3, 16});
  EXPECT_NEAR(kl_divergence(z, z).item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(kl_divergence(torch::ones({3, 16}), z).item<double>(), 0.5, 1e-6);
}

TEST(Losses, DiceIsSummedOverClassesWithTheReferenceSmoothing) {
  auto logits = torch::zeros({1, 2, 1, 2}, torch::kFloat64);  // p = 0.5 everywhere
  auto labels = torch::tensor({0, 1}, torch::kInt64).reshape({1, 1, 2});
  double t_sum = 2 + 4e-6;  // one-hot plus 1e-6 on all four entries
  double inter = 0.5 * t_sum, card = 2 + t_sum;
  EXPECT_NEAR(dice_loss(logits, labels).item<double>(), 1 - 2 * inter / (card + 1e-6), 1e-12);
  double ce = std::log(2.0);
  EXPECT_NEAR(dense_loss(logits, labels).item<double>(), 1 - 2 * inter / (card + 1e-6) + ce, 1e-12);
}

TEST(Losses, MeanDiceOfArgmaxLabelsAsMedpy) {
  auto labels = torch::tensor({0, 1, 1, 2}, torch::kInt64).reshape({1, 2, 2});
  auto logits = torch::zeros({1, 3, 2, 2});
  logits[0][1][0][1] = 5;  // predicted lungs: (0, 1) and (1, 0): one of two right
  logits[0][1][1][0] = 5;
  logits[0][0][0][0] = 5;
  logits[0][0][1][1] = 5;  // heart predicted nowhere: Dice 0
  EXPECT_NEAR(mean_dice(logits, labels, 3).item<double>(), (1.0 + 0.0) / 2, 1e-12);
  auto perfect = torch::nn::functional::one_hot(labels, 3).permute({0, 3, 1, 2}).to(torch::kFloat32);
  EXPECT_NEAR(mean_dice(perfect, labels, 3).item<double>(), 1.0, 1e-12);
}

TEST(Losses, HcdGradientMatchesFiniteDifferences) {
  torch::manual_seed(4);
  auto dmaps = torch::rand({2, 2, 12, 12}, torch::kFloat64);
  auto target = torch::rand({2, 5, 2}, torch::kFloat64);
  auto channel = torch::tensor({0, 0, 0, 1, 1}, torch::kInt64);
  auto pred = (torch::rand({2, 5, 2}, torch::kFloat64) * 0.8 + 0.1).requires_grad_(true);
  hcd(pred, target, dmaps, channel, 0.025).backward();
  auto g = pred.grad().clone();
  const double h = 1e-7;
  for (int i = 0; i < pred.numel(); ++i) {
    auto pp = pred.detach().clone(), pm = pred.detach().clone();
    pp.view(-1)[i] += h;
    pm.view(-1)[i] -= h;
    double fd = (hcd(pp, target, dmaps, channel, 0.025) - hcd(pm, target, dmaps, channel, 0.025)).item<double>() / (2 * h);
    EXPECT_NEAR(g.view(-1)[i].item<double>(), fd, 1e-6) << i;
  }
  // The distance term samples channel 1 for the last two nodes: a map of zeros there removes their S term.
  auto d2 = dmaps.clone();
  d2.select(1, 1).zero_();
  auto pd = pred.detach();
  double with = distance_term(pd, dmaps, channel).item<double>(), without = distance_term(pd, d2, channel).item<double>();
  EXPECT_LT(without, with);
}

TEST(Losses, HcdSamplesWithAlignCornersOnTheClampedGrid) {
  // S = x-coordinate ramp over 11 pixels: P = 0 hits pixel 0's centre, P = 1 pixel 10's; outside clamps.
  auto s = torch::arange(11, torch::kFloat64).repeat({11, 1}).reshape({1, 1, 11, 11});
  auto ch = torch::tensor({0}, torch::kInt64);
  auto at = [&](double x) { return distance_term(torch::tensor({x, 0.5}, torch::kFloat64).reshape({1, 1, 2}), s, ch).item<double>(); };
  EXPECT_NEAR(at(0.0), 0.0, 1e-12);
  EXPECT_NEAR(at(1.0), 10.0, 1e-12);
  EXPECT_NEAR(at(0.25), 2.5, 1e-12);
  EXPECT_NEAR(at(1.7), 10.0, 1e-12);
}

namespace {
bool inside(double px, double py, const std::vector<std::array<double, 2>>& v) {
  bool c = false;
  for (size_t i = 0, j = v.size() - 1; i < v.size(); j = i++)
    if (((v[i][1] > py) != (v[j][1] > py)) && (px < (v[j][0] - v[i][0]) * (py - v[i][1]) / (v[j][1] - v[i][1]) + v[i][0]))
      c = !c;
  return c;
}
double seg_dist(double px, double py, std::array<double, 2> a, std::array<double, 2> b) {
  double ex = b[0] - a[0], ey = b[1] - a[1];
  double t = std::clamp(((px - a[0]) * ex + (py - a[1]) * ey) / (ex * ex + ey * ey), 0.0, 1.0);
  return std::hypot(px - a[0] - t * ex, py - a[1] - t * ey);
}
}  // namespace

TEST(Rasterizer, MatchesAnExactFillAwayFromEdges) {
  std::vector<std::array<double, 2>> poly = {{5.3, 4.1}, {25.7, 6.2}, {22.4, 20.9}, {14.2, 12.6}, {6.1, 24.4}};
  auto v = torch::zeros({1, 5, 2}, torch::kFloat64);
  for (int i = 0; i < 5; ++i) {
    v[0][i][0] = poly[i][0];
    v[0][i][1] = poly[i][1];
  }
  auto out = soft_polygon(v, 32, 0.1, 100);  // a small chunk to cross chunk borders
  int checked = 0;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x) {
      double d = 1e9;
      for (size_t i = 0; i < poly.size(); ++i) d = std::min(d, seg_dist(x, y, poly[i], poly[(i + 1) % poly.size()]));
      double o = out[0][y][x].item<double>();
      if (d > 1.5) {
        EXPECT_NEAR(o, inside(x, y, poly) ? 1.0 : 0.0, 1e-9) << x << "," << y;
        ++checked;
      } else {
        double s = inside(x, y, poly) ? 1 : -1;
        EXPECT_NEAR(o, 1 / (1 + std::exp(-s * d * d / 0.1)), 1e-9) << x << "," << y;
      }
    }
  EXPECT_GT(checked, 600);
}

TEST(Rasterizer, GradientMatchesFiniteDifferences) {
  auto v = torch::tensor({4.3, 3.2, 12.6, 4.9, 10.2, 13.7, 3.1, 11.4}, torch::kFloat64).reshape({1, 4, 2}).requires_grad_(true);
  torch::manual_seed(5);
  auto w = torch::randn({1, 16, 16}, torch::kFloat64);
  (soft_polygon(v, 16, 1.0, 37) * w).sum().backward();  // tau 1 keeps the sigmoid smooth for differences
  auto g = v.grad().clone();
  const double h = 1e-6;
  for (int i = 0; i < 8; ++i) {
    auto vp = v.detach().clone(), vm = v.detach().clone();
    vp.view(-1)[i] += h;
    vm.view(-1)[i] -= h;
    double fd = ((soft_polygon(vp, 16, 1.0, 37) * w).sum() - (soft_polygon(vm, 16, 1.0, 37) * w).sum()).item<double>() / (2 * h);
    EXPECT_NEAR(g.view(-1)[i].item<double>(), fd, 1e-5 * std::max(1.0, std::abs(fd))) << i;
  }
}
