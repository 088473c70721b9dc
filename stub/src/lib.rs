//! `esp-stub` is flashlab's own flasher stub for the ESP8266: a small C program (`c/`) that
//! the ROM loader places in RAM and starts, which then speaks esptool's stub protocol over
//! UART0. This crate holds its source, the image built from it (committed, so building
//! esp-flasher needs no Xtensa toolchain) and the build that reproduces that image.
