/* Average pooling without padding (global when the kernel is the whole map). */
#include "rp_fixed_point.h"
#include "rp_nn.h"

void rp_avgpool_s8(const rp_avgpool_s8_params *p, const int8_t *in, int8_t *out) {
  const int32_t c = p->channels;
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    for (int32_t ox = 0; ox < p->out_w; ox++) {
      for (int32_t ch = 0; ch < c; ch++) {
        int32_t acc = 0;
        for (int32_t ky = 0; ky < p->kernel_h; ky++) {
          const int8_t *row = in + ((int32_t)(oy * p->stride_h + ky) * p->in_w + ox * p->stride_w) * c;
          for (int32_t kx = 0; kx < p->kernel_w; kx++) acc += (int32_t)row[kx * c + ch] + p->in_offset;
        }
        out[((int32_t)oy * p->out_w + ox) * c + ch] =
            rp_clamp8(rp_requantize(acc, p->mult, p->shift) + p->out_offset, -128, 127);
      }
    }
  }
}
