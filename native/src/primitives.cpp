// The tap convolution as three MLX primitives (forward, input gradient, weight gradient), and
// GroupNorm + SiLU as two (forward; the three gradients together), so that they compose with
// mx.compile, mx.grad and MLX's streams like any built-in operation.
// CPU only: on a GPU stream the Python side never calls it (mlx_generative/runtime/native.py).
#include "primitives.h"

#include <initializer_list>
#include <stdexcept>

#include "mlx/backend/cpu/encoder.h"

namespace mg_kernels {

namespace mx = mlx::core;

namespace {

void no_gpu(const char* name) {
  throw std::runtime_error(std::string(name) + " has no GPU kernel: use the pure-MLX convolution on a GPU stream");
}

// Allocates the outputs, then returns the encoder that runs work on the stream's own thread,
// after everything queued before it. The work must capture raw pointers taken after this call.
mx::cpu::CommandEncoder& prepare(mx::Stream stream, const std::vector<mx::array>& inputs,
                                 std::initializer_list<mx::array*> outputs) {
  auto& encoder = mx::cpu::get_command_encoder(stream);
  for (const auto& a : inputs) encoder.set_input_array(a);
  for (mx::array* out : outputs) {
    out->set_data(mx::allocator::malloc(out->nbytes()));
    encoder.set_output_array(*out);
  }
  return encoder;
}

}  // namespace

void TapConv::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  auto& encoder = prepare(stream(), inputs, {&out});
  const float* b = inputs.size() > 2 ? inputs[2].data<float>() : nullptr;
  encoder.dispatch([g = geometry_, x = inputs[0].data<float>(), w = inputs[1].data<float>(), b, y = out.data<float>()] {
    forward(g, x, w, b, y);
  });
}

void TapConv::eval_gpu(const std::vector<mx::array>&, mx::array&) { no_gpu(name()); }

std::vector<mx::array> TapConv::vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                                    const std::vector<int>& argnums, const std::vector<mx::array>& outputs) {
  const mx::array& x = primals[0];
  const mx::array& w = primals[1];
  // The cotangent may be a broadcast or a strided view: the loops read plain row-major arrays.
  const mx::array dy = mx::contiguous(cotangents[0], false, stream());
  // With a ReLU, the gradients read the output too: dy counts only where it is > 0.
  auto with_output = [&](std::vector<mx::array> inputs) {
    if (geometry_.relu) inputs.push_back(outputs[0]);
    return inputs;
  };
  std::vector<mx::array> parameter_grads;  // dw, then db when there is a bias: one primitive
  for (int arg : argnums)
    if (arg > 0 && parameter_grads.empty()) {
      std::vector<mx::Shape> shapes{w.shape()};
      if (primals.size() > 2) shapes.push_back(primals[2].shape());
      parameter_grads = mx::array::make_arrays(shapes, std::vector<mx::Dtype>(shapes.size(), mx::float32),
                                               std::make_shared<TapConvWeightGrad>(stream(), geometry_), with_output({x, dy}));
    }
  std::vector<mx::array> grads;
  for (int arg : argnums) {
    if (arg == 0)
      grads.emplace_back(x.shape(), mx::float32, std::make_shared<TapConvInputGrad>(stream(), geometry_),
                         with_output({dy, w}));
    else
      grads.push_back(parameter_grads[arg - 1]);
  }
  return grads;
}

bool TapConv::is_equivalent(const mx::Primitive& other) const {
  return geometry_ == static_cast<const TapConv&>(other).geometry_;
}

void TapConvInputGrad::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  auto& encoder = prepare(stream(), inputs, {&out});
  const float* y = geometry_.relu ? inputs[2].data<float>() : nullptr;
  encoder.dispatch([g = geometry_, dy = inputs[0].data<float>(), y, w = inputs[1].data<float>(), dx = out.data<float>()] {
    input_grad(g, dy, y, w, dx);
  });
}

void TapConvInputGrad::eval_gpu(const std::vector<mx::array>&, mx::array&) { no_gpu(name()); }

bool TapConvInputGrad::is_equivalent(const mx::Primitive& other) const {
  return geometry_ == static_cast<const TapConvInputGrad&>(other).geometry_;
}

void TapConvWeightGrad::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  const bool bias = outputs.size() > 1;
  auto& encoder = bias ? prepare(stream(), inputs, {&outputs[0], &outputs[1]}) : prepare(stream(), inputs, {&outputs[0]});
  const float* y = geometry_.relu ? inputs[2].data<float>() : nullptr;
  encoder.dispatch([g = geometry_, x = inputs[0].data<float>(), dy = inputs[1].data<float>(), y,
                    dw = outputs[0].data<float>(), db = bias ? outputs[1].data<float>() : nullptr] {
    weight_grad(g, x, dy, y, dw, db);
  });
}

void TapConvWeightGrad::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) { no_gpu(name()); }

bool TapConvWeightGrad::is_equivalent(const mx::Primitive& other) const {
  return geometry_ == static_cast<const TapConvWeightGrad&>(other).geometry_;
}

