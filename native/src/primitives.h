#pragma once

#include <array>
#include <optional>
#include <utility>
#include <vector>

#include "adam.h"
#include "convolution.h"
#include "group_norm.h"
#include "mlx/mlx.h"
#include "mlx/primitives.h"

namespace mg_kernels {

// y = tap_conv(x, w, taps, margin, pad, bias, phases, relu, blocks): see convolution.h.
// Differentiable in x, w and the bias, which is optional: (O) or (N, O).
mlx::core::array tap_conv(const mlx::core::array& x, const mlx::core::array& w,
                          const std::vector<std::pair<int, int>>& taps, int margin, std::array<int, 4> pad,
                          const std::optional<mlx::core::array>& bias = std::nullopt, int phases = 1,
                          bool relu = false, int blocks = 1, mlx::core::StreamOrDevice s = {});

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

// dL/dx from (dL/dy, w), and the output y after a ReLU. Not differentiable itself (no second
// derivatives).
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

// dL/dw, and dL/db when there is a bias, from (x, dL/dy), and the output y after a ReLU: one
// pass over dy for both.
class TapConvWeightGrad : public mlx::core::Primitive {
 public:
  TapConvWeightGrad(mlx::core::Stream stream, Geometry geometry)
      : Primitive(stream), geometry_(std::move(geometry)) {}
  void eval_cpu(const std::vector<mlx::core::array>& inputs, std::vector<mlx::core::array>& outputs) override;
  void eval_gpu(const std::vector<mlx::core::array>& inputs, std::vector<mlx::core::array>& outputs) override;
  const char* name() const override { return "TapConvWeightGrad"; }
  bool is_equivalent(const mlx::core::Primitive& other) const override;

 private:
  Geometry geometry_;
};

// y = silu(GroupNorm(x) * w + b): x (N, ..., C), w and b (C). Differentiable in x, w and b.
mlx::core::array group_norm_silu(const mlx::core::array& x, const mlx::core::array& w, const mlx::core::array& b,
                                 int groups, float eps, mlx::core::StreamOrDevice s = {});

class GroupNormSilu : public mlx::core::UnaryPrimitive {
 public:
  GroupNormSilu(mlx::core::Stream stream, NormShape shape) : UnaryPrimitive(stream), shape_(shape) {}
  void eval_cpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  void eval_gpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  std::vector<mlx::core::array> vjp(const std::vector<mlx::core::array>& primals,
                                    const std::vector<mlx::core::array>& cotangents, const std::vector<int>& argnums,
                                    const std::vector<mlx::core::array>& outputs) override;
  const char* name() const override { return "GroupNormSilu"; }
  bool is_equivalent(const mlx::core::Primitive& other) const override;

 private:
  NormShape shape_;
};

// (dx, dw, db) from (x, w, b, dy), in one primitive: they share every pass.
class GroupNormSiluGrad : public mlx::core::Primitive {
 public:
  GroupNormSiluGrad(mlx::core::Stream stream, NormShape shape) : Primitive(stream), shape_(shape) {}
  void eval_cpu(const std::vector<mlx::core::array>& inputs, std::vector<mlx::core::array>& outputs) override;
  void eval_gpu(const std::vector<mlx::core::array>& inputs, std::vector<mlx::core::array>& outputs) override;
  const char* name() const override { return "GroupNormSiluGrad"; }
  bool is_equivalent(const mlx::core::Primitive& other) const override;

 private:
  NormShape shape_;
};

// y = silu(x) elementwise, float32. Differentiable.
mlx::core::array silu(const mlx::core::array& x, mlx::core::StreamOrDevice s = {});

class Silu : public mlx::core::UnaryPrimitive {
 public:
  explicit Silu(mlx::core::Stream stream) : UnaryPrimitive(stream) {}
  void eval_cpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  void eval_gpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  std::vector<mlx::core::array> vjp(const std::vector<mlx::core::array>& primals,
                                    const std::vector<mlx::core::array>& cotangents, const std::vector<int>& argnums,
                                    const std::vector<mlx::core::array>& outputs) override;
  const char* name() const override { return "Silu"; }
  bool is_equivalent(const mlx::core::Primitive&) const override { return true; }
};

// dx from (x, dy).
class SiluGrad : public mlx::core::UnaryPrimitive {
 public:
  explicit SiluGrad(mlx::core::Stream stream) : UnaryPrimitive(stream) {}
  void eval_cpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  void eval_gpu(const std::vector<mlx::core::array>& inputs, mlx::core::array& out) override;
  const char* name() const override { return "SiluGrad"; }
  bool is_equivalent(const mlx::core::Primitive&) const override { return true; }
};

// (p', m', v') = Adam's update of parameter p from its gradient g and moments m, v (adam.h);
// k: the ADAM_COEFFICIENTS float32 coefficients. Not differentiable.
std::vector<mlx::core::array> adam_update(const mlx::core::array& k, const mlx::core::array& p,
                                        const mlx::core::array& g, const mlx::core::array& m,
                                        const mlx::core::array& v, mlx::core::StreamOrDevice s = {});

class AdamStep : public mlx::core::Primitive {
 public:
  explicit AdamStep(mlx::core::Stream stream) : Primitive(stream) {}
  void eval_cpu(const std::vector<mlx::core::array>& inputs, std::vector<mlx::core::array>& outputs) override;
  void eval_gpu(const std::vector<mlx::core::array>& inputs, std::vector<mlx::core::array>& outputs) override;
  const char* name() const override { return "AdamStep"; }
  bool is_equivalent(const mlx::core::Primitive&) const override { return true; }
};

}  // namespace mg_kernels
