/**
 * The exporter's metrics, served only with `jmp run --metrics-listen ADDR` (the
 * exporter has no port of its own in distributed mode). Until then nothing is
 * registered and the session servers get no metrics interceptor, so an exporter
 * without the flag pays nothing.
 */
import type { Interceptor } from "@connectrpc/connect";
import { newRegistry, type Registry, rpcMetrics, serveMetrics } from "../common/metrics.ts";

let registry: Registry | undefined;
let rpc: ReturnType<typeof rpcMetrics> | undefined;

/** The registry, once metrics are on; parts of the exporter add their own metrics to it. */
export function exporterRegistry(): Registry | undefined {
  return registry;
}

/** First among a session server's interceptors: none while metrics are off. */
export function metricsInterceptors(): Interceptor[] {
  return rpc ? [rpc.interceptor] : [];
}

/** For DriverCall, answered outside Connect (session.ts): records it as the interceptor would; undefined while metrics are off. */
export function driverCallObserver(): ((code: number, ms: number) => void) | undefined {
  const r = rpc;
  return r && ((code, ms) => r.record("jumpstarter.v1.ExporterService", "DriverCall", code, ms / 1000));
}

/** Turns metrics on and serves them on `listen` (HTTP/1.1, GET /metrics). */
export async function startExporterMetrics(listen: { host: string; port: number }): Promise<{ address: string; close(): Promise<void> }> {
  registry ??= newRegistry();
  rpc ??= rpcMetrics(registry);
  return serveMetrics(registry, listen);
}