mx::array tap_conv(const mx::array& x, const mx::array& w, const std::vector<std::pair<int, int>>& taps, int margin,
                   std::array<int, 4> pad, const std::optional<mx::array>& bias, int phases, bool relu,
                   int blocks, mx::StreamOrDevice s) {
  if (x.ndim() != 4) throw std::invalid_argument("tap_conv: x must be (N, H, W, C), got " + std::to_string(x.ndim()) + " dimensions");
  if (w.ndim() != 3) throw std::invalid_argument("tap_conv: w must be (taps, C_in, C_out), got " + std::to_string(w.ndim()) + " dimensions");
  if (x.dtype() != mx::float32 || w.dtype() != mx::float32) throw std::invalid_argument("tap_conv: x and w must be float32");
  if (blocks != 1 && blocks != 2) throw std::invalid_argument("tap_conv: blocks must be 1 or 2, got " + std::to_string(blocks));
  if (blocks == 2 && (x.shape(1) % 2 || x.shape(2) % 2))
    throw std::invalid_argument("tap_conv: blocks=2 needs an even height and width, got " +
                                std::to_string(x.shape(1)) + " x " + std::to_string(x.shape(2)));
  Geometry g;
  const int b = blocks == 2 ? 2 : 1;  // check() refuses any other value
  g.n = x.shape(0), g.h = x.shape(1) / b, g.w = x.shape(2) / b, g.c = x.shape(3) * b * b, g.o = w.shape(2);
  g.pad = pad, g.margin = margin, g.taps = taps, g.phases = phases, g.relu = relu, g.blocks = blocks;
  if (w.shape(0) != int(taps.size()) || w.shape(1) != g.c)
    throw std::invalid_argument("tap_conv: w must be (" + std::to_string(taps.size()) + ", " + std::to_string(g.c) +
                                ", C_out) for " + std::to_string(taps.size()) + " taps and " + std::to_string(g.c) +
                                " input channels");
  check(g);
  const mx::Stream stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) throw std::invalid_argument("tap_conv runs on CPU streams only");
  std::vector<mx::array> inputs{mx::contiguous(x, false, stream), mx::contiguous(w, false, stream)};
  if (bias) {
    if (bias->dtype() != mx::float32) throw std::invalid_argument("tap_conv: bias must be float32");
    if (bias->ndim() == 1 && bias->shape(0) == g.o) g.bias = Bias::shared;
    else if (bias->ndim() == 2 && bias->shape(0) == g.n && bias->shape(1) == g.o) g.bias = Bias::per_image;
    else {
      std::string message = "tap_conv: bias must be (O,) or (N, O) with N = ";
      message += std::to_string(g.n) + " images and O = " + std::to_string(g.o) + " output channels";
      throw std::invalid_argument(message);
    }
    inputs.push_back(mx::contiguous(*bias, false, stream));
  }
  const int up = phases == 4 ? 2 : 1;  // four phases interleave into twice the rows and columns
  return mx::array({g.n, up * g.ho(), up * g.wo(), g.o}, mx::float32, std::make_shared<TapConv>(stream, g),
                   std::move(inputs));
}

void GroupNormSilu::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  auto& encoder = prepare(stream(), inputs, {&out});
  encoder.dispatch([s = shape_, x = inputs[0].data<float>(), w = inputs[1].data<float>(), b = inputs[2].data<float>(),
                    y = out.data<float>()] { norm_silu_forward(s, x, w, b, y); });
}

void GroupNormSilu::eval_gpu(const std::vector<mx::array>&, mx::array&) { no_gpu(name()); }

std::vector<mx::array> GroupNormSilu::vjp(const std::vector<mx::array>& primals,
                                          const std::vector<mx::array>& cotangents, const std::vector<int>& argnums,
                                          const std::vector<mx::array>&) {
  const mx::array dy = mx::contiguous(cotangents[0], false, stream());
  auto grads = mx::array::make_arrays({primals[0].shape(), primals[1].shape(), primals[2].shape()},
                                      {mx::float32, mx::float32, mx::float32},
                                      std::make_shared<GroupNormSiluGrad>(stream(), shape_),
                                      {primals[0], primals[1], primals[2], dy});
  std::vector<mx::array> wanted;
  for (int arg : argnums) wanted.push_back(grads[arg]);
  return wanted;
}

bool GroupNormSilu::is_equivalent(const mx::Primitive& other) const {
  return shape_ == static_cast<const GroupNormSilu&>(other).shape_;
}

void GroupNormSiluGrad::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& encoder = prepare(stream(), inputs, {&outputs[0], &outputs[1], &outputs[2]});
  encoder.dispatch([s = shape_, x = inputs[0].data<float>(), w = inputs[1].data<float>(),
                    b = inputs[2].data<float>(), dy = inputs[3].data<float>(), dx = outputs[0].data<float>(),
                    dw = outputs[1].data<float>(), db = outputs[2].data<float>()] {
    norm_silu_backward(s, x, w, b, dy, dx, dw, db);
  });
}

void GroupNormSiluGrad::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) { no_gpu(name()); }

bool GroupNormSiluGrad::is_equivalent(const mx::Primitive& other) const {
  return shape_ == static_cast<const GroupNormSiluGrad&>(other).shape_;
}

