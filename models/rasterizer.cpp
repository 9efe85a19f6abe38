#include "models/rasterizer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace orch::models {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

constexpr double kMargin = 4.0;  // sigmoid(-16 / 0.1) is 0 in float32

struct Region {
  int64_t x0, y0, w, h;
};

Region region_of(const torch::Tensor& v, int64_t size) {
  auto mn = std::get<0>(v.detach().reshape({-1, 2}).min(0)).to(torch::kCPU);
  auto mx = std::get<0>(v.detach().reshape({-1, 2}).max(0)).to(torch::kCPU);
  auto lo = [&](double c) { return std::clamp<int64_t>(static_cast<int64_t>(std::floor(c - kMargin)), 0, size); };
  auto hi = [&](double c) { return std::clamp<int64_t>(static_cast<int64_t>(std::ceil(c + kMargin)) + 1, 0, size); };
  int64_t x0 = lo(mn[0].item<double>()), x1 = hi(mx[0].item<double>());
  int64_t y0 = lo(mn[1].item<double>()), y1 = hi(mx[1].item<double>());
  return {x0, y0, std::max<int64_t>(0, x1 - x0), std::max<int64_t>(0, y1 - y0)};
}

// Pixel centres of region pixels [start, start + m) in row-major order: (m, 2) as (x, y).
torch::Tensor pixel_chunk(const Region& r, int64_t start, int64_t m, const torch::TensorOptions& opt) {
  auto idx = torch::arange(start, start + m, opt.dtype(torch::kInt64));
  auto x = (idx % r.w + r.x0).to(opt.dtype());
  auto y = (idx.div(r.w, "floor") + r.y0).to(opt.dtype());
  return torch::stack({x, y}, 1);
}

