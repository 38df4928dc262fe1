/* Runs an exported model on every input in RP_INPUT_FILE (MODEL_INPUT_BYTES each, quantized
   HWC int8) and appends its outputs, in order, to RP_OUTPUT_FILE: with model_run() on a frame
   in the arena, or, built with -DMODEL_ROWS_ONLY, with model_run_rows() reading the file a row
   at a time as a camera would deliver it. On a Cortex-M (RP_CORTEX_M) the files are the host's,
   through semihosting, and SysTick counts the work: under QEMU with -icount shift=0 one tick
   at 25 MHz is 40 instructions (row reads included with model_run_rows()). */
#include <stdio.h>

#include "model.h"

/* Prints a, the decimal n, then b: no printf, whose formatting code would take more flash
   than some models. */
static void say(const char *a, uint64_t n, const char *b) {
  char digits[21];
  int i = 20;
  digits[i] = 0;
  do {
    digits[--i] = (char)('0' + n % 10u);
    n /= 10u;
  } while (n != 0 && i > 0);
  fputs(a, stdout);
  fputs(digits + i, stdout);
  fputs(b, stdout);
}

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

static void report(uint64_t spent) { say("instructions: ", spent * 40u, "\n"); }
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
    fputs("cannot open " RP_INPUT_FILE "\n", stdout);
    return 2;
  }
  FILE *out = fopen(RP_OUTPUT_FILE, "wb");
  if (out == NULL) {
    fputs("cannot create " RP_OUTPUT_FILE "\n", stdout);
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
        fputs("cannot write " RP_OUTPUT_FILE "\n", stdout);
        return 4;
      }
    }
    images++;
  }
  fclose(in);
  fclose(out);
  say("ran ", (uint64_t)images, " images, ");
  say("arena ", MODEL_ARENA_BYTES, " bytes\n");
  return images > 0 ? 0 : 5;
}