mx::array group_norm_silu(const mx::array& x, const mx::array& w, const mx::array& b, int groups, float eps,
                          mx::StreamOrDevice s) {
  if (x.ndim() < 2) throw std::invalid_argument("group_norm_silu: x must be (N, ..., C)");
  const int channels = x.shape(-1);
  if (w.ndim() != 1 || b.ndim() != 1 || w.shape(0) != channels || b.shape(0) != channels)
    throw std::invalid_argument("group_norm_silu: weight and bias must be (" + std::to_string(channels) + ",)");
  if (x.dtype() != mx::float32 || w.dtype() != mx::float32 || b.dtype() != mx::float32)
    throw std::invalid_argument("group_norm_silu: x, weight and bias must be float32");
  if (groups < 1 || channels % groups)
    throw std::invalid_argument("group_norm_silu: groups=" + std::to_string(groups) + " must divide " +
                                std::to_string(channels) + " channels");
  if (x.size() == 0) throw std::invalid_argument("group_norm_silu: empty input");
  NormShape shape;
  shape.n = x.shape(0), shape.channels = channels, shape.groups = groups, shape.eps = eps;
  shape.pixels = int(x.size() / (size_t(shape.n) * channels));
  const mx::Stream stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) throw std::invalid_argument("group_norm_silu runs on CPU streams only");
  return mx::array(x.shape(), mx::float32, std::make_shared<GroupNormSilu>(stream, shape),
                   {mx::contiguous(x, false, stream), mx::contiguous(w, false, stream),
                    mx::contiguous(b, false, stream)});
}

void Silu::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  auto& encoder = prepare(stream(), inputs, {&out});
  encoder.dispatch([x = inputs[0].data<float>(), y = out.data<float>(), n = int64_t(out.size())] {
    silu_forward(x, y, n);
  });
}

void Silu::eval_gpu(const std::vector<mx::array>&, mx::array&) { no_gpu(name()); }

std::vector<mx::array> Silu::vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                                 const std::vector<int>&, const std::vector<mx::array>&) {
  const mx::array dy = mx::contiguous(cotangents[0], false, stream());
  return {mx::array(primals[0].shape(), mx::float32, std::make_shared<SiluGrad>(stream()), {primals[0], dy})};
}

void SiluGrad::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  auto& encoder = prepare(stream(), inputs, {&out});
  encoder.dispatch([x = inputs[0].data<float>(), dy = inputs[1].data<float>(), dx = out.data<float>(),
                    n = int64_t(out.size())] { silu_backward(x, dy, dx, n); });
}

void SiluGrad::eval_gpu(const std::vector<mx::array>&, mx::array&) { no_gpu(name()); }

mx::array silu(const mx::array& x, mx::StreamOrDevice s) {
  if (x.dtype() != mx::float32) throw std::invalid_argument("silu: x must be float32");
  const mx::Stream stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) throw std::invalid_argument("silu runs on CPU streams only");
  return mx::array(x.shape(), mx::float32, std::make_shared<Silu>(stream), {mx::contiguous(x, false, stream)});
}

void AdamStep::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& encoder = prepare(stream(), inputs, {&outputs[0], &outputs[1], &outputs[2]});
  encoder.dispatch([k = inputs[0].data<float>(), p = inputs[1].data<float>(), g = inputs[2].data<float>(),
                    m = inputs[3].data<float>(), v = inputs[4].data<float>(), p_out = outputs[0].data<float>(),
                    m_out = outputs[1].data<float>(), v_out = outputs[2].data<float>(), n = int64_t(inputs[1].size())] {
    adam_step(k, p, g, m, v, p_out, m_out, v_out, n);
  });
}

void AdamStep::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) { no_gpu(name()); }

std::vector<mx::array> adam_update(const mx::array& k, const mx::array& p, const mx::array& g, const mx::array& m,
                                 const mx::array& v, mx::StreamOrDevice s) {
  for (const mx::array* a : {&k, &p, &g, &m, &v})
    if (a->dtype() != mx::float32) throw std::invalid_argument("adam_update: every array must be float32");
  if (k.ndim() != 1 || k.shape(0) != ADAM_COEFFICIENTS)
    throw std::invalid_argument("adam_update: the coefficients must be (" + std::to_string(ADAM_COEFFICIENTS) +
                                ",): b1, 1 - b1, b2, 1 - b2, c1, c2, eps");
  if (g.shape() != p.shape() || m.shape() != p.shape() || v.shape() != p.shape())
    throw std::invalid_argument("adam_update: the gradient and both moments must have the parameter's shape");
  const mx::Stream stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) throw std::invalid_argument("adam_update runs on CPU streams only");
  std::vector<mx::array> inputs;
  for (const mx::array* a : {&k, &p, &g, &m, &v}) inputs.push_back(mx::contiguous(*a, false, stream));
  return mx::array::make_arrays({p.shape(), p.shape(), p.shape()}, {mx::float32, mx::float32, mx::float32},
                                std::make_shared<AdamStep>(stream), std::move(inputs));
}

}  // namespace mg_kernels
