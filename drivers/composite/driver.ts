/** Composite and Proxy live in the runtime (every exporter's root is a Composite). */
export { Composite, Proxy } from "@jumpstarter/driver";
