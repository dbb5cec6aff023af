#ifndef LOUPE_CALLOCATOR_H
#define LOUPE_CALLOCATOR_H

/// Tells the C allocator to keep the buffers a forward pass frees for reuse instead of handing them back
/// to the kernel (glibc's mallopt; elsewhere nothing).
void loupe_keep_freed_memory(void);

#endif
