//go:build !linux

package classifier

// releaseFreedMemory does nothing where glibc's malloc_trim is not known
// to be there.
func releaseFreedMemory() {}

// mapLargeAllocations does nothing where glibc's mallopt is not known to be
// there.
func mapLargeAllocations() {}
