/* rnnpool-rs C runtime: int8 kernels for the exported RNNPool models (C99, no malloc).
   Feature maps are HWC int8 with a per-tensor zero point; weights are int8 per output channel
   (convolutions) or int16 with power-of-two scales (FastGRNN cells). Each kernel lives in its
   own file under src/, named after its data types as in CMSIS-NN. */
#ifndef RP_NN_H
#define RP_NN_H

#include <stdint.h>

#include "rp_fixed_point.h"

/* The largest kernel and RNNPool patch side the kernels take (the exporter checks). */
#define RP_MAX_KERNEL 16
#define RP_MAX_PATCH 32
/* FastGRNN biases (Q12) stay below this in magnitude (the exporter checks). */
#define RP_FASTGRNN_BIAS_LIMIT (1 << 29)

/* A convolution with BatchNorm folded in; ReLU6 is the clamp to [act_min, act_max]. */
typedef struct {
  uint16_t in_h, in_w, in_c, out_h, out_w, out_c;
  uint8_t kernel, stride, pad;
  int32_t in_offset, out_offset, act_min, act_max;
  const int8_t *weight;  /* [out_c][k][k][in_c], or [k][k][c] when depthwise */
  const int32_t *bias, *mult, *shift;
} rp_conv_s8_params;

/* A convolution's output stage: output channel o's int32 sum (bias included) requantised,
   offset and clamped to int8. Inline: it runs once per output value. */
static inline int8_t rp_conv_output_s8(const rp_conv_s8_params *p, int32_t o, int32_t acc) {
  return rp_clamp8(rp_requantize(acc, p->mult[o], p->shift[o]) + p->out_offset, p->act_min, p->act_max);
}

/* TFLite's int8 addition of two maps with their own scales. */
typedef struct {
  int32_t in1_offset, in2_offset, in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift, out_offset;
} rp_add_s8_params;

/* MobileNetV2's block; expand is NULL when the expansion ratio is 1, add is NULL without skip. */
typedef struct {
  const rp_conv_s8_params *expand, *depthwise, *project;
  const rp_add_s8_params *add;
} rp_inverted_residual_s8_params;

/* A FastGRNN cell: W [hidden][input] = real * 2^w_exp, U [hidden][hidden] = real * 2^u_exp,
   biases in Q12, sigmoid(zeta) and sigmoid(nu) in Q15. An int8 input is requantised into Q12 by
   (x_pre_shift, x_mult, x_shift). */
typedef struct {
  uint16_t input, hidden;
  const int16_t *w, *u;
  int32_t w_exp, u_exp, x_pre_shift, x_mult, x_shift;
  const int32_t *bias_gate, *bias_update;
  int32_t zeta, nu;
} rp_fastgrnn_q12_params;

typedef struct {
  uint16_t in_h, in_w, in_c, out_h, out_w;
  uint8_t patch, stride, replicate;
  int32_t in_offset, out_mult, out_shift, out_offset;
  const rp_fastgrnn_q12_params *rnn1, *rnn2;
  const int16_t *sigmoid_table, *tanh_table;
} rp_rnnpool_s8_params;

/* A 1x1 convolution of Q12 int16 inputs with int16 weights: 64-bit sums shifted right by
   pre_shift, plus the bias, requantised per output channel to int8. */
typedef struct {
  uint16_t in_c, out_c;
  int32_t pre_shift, out_offset, act_min, act_max;
  const int16_t *weight; /* [out_c][in_c] */
  const int32_t *bias, *mult, *shift;
} rp_pointwise_s16_params;

/* An RNNPool layer fused with the inverted residual that reads it (see
   rp_rnnpool_inverted_residual_s8.c); `expand` replaces the block's own expansion. */
typedef struct {
  const rp_rnnpool_s8_params *pool;
  const rp_pointwise_s16_params *expand;
  const rp_inverted_residual_s8_params *block;
} rp_rnnpool_inverted_residual_s8_params;

typedef struct {
  int32_t pixels;
  uint16_t channels;
  int32_t in_offset, out_offset;
  const int32_t *gain; /* gamma_c / out_scale in Q16 */
} rp_l2norm_s8_params;

typedef struct {
  uint16_t in_h, in_w, channels, out_h, out_w;
  uint8_t kernel_h, kernel_w, stride_h, stride_w;
  int32_t in_offset, mult, shift, out_offset;
} rp_avgpool_s8_params;

/* An int8 map moved to another scale. */
typedef struct {
  int32_t in_offset, mult, shift;
} rp_rescale_s8;

/* Per pixel, the first map's channels then the second's, both rescaled to the output's scale. */
typedef struct {
  int32_t pixels;
  uint16_t channels1, channels2;
  rp_rescale_s8 first, second;
  int32_t out_offset;
} rp_concat_s8_params;

