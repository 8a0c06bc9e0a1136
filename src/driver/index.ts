/**
 * The public driver API, importable as "@jumpstarter/driver" by built-in drivers,
 * by driver files in drivers folders, and by tests.
 */
export { Driver, type ConfigOf, type DriverClass, type DriverLogRecord } from "./driver.ts";
export { exported, exportStream, wireName, type ExportKind } from "./markers.ts";
export { callSignal } from "./call-context.ts";
export { Composite, Proxy, COMPOSITE_CLIENT } from "./composite.ts";
export {
  Code, DriverError, NotImplementedDriverError, InvalidArgumentError, DeadlineExceededError, UnavailableError,
  ExporterNotReadyError, MethodNotFoundError,
} from "./errors.ts";
export { type ByteStream, socketByteStream, memoryPipe, pipeBoth, readAll } from "./byte-stream.ts";
export { type ResourceHandle } from "./resource.ts";
export { type Encoding, decode, detectEncoding, encoder, peek } from "./encoding.ts";
export { sparseFileSink } from "./sparse-file.ts";
export { DriverClient, type ClientInit, type Portal } from "./client.ts";
export { GenericClient } from "./generic-client.ts";
export { pumpStdio } from "./stdio.ts";
/** Standard output for a client command: use it rather than process.stdout, so `j` waits for it before exiting. */
export { stdout } from "../common/stdout.ts";
export { formatBytes, formatTransfer } from "./progress-stream.ts";
export * as config from "../common/schema.ts";
export { defineCommand, type CommandDef } from "../common/command.ts";
export { repeatable } from "../common/repeatable.ts";
