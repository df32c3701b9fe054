#ifndef CPGQUERY_H
#define CPGQUERY_H

// libpg_query (Debian libpg-query-dev 15-4.0.0): PostgreSQL 15's own raw parser,
// linked as a static archive. The protobuf-c structs describe the parse tree; the
// protobuf-c runtime is compiled into libpg_query.a, so only its header
// (libprotobuf-c-dev) is needed at build time.
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stddef.h>

// Bytes of stack left below the caller's frame on the calling thread (0 if unknown).
// The classifier sizes its nesting limit by it, so no thread it runs on can overflow
// (ClassifierBudget.swift).
size_t cpq_stack_remaining(void);

// Sets libpg_query's copy of the GUC standard_conforming_strings on the calling thread (its
// globals are thread-local) and returns the previous value. Off, its scanner reads '\'' as
// PostgreSQL does with the setting off (scan.l <xq>); the secret masker scans text a server
// read that way with it off, then sets it back.
int cpq_set_standard_conforming_strings(int on);

// Swift imports C globals by value; the walker compares descriptors by address,
// so these hand out the addresses of the generated descriptor objects.
static inline const ProtobufCMessageDescriptor *cpq_node_descriptor(void) {
    return &pg_query__node__descriptor;
}
static inline const ProtobufCMessageDescriptor *cpq_select_stmt_descriptor(void) {
    return &pg_query__select_stmt__descriptor;
}
static inline const ProtobufCMessageDescriptor *cpq_range_var_descriptor(void) {
    return &pg_query__range_var__descriptor;
}
static inline const ProtobufCMessageDescriptor *cpq_type_name_descriptor(void) {
    return &pg_query__type_name__descriptor;
}
static inline const char *cpq_object_type_name(int value) {
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&pg_query__object_type__descriptor, value);
    return v ? v->name : "";
}

#endif