class SoftPolygonFn : public torch::autograd::Function<SoftPolygonFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor v, int64_t size, double tau, int64_t chunk) {
    const int64_t B = v.size(0), n = v.size(1);
    auto opt = v.options();
    torch::Tensor out = torch::zeros({B, size, size}, opt);
    Region r = region_of(v, size);
    const int64_t total = r.w * r.h;
    torch::Tensor argmin = torch::zeros({B, total}, opt.dtype(torch::kInt32));
    torch::Tensor sign = torch::zeros({B, total}, opt.dtype(torch::kInt8));
    torch::Tensor vals = torch::zeros({B, total}, opt);
    torch::Tensor a = v, b = v.roll(-1, 1);  // edges (v_j, v_j+1), closed
    torch::Tensor e = b - a;                  // (B, n, 2)
    torch::Tensor ee = (e * e).sum(-1);       // (B, n)
    torch::Tensor ee_safe = torch::where(ee > 0, ee, torch::ones_like(ee));
    for (int64_t start = 0; start < total; start += chunk) {
      int64_t m = std::min(chunk, total - start);
      torch::Tensor p = pixel_chunk(r, start, m, opt);                       // (m, 2)
      torch::Tensor diff = p.view({1, m, 1, 2}) - a.view({B, 1, n, 2});       // (B, m, n, 2)
      torch::Tensor t = ((diff * e.view({B, 1, n, 2})).sum(-1) / ee_safe.view({B, 1, n})).clamp(0, 1);
      t = torch::where(ee.view({B, 1, n}) > 0, t, torch::zeros_like(t));
      torch::Tensor res = diff - t.unsqueeze(-1) * e.view({B, 1, n, 2});
      torch::Tensor d2 = (res * res).sum(-1);                                 // (B, m, n)
      auto [d2min, arg] = d2.min(2);
      // Even-odd: edges crossing the horizontal line through p to the right of p.
      torch::Tensor px = p.select(1, 0).view({1, m, 1}), py = p.select(1, 1).view({1, m, 1});
      torch::Tensor ax = a.select(2, 0).view({B, 1, n}), ay = a.select(2, 1).view({B, 1, n});
      torch::Tensor bx = b.select(2, 0).view({B, 1, n}), by = b.select(2, 1).view({B, 1, n});
      torch::Tensor straddle = (ay > py) != (by > py);
      torch::Tensor dy = torch::where(straddle, by - ay, torch::ones_like(by - ay));
      torch::Tensor cross = straddle & (px < (bx - ax) * (py - ay) / dy + ax);
      torch::Tensor inside = cross.sum(2).remainder(2) == 1;                   // (B, m)
      torch::Tensor s = torch::where(inside, torch::ones_like(d2min), -torch::ones_like(d2min));
      vals.narrow(1, start, m).copy_(torch::sigmoid(s * d2min / tau));
      argmin.narrow(1, start, m).copy_(arg.to(torch::kInt32));
      sign.narrow(1, start, m).copy_(inside.to(torch::kInt8));
    }
    if (total > 0)
      out.narrow(1, r.y0, r.h).narrow(2, r.x0, r.w).copy_(vals.view({B, r.h, r.w}));
    ctx->save_for_backward({v, argmin, sign, vals});
    ctx->saved_data["size"] = size;
    ctx->saved_data["tau"] = tau;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["x0"] = r.x0;
    ctx->saved_data["y0"] = r.y0;
    ctx->saved_data["w"] = r.w;
    ctx->saved_data["h"] = r.h;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    torch::Tensor v = saved[0], argmin = saved[1], sign = saved[2], vals = saved[3];
    const double tau = ctx->saved_data["tau"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    Region r{ctx->saved_data["x0"].toInt(), ctx->saved_data["y0"].toInt(), ctx->saved_data["w"].toInt(),
             ctx->saved_data["h"].toInt()};
    const int64_t B = v.size(0), n = v.size(1), total = r.w * r.h;
    torch::Tensor grad_v = torch::zeros_like(v);
    if (total == 0) return {grad_v, torch::Tensor(), torch::Tensor(), torch::Tensor()};
    torch::Tensor go = grad_outputs[0].narrow(1, r.y0, r.h).narrow(2, r.x0, r.w).reshape({B, total});
    auto opt = v.options();
    torch::Tensor flat_grad = grad_v.view({B * n, 2});
    torch::Tensor batch_off = (torch::arange(B, opt.dtype(torch::kInt64)) * n).view({B, 1});
    for (int64_t start = 0; start < total; start += chunk) {
      int64_t m = std::min(chunk, total - start);
      torch::Tensor p = pixel_chunk(r, start, m, opt);                     // (m, 2)
      torch::Tensor j = argmin.narrow(1, start, m).to(torch::kInt64);      // (B, m)
      torch::Tensor j1 = (j + 1).remainder(n);
      torch::Tensor aj = v.gather(1, j.unsqueeze(-1).expand({B, m, 2}));   // (B, m, 2)
      torch::Tensor bj = v.gather(1, j1.unsqueeze(-1).expand({B, m, 2}));
      torch::Tensor e = bj - aj, diff = p.unsqueeze(0) - aj;
      torch::Tensor ee = (e * e).sum(-1);
      torch::Tensor t = torch::where(ee > 0, ((diff * e).sum(-1) / torch::where(ee > 0, ee, torch::ones_like(ee))).clamp(0, 1),
                                     torch::zeros_like(ee));
      torch::Tensor res = diff - t.unsqueeze(-1) * e;                       // p - closest point
      torch::Tensor o = vals.narrow(1, start, m);
      torch::Tensor s = sign.narrow(1, start, m).to(opt.dtype()) * 2 - 1;
      torch::Tensor g = go.narrow(1, start, m) * o * (1 - o) * s / tau;    // d out / d d2, times upstream
      // d d2 / d a = -2 (1 - t) res, d d2 / d b = -2 t res (t fixed: it minimises d2, or is clamped).
      torch::Tensor ga = (-2 * (1 - t) * g).unsqueeze(-1) * res, gb = (-2 * t * g).unsqueeze(-1) * res;
      flat_grad.index_add_(0, (j + batch_off).reshape(-1), ga.reshape({-1, 2}));
      flat_grad.index_add_(0, (j1 + batch_off).reshape(-1), gb.reshape({-1, 2}));
    }
    return {grad_v, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

at::Tensor soft_polygon(const at::Tensor& vertices, int64_t size, double tau, int64_t chunk) {
  return SoftPolygonFn::apply(vertices, size, tau, chunk);
}

}  // namespace orch::models
