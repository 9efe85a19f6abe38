#!/usr/bin/python3
"""PyTorch eager implementation of "Ours" (the joint dense-graph network, spec §3.7, trained with 1/2 sum of
HCD over the seven predictions + 1e-5 KL), written from the spec like models/ (dense ChebConv, roi_align-style
lookups by gather), to time one training step against the C++ build on the same machine.
Usage: pytorch_ours.py SIZE BATCH THREADS STEPS [DEVICE [PRECISION]]   (Debian's python3-torch 1.13, the same
libtorch; on a GPU machine its own PyTorch). DEVICE cpu (default) or cuda; PRECISION fp32 (default: TF32 off),
tf32 or bf16 (autocast), as training.precision. On CUDA each step is synchronised before its time is taken."""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SIZE, BATCH, THREADS, STEPS = (int(a) for a in sys.argv[1:5])
DEVICE = sys.argv[5] if len(sys.argv) > 5 else "cpu"
PRECISION = sys.argv[6] if len(sys.argv) > 6 else "fp32"
torch.set_num_threads(THREADS)
if DEVICE == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = PRECISION != "fp32"
torch.manual_seed(0)
NCLS, COUNTS = 3, [44, 50, 26]


def ring(counts):
    n = sum(counts)
    a = torch.zeros(n, n)
    off = 0
    for c in counts:
        for i in range(c):
            a[off + i, off + (i - 1) % c] = a[off + i, off + (i + 1) % c] = 1
        off += c
    return -0.5 * a