/* Fills `row` (row_bytes) with input row y; called with y increasing, each row once. */
typedef void (*rp_read_row_fn)(void *ctx, int32_t y, int8_t *row);

/* A map whose rows are made on demand (see rp_row_stage_s8.c): stage 0 is the model's input,
   from `frame` or, when frame is NULL, from `read` into `ring`; stage s > 0 is `conv` of stage
   s - 1, computed into `ring`. A ring holds `depth` rows; `next` starts at 0. */
typedef struct {
  const rp_conv_s8_params *conv;
  const int8_t *frame;
  rp_read_row_fn read;
  void *ctx;
  int8_t *ring;
  int32_t depth, row_bytes, next;
} rp_row_stage_s8;

/* Row y of stage s, making it (and what it needs) if it is not in its ring yet. */
const int8_t *rp_stage_row_s8(rp_row_stage_s8 *stages, int32_t s, int32_t y);
void rp_convolve_s8(const rp_conv_s8_params *p, const int8_t *in, int8_t *out);
/* One output row from p->kernel input rows (NULL: padding). */
void rp_convolve_row_s8(const rp_conv_s8_params *p, const int8_t *const *rows, int8_t *out_row);
/* The whole output, its input rows taken from stage 0 of `input`. */
void rp_convolve_rows_s8(const rp_conv_s8_params *p, rp_row_stage_s8 *input, int8_t *out);
void rp_depthwise_conv_s8(const rp_conv_s8_params *p, const int8_t *in, int8_t *out);
/* One output row of a depthwise convolution from p->kernel input rows (NULL: padding). */
void rp_depthwise_conv_row_s8(const rp_conv_s8_params *p, const int8_t *const *rows, int8_t *out_row);
/* A 1x1 convolution over `pixels` consecutive pixels. */
void rp_pointwise_conv_s8(const rp_conv_s8_params *p, const int8_t *in, int32_t pixels, int8_t *out);
void rp_pointwise_conv_s16_s8(const rp_pointwise_s16_params *p, const int16_t *in, int32_t pixels, int8_t *out);
int8_t rp_add_s8(const rp_add_s8_params *p, int8_t a, int8_t b);
/* scratch: kernel * in_w * expanded bytes (with expansion) + out_w * expanded bytes. */
void rp_inverted_residual_s8(const rp_inverted_residual_s8_params *p, const int8_t *in, int8_t *out, int8_t *scratch);
/* RNN1's input projection of one int8 pixel (with in_offset) in Q12, for every hidden unit. */
void rp_fastgrnn_input_s8_q12(const rp_fastgrnn_q12_params *c, const int8_t *x8, int32_t in_offset, int32_t *wx);
/* One FastGRNN step; the input is a projection from rp_fastgrnn_input_s8_q12 (wx) or a Q12
   vector (x16), h the Q12 state, work a hidden-sized temporary. */
void rp_fastgrnn_step_q12(const rp_fastgrnn_q12_params *c, const int32_t *wx, const int16_t *x16, int16_t *h,
                          int32_t *work, const int16_t *sigmoid_table, const int16_t *tanh_table);
/* scratch (int16, 4-byte aligned): see rp_rnnpool_s8.c; the exporter computes its size. */
void rp_rnnpool_s8(const rp_rnnpool_s8_params *p, const int8_t *in, int8_t *out, int16_t *scratch);
/* The 4 h2 Q12 outputs (at rp_rnnpool_result_q12) of patch (px, py), whose rows start at
   rows[0..patch); patches in raster order: summaries shared with the patches above and to the
   left are taken from the scratch. */
void rp_rnnpool_patch_q12(const rp_rnnpool_s8_params *p, const int8_t *const *rows, int32_t px, int32_t py,
                          int16_t *scratch);
/* Where rp_rnnpool_patch_q12 leaves its 4 h2 results in `scratch`. */
int16_t *rp_rnnpool_result_q12(const rp_rnnpool_s8_params *p, int16_t *scratch);
/* The RNNPool's int8 output value for a Q12 result. */
int8_t rp_rnnpool_output_s8(const rp_rnnpool_s8_params *p, int16_t q12);
/* The RNNPool reads stage `last_stage` of `stages`. scratch: kernel rows of the RNNPool map
   (int16), the block's rows, then (4-byte aligned) the RNNPool's scratch; the exporter computes
   its size. */
void rp_rnnpool_inverted_residual_s8(const rp_rnnpool_inverted_residual_s8_params *p, rp_row_stage_s8 *stages,
                                     int32_t last_stage, int8_t *out, int8_t *scratch);
void rp_l2norm_s8(const rp_l2norm_s8_params *p, const int8_t *in, int8_t *out);
void rp_maxout_s8(const int8_t *in, int32_t pixels, int8_t *out);
void rp_avgpool_s8(const rp_avgpool_s8_params *p, const int8_t *in, int8_t *out);
void rp_concat_s8(const rp_concat_s8_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);

#endif
