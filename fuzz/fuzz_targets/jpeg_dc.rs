#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| membudget_fuzz::jpeg_dc(data));
