/*
 * protocol/report.h - JSON reports of what this build and machine can do.
 *
 * The same objects serve `bitnetctl kernels/capabilities --json` (locally) and
 * the daemon's io.bitnetd.Query.GetCapabilities / ListKernels, so the CLI,
 * the protocol and the docs print the same words. docs/protocol.md documents
 * the fields.
 */
#ifndef BITNET_PROTOCOL_REPORT_H
#define BITNET_PROTOCOL_REPORT_H

#include <jansson.h>

#include "bitnet/kernels.h"

/* Returns a new JSON array with one object per registry kernel, evaluated
 * against cpu (NULL: the host). The caller owns the reference. */
json_t *report_kernels(const bitnet_cpu_features *cpu);

/* Returns a new JSON object describing the CPU features. */
json_t *report_cpu(const bitnet_cpu_features *cpu);

/* Returns a new JSON object describing this build (compiler, options, what was compiled). */
json_t *report_build(void);

/* Returns the full capabilities object: build, cpu, cuda, kernels, the best
 * kernel per format, and backends. */
json_t *report_capabilities(const bitnet_cpu_features *cpu);

/*
 * Returns the backend compatibility matrix as a new JSON object: formats,
 * isas and providers (the axes), one cell per provider x format x isa
 * ({provider, format, isa, kernel: id or null, coverage: "yes" | "partial" |
 * "planned" | "no", note: why, or null}) and the registry's static kernel
 * table. It holds nothing that depends on the build or the machine
 * (docs/backend-compatibility-matrix.md is generated from it); every kernel
 * id it names is a registry id.
 */
json_t *report_matrix(void);

#endif
