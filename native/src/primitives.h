#pragma once

#include <array>
#include <utility>
#include <vector>

#include "convolution.h"
#include "mlx/mlx.h"
#include "mlx/primitives.h"

namespace mg_kernels {

// y = tap_conv(x, w, taps, margin, pad): see convolution.h. Differentiable in x and w.
mlx::core::array tap_conv(const mlx::core::array& x, const mlx::core::array& w,
                          const std::vector<std::pair<int, int>>& taps, int margin, std::array<int, 4> pad,
                          mlx::core::StreamOrDevice s = {});

class TapConv : public mlx::core::UnaryPrimitive {
 public:
  TapConv(mlx::core::Stream stream, Geometry geometry) : UnaryPrimitive(stream), geometry_(std::move(geometry)) {}
  void eval_cpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  void eval_gpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  std::vector<mlx::core::array> vjp(const std::vector<mlx::core::array>& primals,
                                    const std::vector<mlx::core::array>& cotangents, const std::vector<int>& argnums,
                                    const std::vector<mlx::core::array>& outputs) override;
  const char* name() const override { return "TapConv"; }
  bool is_equivalent(const mlx::core::Primitive& other) const override;

 private:
  Geometry geometry_;
};

// dL/dx from (dL/dy, w). Not differentiable itself (no second derivatives).
class TapConvInputGrad : public mlx::core::UnaryPrimitive {
 public:
  TapConvInputGrad(mlx::core::Stream stream, Geometry geometry)
      : UnaryPrimitive(stream), geometry_(std::move(geometry)) {}
  void eval_cpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  void eval_gpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  const char* name() const override { return "TapConvInputGrad"; }
  bool is_equivalent(const mlx::core::Primitive& other) const override;

 private:
  Geometry geometry_;
};

// dL/dw from (x, dL/dy).
class TapConvWeightGrad : public mlx::core::UnaryPrimitive {
 public:
  TapConvWeightGrad(mlx::core::Stream stream, Geometry geometry)
      : UnaryPrimitive(stream), geometry_(std::move(geometry)) {}
  void eval_cpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  void eval_gpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  const char* name() const override { return "TapConvWeightGrad"; }
  bool is_equivalent(const mlx::core::Primitive& other) const override;

 private:
  Geometry geometry_;
};

}  // namespace mg_kernels
