/* Start-up for a Cortex-M4 under QEMU's mps2-an386 board with semihosting: copies .data, clears
   .bss, enables the FPU, opens the semihosting console, runs main() and exits with its value.
   Unlike a minimal vector table it reaches SysTick, whose wraps run_model.c counts. */
#include <stdint.h>

extern int main(void);
extern void exit(int);
extern void initialise_monitor_handles(void);
extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;

volatile uint32_t rp_systick_wraps;

void Reset_Handler(void) {
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  *(volatile uint32_t *)0xE000ED88 |= (0xFu << 20); /* CPACR: CP10 and CP11 (the FPU) */
  initialise_monitor_handles();
  exit(main());
}

void Default_Handler(void) {
  for (;;) {
  }
}

void SysTick_Handler(void) { rp_systick_wraps++; }

void _init(void) {}
void _fini(void) {}

__attribute__((section(".isr_vector"))) const void *vector_table[16] = {
    &_estack,        Reset_Handler,   Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, 0,               0,               0,               0,               Default_Handler,
    Default_Handler, 0,               Default_Handler, SysTick_Handler,
};
