package classifier

// #include <malloc.h>
import "C"

// releaseFreedMemory gives the C heap's free pages back to the system.
// ONNX Runtime allocates a session's weights and buffers with malloc, and
// glibc keeps what is freed when a session is destroyed (a replaced
// predictor) in its arenas, so without this every reload would leave the
// process larger.
func releaseFreedMemory() { C.malloc_trim(0) }

// mapLargeAllocations makes glibc serve every allocation of 256 KiB or more
// with its own mapping, returned to the system when freed. By default glibc
// raises that threshold to the size of the largest block freed (up to 32
// MiB), after which a session's multi-megabyte weights come from the heap
// and stay there when the session goes.
func mapLargeAllocations() { C.mallopt(C.M_MMAP_THRESHOLD, 256<<10) }