def unpool(counts):
    coarse = [(c + 1) // 2 for c in counts]
    u = torch.zeros(sum(counts), sum(coarse))
    fo = co = 0
    for n, m in zip(counts, coarse):
        for i in range(n):
            if i % 2 == 0:
                u[fo + i, co + i // 2] = 1
            elif (i + 1) // 2 < m:
                u[fo + i, co + (i - 1) // 2] = u[fo + i, co + (i + 1) // 2] = 0.5
            else:
                u[fo + i, co + m - 1] = 1
        fo += n
        co += m
    return u


L1, L2, U = ring(COUNTS), ring([(c + 1) // 2 for c in COUNTS]), unpool(COUNTS)
N2 = L2.shape[0]


class RB(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.bn1, self.c1 = nn.BatchNorm2d(i, track_running_stats=False), nn.Conv2d(i, o, 3, padding=1)
        self.bn2, self.c2 = nn.BatchNorm2d(o, track_running_stats=False), nn.Conv2d(o, o, 3, padding=1)
        self.skip = None if i == o else nn.Sequential(nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o, track_running_stats=False))

    def forward(self, x):
        m = self.c2(F.relu(self.bn2(self.c1(F.relu(self.bn1(x))))))
        return F.relu(m + (x if self.skip is None else self.skip(x)))


CH = [8, 16, 32, 64, 128, 128]


class Encoder(nn.Module):
    def __init__(self, cin, fuse):
        super().__init__()
        ins = [cin] + [CH[k - 1] + ((CH[0] + CH[1]) if (fuse and k == 1) else (CH[k] if fuse else 0)) for k in range(1, 6)]
        self.fuse, self.blocks = fuse, nn.ModuleList(RB(i, o) for i, o in zip(ins, CH))

    def forward(self, x, u=None):
        out = [self.blocks[0](x)]
        for k in range(1, 6):
            t = torch.cat([out[-1], u[0]], 1) if self.fuse and k == 1 else out[-1]
            t = F.max_pool2d(t, 2)
            if self.fuse:
                t = torch.cat([t, u[k]], 1)
            out.append(self.blocks[k](t))
        return out


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = Encoder(1, False)
        self.dec = nn.ModuleList(RB(a + b, b) for a, b in [(128, 128), (128, 64), (64, 32), (32, 16), (16, 8)])
        self.head = nn.Conv2d(8, NCLS, 1)

    def forward(self, x):
        e = self.enc(x)
        cur, ups = e[5], []
        for i, k in enumerate(range(4, -1, -1)):
            cur = self.dec[i](torch.cat([F.interpolate(cur, size=e[k].shape[2:], mode="bilinear", align_corners=True), e[k]], 1))
            ups.append(cur)
        return [ups[4], ups[3], ups[2], ups[1], ups[0], e[5]], self.head(cur)


class Cheb(nn.Module):
    def __init__(self, i, o, k, bias=True):
        super().__init__()
        b = (6 / (i + o)) ** 0.5
        self.w = nn.Parameter(torch.empty(k, i, o).uniform_(-b, b))
        self.b = nn.Parameter(torch.empty(o).normal_(0, 0.1)) if bias else None

    def forward(self, x, lap):
        t0, out = x, x @ self.w[0]
        if self.w.shape[0] > 1:
            t1 = lap @ x
            out = out + t1 @ self.w[1]
            for k in range(2, self.w.shape[0]):
                t2 = 2 * (lap @ t1) - t0
                out, t0, t1 = out + t2 @ self.w[k], t1, t2
        return out if self.b is None else out + self.b


def lookup(p, f):
    b, c, h, w = f.shape
    n = p.shape[1]
    p = p.detach() * w
    off = torch.tensor([-1.0, 0.0, 1.0], device=p.device)
    sx = (p[..., 0:1] + off).unsqueeze(2).expand(b, n, 3, 3)
    sy = (p[..., 1:2] + off).unsqueeze(3).expand(b, n, 3, 3)
    valid = (sy >= -1) & (sy <= h) & (sx >= -1) & (sx <= w)
    y, x = sy.clamp(min=0), sx.clamp(min=0)
    yl, xl = y.floor().clamp(max=h - 1), x.floor().clamp(max=w - 1)
    y, x = torch.where(yl >= h - 1, yl, y), torch.where(xl >= w - 1, xl, x)
    yh, xh = (yl + 1).clamp(max=h - 1), (xl + 1).clamp(max=w - 1)
    ly, lx = y - yl, x - xl
    flat = f.reshape(b, c, h * w)

    def g(yy, xx):
        return flat.gather(2, (yy * w + xx).long().reshape(b, 1, -1).expand(b, c, n * 9)).reshape(b, c, n, 3, 3)

    v = (g(yl, xl) * ((1 - ly) * (1 - lx) * valid).unsqueeze(1) + g(yl, xh) * ((1 - ly) * lx * valid).unsqueeze(1)
         + g(yh, xl) * (ly * (1 - lx) * valid).unsqueeze(1) + g(yh, xh) * (ly * lx * valid).unsqueeze(1))
    return (v.sum((3, 4)) / 9).permute(0, 2, 1)


class Ours(nn.Module):
    def __init__(self):
        super().__init__()
        self.unet = UNet()
        for q in self.unet.parameters():
            q.requires_grad = False
        self.enc = Encoder(1 + NCLS, True)
        flat = 128 * (SIZE // 32) ** 2
        self.mu, self.logvar = nn.Linear(flat, 16), nn.Linear(flat, 16)
        self.lin = nn.Linear(16, 16 * N2)
        nn.init.normal_(self.lin.weight, 0, 0.1)
        feat, skip = [16, 16, 32, 32, 32, 32], [128, 128, 64, 32, 16, 8]
        ins = [16] + [feat[i] + skip[i] + 2 for i in range(5)]
        self.ups = nn.ModuleList(Cheb(i, o, 6) for i, o in zip(ins, feat))
        self.heads = nn.ModuleList([Cheb(o, 2, 1, False) for o in feat] + [Cheb(feat[5] + skip[5] + 2, 2, 1, False)])

    def forward(self, img):
        with torch.no_grad():
            u, logits = self.unet(img)
        e = self.enc(torch.cat([img, logits], 1), u)
        f = e[5].flatten(1)
        mu, logvar = self.mu(f), self.logvar(f)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        x = F.relu(self.lin(z)).reshape(-1, N2, 16)
        pos = []
        for i in range(6):
            lap = L2 if i < 3 else L1
            h = self.ups[i](x, lap)
            x = F.relu(F.layer_norm(h, (h.shape[-1],)))
            p = self.heads[i](x, lap)
            x = torch.cat([x, lookup(p, e[5 - i]), p], 2)
            pos.append(p)
            if i == 2:
                x = U @ x
        pos.append(self.heads[6](x, L1))
        return pos[::-1], mu, logvar


def hcd(pred, target, s, chan):
    grid = (2 * pred - 1).clamp(-1, 1)
    vals = []
    for c in range(s.shape[1]):
        idx = (chan == c).nonzero().flatten()
        vals.append(F.grid_sample(s[:, c:c + 1], grid[:, idx].unsqueeze(1), mode="bilinear", padding_mode="zeros",
                                  align_corners=True).reshape(pred.shape[0], -1))
    return F.mse_loss(pred, target) + 0.025 * torch.cat(vals, 1).mean()


D = torch.zeros(N2, 120)
off_f = off_c = 0
for n in COUNTS:
    for j in range((n + 1) // 2):
        D[off_c + j, off_f + 2 * j] = D[off_c + j, off_f + min(2 * j + 1, n - 1)] = 0.5 if 2 * j + 1 < n else 1
    off_f += n
    off_c += (n + 1) // 2
CH_F = torch.tensor([0] * 94 + [1] * 26)
CH_C = torch.tensor([0] * 47 + [1] * 13)

dev = torch.device(DEVICE)
L1, L2, U, D, CH_F, CH_C = (t.to(dev) for t in (L1, L2, U, D, CH_F, CH_C))
net = Ours().to(dev)
opt = torch.optim.Adam([q for q in net.parameters() if q.requires_grad], lr=1e-4, weight_decay=1e-5)
img = torch.rand(BATCH, 1, SIZE, SIZE, device=dev)
s = torch.rand(BATCH, 2, SIZE, SIZE, device=dev)
lm = torch.rand(BATCH, 120, 2, device=dev) * 0.6 + 0.2
sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
times = []
for step in range(STEPS + 3):
    sync()
    t0 = time.perf_counter()
    opt.zero_grad()
    with torch.autocast(device_type=DEVICE, dtype=torch.bfloat16, enabled=PRECISION == "bf16"):
        pos, mu, logvar = net(img)
        loss = 0
        for k, p in enumerate(pos):
            coarse = k >= 4
            loss = loss + hcd(p.float(), D @ lm if coarse else lm, s, CH_C if coarse else CH_F)
        loss = 0.5 * loss - 1e-5 * 0.5 * torch.mean(torch.mean(1 + logvar.float() - mu.float() ** 2 - logvar.float().exp(), 1))
    loss.backward()
    opt.step()
    sync()
    if step >= 3:  # three warm-up steps (cuDNN and the allocator settle)
        times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(f"pytorch ours      size {SIZE:4d} batch {BATCH} threads {THREADS} {DEVICE} {PRECISION}  step {times[len(times) // 2]:9.1f} ms")
