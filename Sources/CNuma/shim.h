// A modulemap cannot name a system header by a relative path, so this local header includes it.
#include <numa.h>
