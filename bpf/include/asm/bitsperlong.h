/* Architecture-neutral stand-in: clang -target bpf has no multiarch asm/ dir. */
#include <asm-generic/bitsperlong.h>
