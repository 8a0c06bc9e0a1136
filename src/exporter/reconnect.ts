/** The exporter's retry policy is jmp's one backoff (src/common/backoff.ts). */
export * from "../common/backoff.ts";
