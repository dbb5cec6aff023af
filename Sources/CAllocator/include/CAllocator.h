#ifndef LOUPE_CALLOCATOR_H
#define LOUPE_CALLOCATOR_H

#include <stddef.h>

/// Tells the C allocator to keep the buffers a forward pass frees for reuse instead of handing them back
/// to the kernel (glibc's mallopt; elsewhere nothing).
void loupe_keep_freed_memory(void);

/// Memory for a model's packed weights: `bytes` from a 2 MB boundary, in 2 MB pages where the kernel
/// gives them (Linux transparent huge pages). NULL when the memory cannot be had.
void *loupe_allocate_weights(size_t bytes);

/// Gives back what `loupe_allocate_weights(bytes)` returned.
void loupe_free_weights(void *weights, size_t bytes);

#endif
