/**
 * The testing library (`import … from "jmp/testing"`): everything of "jmp/client"
 * plus `serve()`, which runs drivers in-process to test them without a lab.
 */
export * from "./client.ts";
export { serve, type Served } from "../testing/serve.ts";
export { Driver, exported, exportStream, callSignal, config } from "../driver/index.ts";
