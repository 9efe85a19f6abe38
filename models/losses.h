// The losses and validation criteria of spec §4-§5. Stateless functions; thread-safe.
#pragma once

#include <ATen/core/Tensor.h>

namespace orch::models {

// F.mse_loss: mean over all elements.
at::Tensor point_mse(const at::Tensor& pred, const at::Tensor& target);

// KL = -1/2 * mean_batch(mean_latent(1 + logvar - mu^2 - exp(logvar))): the mean over latent dimensions.
at::Tensor kl_divergence(const at::Tensor& mu, const at::Tensor& logvar);

// Distance-map term of HCD: mean over batch and nodes of S_c(n) sampled at the predicted positions with
// grid_sample (bilinear, zeros, align_corners) on clamp(2P - 1, -1, 1). dmaps (B, C, H, W); channel (N) int64.
at::Tensor distance_term(const at::Tensor& pred, const at::Tensor& dmaps, const at::Tensor& channel);

// HCD(P̂, P, S) = mse(P̂, P) + beta * distance_term.
at::Tensor hcd(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& dmaps, const at::Tensor& channel,
               double beta);

// The reference's DiceLoss: softmax over channels, one-hot target + 1e-6 everywhere, intersection and
// cardinality summed over all classes together per sample, loss = mean_batch(1 - 2I / (C + 1e-6)).
// With `softmax` false the input is used as probabilities as it is.
at::Tensor dice_loss(const at::Tensor& logits, const at::Tensor& labels, bool softmax = true);

// Dice + cross-entropy (mean, no class weights). With `probabilities` true the input holds probabilities:
// no softmax for Dice, and CE on their log.
at::Tensor dense_loss(const at::Tensor& logits, const at::Tensor& labels, bool probabilities = false);

// medpy's dc per image on argmax labels, averaged over the foreground classes 1..C-1 and the batch
// (the UNet's validation criterion: (Dice_lungs + Dice_heart) / 2 for LH, Dice_lungs for L).
at::Tensor mean_dice(const at::Tensor& logits, const at::Tensor& labels, int num_classes);

}  // namespace orch::models
