/* Runs an exported model on every input in RP_INPUT_FILE (MODEL_INPUT_BYTES each, quantized
   HWC int8) and appends its outputs, in order, to RP_OUTPUT_FILE. On a Cortex-M (RP_CORTEX_M)
   the files are the host's, through semihosting, and SysTick counts the work: under QEMU with
   -icount shift=0 one tick at 25 MHz is 40 instructions. */
#include <stdio.h>

#include "model.h"

#ifndef RP_INPUT_FILE
#define RP_INPUT_FILE "input.bin"
#endif
#ifndef RP_OUTPUT_FILE
#define RP_OUTPUT_FILE "output.bin"
#endif

#ifdef RP_CORTEX_M
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
extern volatile uint32_t rp_systick_wraps;

static uint64_t ticks(void) {
  uint32_t wraps, value;
  do {
    wraps = rp_systick_wraps;
    value = SYST_CVR;
  } while (wraps != rp_systick_wraps);
  return (uint64_t)wraps * 0x1000000u + (0xFFFFFFu - value);
}
#endif

int main(void) {
  FILE *in = fopen(RP_INPUT_FILE, "rb");
  if (in == NULL) {
    printf("cannot open %s\n", RP_INPUT_FILE);
    return 2;
  }
  FILE *out = fopen(RP_OUTPUT_FILE, "wb");
  if (out == NULL) {
    printf("cannot create %s\n", RP_OUTPUT_FILE);
    fclose(in);
    return 3;
  }
#ifdef RP_CORTEX_M
  SYST_RVR = 0xFFFFFFu;
  SYST_CVR = 0;
  SYST_CSR = 7u; /* processor clock, interrupt on wrap, enabled */
#endif
  int images = 0;
  while (fread(model_input(), 1, MODEL_INPUT_BYTES, in) == MODEL_INPUT_BYTES) {
#ifdef RP_CORTEX_M
    uint64_t start = ticks();
#endif
    model_run();
#ifdef RP_CORTEX_M
    uint64_t spent = ticks() - start;
    printf("image %d: %llu instructions\n", images, (unsigned long long)(spent * 40u));
#endif
    for (int32_t i = 0; i < MODEL_NUM_OUTPUTS; i++) {
      if (fwrite(model_output(i), 1, model_output_bytes[i], out) != model_output_bytes[i]) {
        printf("cannot write %s\n", RP_OUTPUT_FILE);
        return 4;
      }
    }
    images++;
  }
  fclose(in);
  fclose(out);
  printf("ran %d images, arena %d bytes\n", images, MODEL_ARENA_BYTES);
  return images > 0 ? 0 : 5;
}
