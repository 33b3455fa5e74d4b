// ChannelMoments: mean and biased variance of every channel (the last axis) in one pass over the data.
//
// TensorFlow has no op for this: tf.nn.moments takes two reductions and a temporary, and the fused
// batch-norm kernel in training mode reads the data twice and writes a normalized copy nobody uses.
// Rows are cut into blocks that are summed in parallel, each shifted by its first row so that
// sum(d) and sum(d^2), d = x - shift, keep their precision (the shifted-data algorithm); the blocks
// are then merged in double precision with Chan et al.'s pairwise formula.
// Built on first use by lipnorm/layers/channel_moments.py.

#include <algorithm>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace lipnorm {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

REGISTER_OP("ChannelMoments")
    .Input("x: float")
    .Output("mean: float")
    .Output("variance: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle x;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &x));
      c->set_output(0, c->Vector(c->Dim(x, -1)));
      c->set_output(1, c->Vector(c->Dim(x, -1)));
      return absl::OkStatus();
    });

class ChannelMomentsOp : public OpKernel {
 public:
  explicit ChannelMomentsOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    OP_REQUIRES(context, x.dims() >= 1, absl::InvalidArgumentError("ChannelMoments needs a tensor of rank >= 1"));
    const int64_t channels = x.dim_size(x.dims() - 1);
    const int64_t rows = channels == 0 ? 0 : x.NumElements() / channels;
    Tensor* mean_out = nullptr;
    Tensor* variance_out = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({channels}), &mean_out));
    OP_REQUIRES_OK(context, context->allocate_output(1, TensorShape({channels}), &variance_out));
    auto mean = mean_out->flat<float>();
    auto variance = variance_out->flat<float>();
    if (rows == 0) {  // statistics of nothing: NaN, as numpy's mean of an empty array
      for (int64_t c = 0; c < channels; ++c) mean(c) = variance(c) = std::numeric_limits<float>::quiet_NaN();
      return;
    }
    // ~64 KiB per block stays in cache; at most 1024 rows keep the float sums accurate.
    const int64_t block_rows = std::max<int64_t>(1, std::min<int64_t>(1024, 16384 / channels));
    const int64_t blocks = (rows + block_rows - 1) / block_rows;
    std::vector<double> block_mean(blocks * channels), block_m2(blocks * channels);
    const float* data = x.flat<float>().data();

    auto sum_blocks = [&](int64_t first, int64_t last) {
      std::vector<float> shift_v(channels), sum_v(channels), square_v(channels);
      float* __restrict shift = shift_v.data();
      float* __restrict sum = sum_v.data();
      float* __restrict square = square_v.data();
      for (int64_t b = first; b < last; ++b) {
        const int64_t n = std::min(rows, (b + 1) * block_rows) - b * block_rows;
        const float* __restrict block = data + b * block_rows * channels;
        std::copy(block, block + channels, shift);
        std::fill(sum, sum + channels, 0.f);
        std::fill(square, square + channels, 0.f);
        for (int64_t r = 0; r < n; ++r) {
          const float* __restrict row = block + r * channels;
          for (int64_t c = 0; c < channels; ++c) {
            const float d = row[c] - shift[c];
            sum[c] += d;
            square[c] += d * d;
          }
        }
        for (int64_t c = 0; c < channels; ++c) {
          const double s = sum[c];
          block_mean[b * channels + c] = shift[c] + s / n;
          block_m2[b * channels + c] = std::max(0.0, square[c] - s * s / n);
        }
      }
    };
    const auto* threads = context->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(threads->num_threads, threads->workers, blocks, block_rows * channels * 4, sum_blocks);

    for (int64_t c = 0; c < channels; ++c) {
      double count = 0, m = 0, m2 = 0;
      for (int64_t b = 0; b < blocks; ++b) {
        const double n = std::min(rows, (b + 1) * block_rows) - b * block_rows;
        const double delta = block_mean[b * channels + c] - m;
        const double total = count + n;
        m += delta * n / total;
        m2 += block_m2[b * channels + c] + delta * delta * count * n / total;
        count = total;
      }
      mean(c) = static_cast<float>(m);
      variance(c) = static_cast<float>(m2 / count);
    }
  }
};

REGISTER_KERNEL_BUILDER(Name("ChannelMoments").Device(tensorflow::DEVICE_CPU), ChannelMomentsOp);

}  // namespace lipnorm
