/* Runs an exported model on every input in RP_INPUT_FILE (MODEL_INPUT_BYTES each, quantized
   HWC int8) and appends its outputs, in order, to RP_OUTPUT_FILE: with model_run() on a frame
   in the arena, or, built with -DMODEL_ROWS_ONLY, with model_run_rows() reading the file a row
   at a time as a camera would deliver it. On a Cortex-M (RP_CORTEX_M) the files are the host's,
   through semihosting, and SysTick counts the work: under QEMU with -icount shift=0 one tick
   at 25 MHz is 40 instructions (row reads included with model_run_rows()). */
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

static void report(uint64_t spent) { printf("instructions: %llu\n", (unsigned long long)(spent * 40u)); }
#else
static uint64_t ticks(void) { return 0; }
static void report(uint64_t spent) { (void)spent; }
#endif

#ifdef MODEL_ROWS_ONLY
typedef struct {
  FILE *file;
  long image_start;
  int failed;
} row_source;

static void read_row(void *ctx, int32_t y, int8_t *row) {
  row_source *src = (row_source *)ctx;
  const long row_bytes = (long)MODEL_INPUT_W * MODEL_INPUT_C;
  if (fseek(src->file, src->image_start + (long)y * row_bytes, SEEK_SET) != 0 ||
      fread(row, 1, (size_t)row_bytes, src->file) != (size_t)row_bytes)
    src->failed = 1;
}

/* Runs the image at the file's position; 0 at the end of the file. */
static int run_image(FILE *in) {
  row_source src = {in, ftell(in), 0};
  int8_t probe;
  if (fread(&probe, 1, 1, in) != 1) return 0;
  uint64_t start = ticks();
  model_run_rows(read_row, &src);
  report(ticks() - start);
  if (src.failed || fseek(in, src.image_start + MODEL_INPUT_BYTES, SEEK_SET) != 0) return 0;
  return 1;
}
#else
static int run_image(FILE *in) {
  if (fread(model_input(), 1, MODEL_INPUT_BYTES, in) != MODEL_INPUT_BYTES) return 0;
  uint64_t start = ticks();
  model_run();
  report(ticks() - start);
  return 1;
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
  for (;;) {
    if (!run_image(in)) break;
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
