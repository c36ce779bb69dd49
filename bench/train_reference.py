#!/usr/bin/python3
"""The moeforge DRAGAN training step in Python PyTorch: the same generator,
discriminator, losses, gradient penalty and batch as trainer/gan.cpp, written the way a
PyTorch user would, for bench/train_compare.sh. Prints one JSON line like
moeforge-train-bench. Run with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(i, o, k, s=1):
    return nn.Conv2d(i, o, k, stride=s, padding=1 if k == 4 else k // 2)


class GenBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.b1, self.c2, self.b2 = conv(c, c, 3), nn.BatchNorm2d(c), conv(c, c, 3), nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.b2(self.c2(F.relu(self.b1(self.c1(x)))))


class UpBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv, self.bn = conv(c, 4 * c, 3), nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(self.bn(F.pixel_shuffle(self.conv(x), 2)))


class Generator(nn.Module):
    def __init__(self, res, tags, z_dim, ch, blocks):
        super().__init__()
        self.ch = ch
        self.fc = nn.Linear(z_dim + tags, ch * 16 * 16)
        self.bn0 = nn.BatchNorm2d(ch)
        self.blocks = nn.ModuleList(GenBlock(ch) for _ in range(blocks))
        self.post_conv, self.post_bn = conv(ch, ch, 3), nn.BatchNorm2d(ch)
        self.ups = nn.ModuleList(UpBlock(ch) for _ in range({32: 1, 64: 2, 128: 3}[res]))
        self.out_conv = conv(ch, 3, 9)

    def forward(self, z, tags):
        h = F.relu(self.bn0(self.fc(torch.cat([z, tags], 1)).view(z.size(0), self.ch, 16, 16)))
        skip = h
        for b in self.blocks:
            h = b(h)
        h = F.relu(self.post_bn(self.post_conv(h))) + skip
        for u in self.ups:
            h = u(h)
        return torch.tanh(self.out_conv(h))


class DiscBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.c2 = conv(c, c, 3), conv(c, c, 3)

    def forward(self, x):
        return F.leaky_relu(x + self.c2(F.leaky_relu(self.c1(x), 0.2)), 0.2)


class DiscStage(nn.Module):
    def __init__(self, i, o, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(DiscBlock(i) for _ in range(blocks))
        self.down = conv(i, o, 4, 2)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return F.leaky_relu(self.down(x), 0.2)


class Discriminator(nn.Module):
    def __init__(self, res, tags, ch0, blocks):
        super().__init__()
        self.in_conv = conv(3, ch0, 4, 2)
        stages, ch = [], ch0
        for _ in range({32: 1, 64: 2, 128: 3}[res] + 1):
            out = min(ch * 2, 16 * ch0)
            stages.append(DiscStage(ch, out, blocks))
            ch = out
        self.stages = nn.ModuleList(stages)
        self.adv = nn.Linear(ch * 16, 1)
        self.cls = nn.Linear(ch * 16, tags)

    def forward(self, x):
        h = F.leaky_relu(self.in_conv(x), 0.2)
        for s in self.stages:
            h = s(h)
        h = h.flatten(1)
        return self.adv(h).squeeze(1), self.cls(h)


def gradient_penalty(d, x, x_p):
    a = torch.rand(x.size(0), 1, 1, 1, device=x.device)
    x_hat = (x + a * (x_p - x)).detach().requires_grad_(True)
    logit, _ = d(x_hat)
    grad, = torch.autograd.grad(logit.sum(), x_hat, create_graph=True)
    return ((grad.reshape(x.size(0), -1).norm(2, dim=1) - 1) ** 2).mean()


def train_step(g, d, og, od, real, real_tags, z, fake_tags, l_adv, l_gp):
    bce = F.binary_cross_entropy_with_logits
    fake = g(z, fake_tags)
    r_logit, r_tags = d(real)
    f_logit, _ = d(fake.detach())
    x_p = real + 0.5 * real.std() * torch.rand_like(real)
    gp = gradient_penalty(d, real, x_p)
    d_loss = l_adv * (bce(r_logit, torch.ones_like(r_logit)) + bce(f_logit, torch.zeros_like(f_logit))) \
        + bce(r_tags, real_tags) * real_tags.size(1) + l_gp * gp
    od.zero_grad()
    d_loss.backward()
    od.step()
    f_logit, f_tags = d(fake)
    g_loss = l_adv * bce(f_logit, torch.ones_like(f_logit)) + bce(f_tags, fake_tags) * fake_tags.size(1)
    og.zero_grad()
    g_loss.backward()
    og.step()
    return d_loss.item(), g_loss.item()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--g-channels", type=int, default=64)
    p.add_argument("--g-blocks", type=int, default=16)
    p.add_argument("--d-channels", type=int, default=32)
    p.add_argument("--d-blocks", type=int, default=2)
    p.add_argument("--memory-format", default="contiguous", choices=["contiguous", "channels_last"])
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()
    threads = a.threads or os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tags_n, z_dim = 34, 128
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = Generator(a.resolution, tags_n, z_dim, a.g_channels, a.g_blocks).to(dev)
    d = Discriminator(a.resolution, tags_n, a.d_channels, a.d_blocks).to(dev)
    real = (torch.rand(a.batch, 3, a.resolution, a.resolution) * 2 - 1).to(dev)
    if a.memory_format == "channels_last":
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
        real = real.contiguous(memory_format=torch.channels_last)
    og = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    tags = (torch.rand(a.batch, tags_n) > 0.8).float().to(dev)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16 and dev.type == "cpu"):
            return train_step(g, d, og, od, real, tags, torch.randn(a.batch, z_dim, device=dev), tags,
                              float(tags_n), 0.5)

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        dl, gl = step()
    s = time.perf_counter() - t0
    print(json.dumps({"impl": "python", "resolution": a.resolution, "batch": a.batch, "threads": threads,
                      "g_blocks": a.g_blocks, "device": dev.type, "memory_format": a.memory_format, "bf16": a.bf16,
                      "steps": a.steps, "step_s": s / a.steps, "img_per_s": a.batch * a.steps / s,
                      "d_loss": dl, "g_loss": gl}))


if __name__ == "__main__":
    main()
