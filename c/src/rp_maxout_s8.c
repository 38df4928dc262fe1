/* S3FD's max-out background: per pixel, 4 logits (3 background, face) -> (max of the 3, face).
   Input and output share one scale, so the max is exact. */
#include "rp_nn.h"

void rp_maxout_s8(const int8_t *in, int32_t pixels, int8_t *out) {
  for (int32_t px = 0; px < pixels; px++) {
    const int8_t *x = in + 4 * px;
    int8_t m = x[0] > x[1] ? x[0] : x[1];
    out[2 * px] = m > x[2] ? m : x[2];
    out[2 * px + 1] = x[3];
  }
}
