// GroupNorm followed by SiLU, one image at a time: the loops, compiled once per instruction set
// like kernels.h (included from it, inside its namespace). Plain loops over the channels of a
// pixel, which the compiler vectorises with that file's instruction set.
//
//   forward   y = silu(a),  a = w * x_hat + b,  x_hat = (x - mean_g) * rstd_g
//   backward  ga = dy * silu'(a);  dw += sum ga * x_hat;  db += sum ga;
//             dx = rstd_g * (gh - mean_g(gh) - x_hat * mean_g(gh * x_hat)),  gh = ga * w
// where _g is over the pixels and channels of the group, as nn/norm.py. SiLU uses the same
// rational tanh as nn/activations.py (Eigen's, multiplies and one divide, max error ~2e-6).

// The channel sums of one image's x and of (x - its channel's group mean)^2 give the group
// statistics: mean[c] and rstd[c] per channel (equal within a group).
inline void group_stats(const float* x, int pixels, int channels, int groups, float eps, float* sum,
                        float* mean, float* rstd) {
  const int per_group = channels / groups;
  for (int c = 0; c < channels; ++c) sum[c] = 0.0f;
  for (int p = 0; p < pixels; ++p) {
    const float* xp = x + int64_t(p) * channels;
    for (int c = 0; c < channels; ++c) sum[c] += xp[c];
  }
  const float count = float(pixels) * per_group;
  for (int g = 0; g < groups; ++g) {
    float total = 0.0f;
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) total += sum[c];
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) mean[c] = total / count;
  }
  // Second pass about the mean: the variance of a sum of squares minus a squared sum loses
  // digits when the mean is large against the spread.
  for (int c = 0; c < channels; ++c) sum[c] = 0.0f;
  for (int p = 0; p < pixels; ++p) {
    const float* xp = x + int64_t(p) * channels;
    for (int c = 0; c < channels; ++c) {
      const float d = xp[c] - mean[c];
      sum[c] += d * d;
    }
  }
  for (int g = 0; g < groups; ++g) {
    float total = 0.0f;
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) total += sum[c];
    const float r = 1.0f / std::sqrt(total / count + eps);
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) rstd[c] = r;
  }
}

// sigmoid(a) = 0.5 + 0.5 tanh(a / 2), tanh as nn/activations.py.
inline float sigmoid(float a) {
  float x = 0.5f * a;
  x = x < -7.90531110763549805f ? -7.90531110763549805f : (x > 7.90531110763549805f ? 7.90531110763549805f : x);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return 0.5f + 0.5f * (x * p / q);
}

// scratch: 3 * channels floats.
inline void norm_silu_forward_image(const float* x, const float* w, const float* b, int pixels, int channels,
                                    int groups, float eps, float* y, float* scratch) {
  float *sum = scratch, *mean = scratch + channels, *rstd = scratch + 2 * channels;
  group_stats(x, pixels, channels, groups, eps, sum, mean, rstd);
  // a = scale * x + shift per channel
  for (int c = 0; c < channels; ++c) {
    const float scale = w[c] * rstd[c];
    sum[c] = b[c] - scale * mean[c];  // shift
    mean[c] = scale;
  }
  for (int p = 0; p < pixels; ++p) {
    const float* xp = x + int64_t(p) * channels;
    float* yp = y + int64_t(p) * channels;
    for (int c = 0; c < channels; ++c) {
      const float a = mean[c] * xp[c] + sum[c];
      yp[c] = a * sigmoid(a);
    }
  }
}

// dw, db: running sums (channels each); scratch: 5 * channels floats.
inline void norm_silu_backward_image(const float* x, const float* w, const float* b, const float* dy, int pixels,
                                     int channels, int groups, float eps, float* dx, float* dw, float* db,
                                     float* scratch) {
  float *sum = scratch, *mean = scratch + channels, *rstd = scratch + 2 * channels;
  float *sum_gh = scratch + 3 * channels, *sum_gh_xhat = scratch + 4 * channels;
  group_stats(x, pixels, channels, groups, eps, sum, mean, rstd);
  for (int c = 0; c < channels; ++c) sum_gh[c] = sum_gh_xhat[c] = 0.0f;
  // First pass: gh = dy * silu'(a) * w, kept in dx; the sums for dw, db and the group means.
  for (int p = 0; p < pixels; ++p) {
    const float* xp = x + int64_t(p) * channels;
    const float* gp = dy + int64_t(p) * channels;
    float* dxp = dx + int64_t(p) * channels;
    for (int c = 0; c < channels; ++c) {
      const float x_hat = (xp[c] - mean[c]) * rstd[c];
      const float a = w[c] * x_hat + b[c];
      const float s = sigmoid(a);
      const float ga = gp[c] * (s + a * s * (1.0f - s));  // silu'(a) = s + silu(a) (1 - s)
      dw[c] += ga * x_hat;
      db[c] += ga;
      const float gh = ga * w[c];
      dxp[c] = gh;
      sum_gh[c] += gh;
      sum_gh_xhat[c] += gh * x_hat;
    }
  }
  const int per_group = channels / groups;
  const float count = float(pixels) * per_group;
  for (int g = 0; g < groups; ++g) {
    float m1 = 0.0f, m2 = 0.0f;
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) m1 += sum_gh[c], m2 += sum_gh_xhat[c];
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) sum_gh[c] = m1 / count, sum_gh_xhat[c] = m2 / count;
  }
  // Second pass: dx = rstd * (gh - mean(gh) - x_hat * mean(gh * x_hat)).
  for (int p = 0; p < pixels; ++p) {
    const float* xp = x + int64_t(p) * channels;
    float* dxp = dx + int64_t(p) * channels;
    for (int c = 0; c < channels; ++c) {
      const float x_hat = (xp[c] - mean[c]) * rstd[c];
      dxp[c] = rstd[c] * (dxp[c] - sum_gh[c] - x_hat * sum_gh_xhat[c]);
    }
  }
}
