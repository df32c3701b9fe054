// SwiftPM needs one C source file per C target; the API lives in the header.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include "CPgQuery.h"

// The lowest usable address of this thread's stack, found once per thread:
// pthread_getattr_np reads /proc/self/maps for the main thread, too slow to repeat.
static __thread uintptr_t cpq_stack_low;

size_t cpq_stack_remaining(void) {
    char here;
    if (cpq_stack_low == 0) {
        pthread_attr_t attr;
        void *address = NULL;
        size_t size = 0;
        if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
        int rc = pthread_attr_getstack(&attr, &address, &size);
        pthread_attr_destroy(&attr);
        // glibc reports the usable area, above the guard page.
        if (rc != 0 || address == NULL) return 0;
        cpq_stack_low = (uintptr_t)address;
    }
    uintptr_t sp = (uintptr_t)&here;
    return sp > cpq_stack_low ? (size_t)(sp - cpq_stack_low) : 0;
}

// libpg_query's copy of the GUC (src/backend/parser/scan.l; thread-local in libpg_query).
extern __thread _Bool standard_conforming_strings;

int cpq_set_standard_conforming_strings(int on) {
    int previous = standard_conforming_strings;
    standard_conforming_strings = on != 0;
    return previous;
}
