// GroupNorm followed by SiLU, one image at a time: the loops, compiled once per instruction set
// like kernels.h (included from it, inside its namespace).
//
//   forward   y = silu(a),  a = w * x_hat + b,  x_hat = (x - mean_g) * rstd_g
//   backward  ga = dy * silu'(a);  dw += sum ga * x_hat;  db += sum ga;
//             dx = rstd_g * (gh - mean_g(gh) - x_hat * mean_g(gh * x_hat)),  gh = ga * w
// where _g is over the pixels and channels of the group, as nn/norm.py. Since gh = ga * w per
// channel, the two group means come from the same per-channel sums as dw and db.
// SiLU uses the same rational tanh as nn/activations.py (Eigen's, multiplies and one divide,
// max error ~2e-6).
//
// Each loop runs down the pixels for one vector of channels at a time (each_channel_vector, in
// kernels.h), its sums in registers. (Written as plain loops over a pixel's channels, the
// compiler could not prove the per-channel sums apart from the outputs and left the backward
// pass scalar: 7x the forward.)

// sigmoid(a) = 0.5 + 0.5 tanh(a / 2), tanh as nn/activations.py.
template <class T>
inline T sigmoid(T a) {
  const float clamp = 7.90531110763549805f;
  T x = a * 0.5f;
  x = x < -clamp ? T{} - clamp : x;
  x = x > clamp ? T{} + clamp : x;
  const T x2 = x * x;
  T p = T{} - 2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  T q = T{} + 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return 0.5f + 0.5f * (x * p / q);
}

// silu'(a) = s + silu(a) (1 - s), s = sigmoid(a): the GroupNorm + SiLU backward and SiLU's.
template <class T>
inline T silu_derivative(T a) {
  const T s = sigmoid(a);
  return s + a * s * (1.0f - s);
}

// Per-channel sums over a group's channels, made equal within each group: total / count.
inline void group_means(float* per_channel, int channels, int groups, float count) {
  const int per_group = channels / groups;
  for (int g = 0; g < groups; ++g) {
    float total = 0.0f;
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) total += per_channel[c];
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) per_channel[c] = total / count;
  }
}

// mean[c] and rstd[c] per channel (equal within a group), from one image's x.
inline void group_stats(const float* x, int pixels, int channels, int groups, float eps, float* mean,
                        float* rstd) {
  const float count = float(pixels) * (channels / groups);
  each_channel_vector(channels, [&](auto zero, int c) {
    using T = decltype(zero);
    T sum = zero;
    for (int p = 0; p < pixels; ++p) sum += load_as<T>(x + int64_t(p) * channels + c);
    store_as(mean + c, sum);
  });
  group_means(mean, channels, groups, count);
  // Second pass about the mean: the variance as a sum of squares minus a squared sum loses
  // digits when the mean is large against the spread.
  each_channel_vector(channels, [&](auto zero, int c) {
    using T = decltype(zero);
    const T m = load_as<T>(mean + c);
    T sum = zero;
    for (int p = 0; p < pixels; ++p) {
      const T d = load_as<T>(x + int64_t(p) * channels + c) - m;
      sum += d * d;
    }
    store_as(rstd + c, sum);
  });
  group_means(rstd, channels, groups, count);
  for (int c = 0; c < channels; ++c) rstd[c] = 1.0f / std::sqrt(rstd[c] + eps);
}

// scratch: 2 * channels floats.
inline void norm_silu_forward_image(const float* x, const float* w, const float* b, int pixels, int channels,
                                    int groups, float eps, float* y, float* scratch) {
  float *mean = scratch, *rstd = scratch + channels;
  group_stats(x, pixels, channels, groups, eps, mean, rstd);
  each_channel_vector(channels, [&](auto zero, int c) {
    using T = decltype(zero);
    const T scale = load_as<T>(w + c) * load_as<T>(rstd + c);  // a = scale * x + shift
    const T shift = load_as<T>(b + c) - scale * load_as<T>(mean + c);
    for (int p = 0; p < pixels; ++p) {
      const int64_t i = int64_t(p) * channels + c;
      const T a = scale * load_as<T>(x + i) + shift;
      store_as(y + i, a * sigmoid(a));
    }
  });
}

// dw, db: running sums (channels each); scratch: 4 * channels floats.
inline void norm_silu_backward_image(const float* x, const float* w, const float* b, const float* dy, int pixels,
                                     int channels, int groups, float eps, float* dx, float* dw, float* db,
                                     float* scratch) {
  float *mean = scratch, *rstd = scratch + channels;
  float *mean_gh = scratch + 2 * channels, *mean_gh_xhat = scratch + 3 * channels;
  group_stats(x, pixels, channels, groups, eps, mean, rstd);
  // First pass: gh = dy * silu'(a) * w, kept in dx, and the per-channel sums of ga and ga * x_hat.
  each_channel_vector(channels, [&](auto zero, int c) {
    using T = decltype(zero);
    const T m = load_as<T>(mean + c), r = load_as<T>(rstd + c), wc = load_as<T>(w + c), bc = load_as<T>(b + c);
    T sum_ga = zero, sum_ga_xhat = zero;
    for (int p = 0; p < pixels; ++p) {
      const int64_t i = int64_t(p) * channels + c;
      const T x_hat = (load_as<T>(x + i) - m) * r;
      const T a = wc * x_hat + bc;
      const T ga = load_as<T>(dy + i) * silu_derivative(a);
      sum_ga += ga;
      sum_ga_xhat += ga * x_hat;
      store_as(dx + i, ga * wc);
    }
    store_as(db + c, load_as<T>(db + c) + sum_ga);
    store_as(dw + c, load_as<T>(dw + c) + sum_ga_xhat);
    store_as(mean_gh + c, sum_ga * wc);
    store_as(mean_gh_xhat + c, sum_ga_xhat * wc);
  });
  const float count = float(pixels) * (channels / groups);
  group_means(mean_gh, channels, groups, count);
  group_means(mean_gh_xhat, channels, groups, count);
  // Second pass: dx = rstd * (gh - mean(gh) - x_hat * mean(gh * x_hat)).
  each_channel_vector(channels, [&](auto zero, int c) {
    using T = decltype(zero);
    const T m = load_as<T>(mean + c), r = load_as<T>(rstd + c);
    const T m1 = load_as<T>(mean_gh + c), m2 = load_as<T>(mean_gh_xhat + c);
    for (int p = 0; p < pixels; ++p) {
      const int64_t i = int64_t(p) * channels + c;
      const T x_hat = (load_as<T>(x + i) - m) * r;
      store_as(dx + i, r * (load_as<T>(dx + i) - m1 - x_hat * m2));
    }
  });
}

// SiLU alone, elementwise over n floats: y = a * sigmoid(a), and dx = dy * silu'(a).
inline void silu_forward(const float* a, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + VW <= n; i += VW) {
    const V v = load(a + i);
    store(y + i, v * sigmoid(v));
  }
  for (; i < n; ++i) y[i] = a[i] * sigmoid(a[i]);
}

inline void silu_backward(const float* a, const float* dy, float* dx, int64_t n) {
  int64_t i = 0;
  for (; i + VW <= n; i += VW) store(dx + i, load(dy + i) * silu_derivative(load(a + i)));
  for (; i < n; ++i) dx[i] = dy[i] * silu_derivative(a[i]);
}
