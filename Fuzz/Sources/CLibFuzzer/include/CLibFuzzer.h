#ifndef GANTRY_CLIBFUZZER_H
#define GANTRY_CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, LLVM 12 and later), linked by `-sanitize=fuzzer`.
///
/// SwiftPM links every executable target with `main` aliased to `<Target>_main`, the
/// symbol `@main` produces, so libFuzzer's own `main` is never pulled in: each target's
/// `@main` calls this instead, after handling `--write-seeds=DIR`.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

#endif
