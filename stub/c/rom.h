/* The ESP8266 mask ROM functions the stub calls. Their addresses are in
 * esp-protocol's rom_functions (the public facts of the SDK's
 * eagle.rom.addr.v6.ld), placed by the generated programs/ld/rom.ld; the
 * prototypes are the SDK's. Flash functions return 0 on success. */
#ifndef STUB_ROM_H
#define STUB_ROM_H

#include <stdint.h>

void *memcpy(void *destination, const void *source, uint32_t length);
void *memset(void *destination, int value, uint32_t length);
int memcmp(const void *first, const void *second, uint32_t length);

void ets_delay_us(uint32_t microseconds);
void uart_div_modify(uint32_t uart, uint32_t divider);
void software_reset(void);

/* Level-1 interrupts: the ROM's dispatcher calls handler(arg, frame) for each one pending. */
void ets_isr_attach(int interrupt, void (*handler)(void *arg, void *frame), void *arg);
void ets_isr_mask(uint32_t mask);
void ets_isr_unmask(uint32_t mask);

void SelectSpiFunction(uint32_t pins);
void spi_flash_attach(uint32_t pins, uint32_t legacy);
int SPIParamCfg(uint32_t device_id, uint32_t chip_size, uint32_t block_size,
                uint32_t sector_size, uint32_t page_size, uint32_t status_mask);
int SPIRead(uint32_t address, void *destination, uint32_t length);
int SPIWrite(uint32_t address, const void *source, uint32_t length);
int SPIEraseSector(uint32_t sector);
int SPIEraseBlock(uint32_t block);
int SPIEraseChip(void);

/* The ROM's MD5 context: 88 bytes (state, bit count, block buffer). */
struct rom_md5 {
    uint32_t words[22];
};
void MD5Init(struct rom_md5 *context);
void MD5Update(struct rom_md5 *context, const void *data, uint32_t length);
void MD5Final(uint8_t digest[16], struct rom_md5 *context);

#endif
